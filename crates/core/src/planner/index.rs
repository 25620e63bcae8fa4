//! Ids interned to dense integers ([`Dense`], [`SmallIndex`]), sets of them as bitmaps ([`Bits`]),
//! and hash maps keyed by borrowed ids with a fast non-cryptographic hasher.
//!
//! The planner builds several maps of a million entries per run, keyed by ids that come from the
//! source directory and the target (not from arbitrary clients), so it trades SipHash's
//! resistance to crafted collisions for speed: this is the multiply-rotate hash rustc uses
//! (FxHash), a word at a time, with a finalizer so every input bit reaches the low bits.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A map keyed by ids.
pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;
/// A set of ids.
pub(crate) type IdSet<K> = HashSet<K, BuildHasherDefault<IdHasher>>;

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// FxHash: for each word, rotate, xor, multiply.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl IdHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    /// The state through a finalizer (MurmurHash3's fmix64): the word loop leaves the low bits,
    /// which pick the bucket, depending only on the low bytes of each word, and ids that differ
    /// only in the middle of a word would collide.
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// Ids of at most this many bytes are stored inline (in a [`Dense`] or [`SmallIndex`]).
const INLINE: usize = 23;

/// An id stored inline, so comparing keys during a lookup reads the table alone rather than
/// the id's string elsewhere on the heap (a cache miss per lookup at a million users).
///
/// The bytes are held as three big-endian words, zero-padded, read from the string with
/// whole-word loads: copying the id byte by byte into a buffer and reading it back as words
/// stalls on every lookup (the processor cannot forward the small stores to the wide loads).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct InlineId {
    words: [u64; 3],
    len: u8,
}

impl InlineId {
    /// A placeholder for an id too long to be inline (a length no inline id has).
    const LONG: Self = Self {
        words: [0; 3],
        len: u8::MAX,
    };

    /// The id inline, `None` when it is too long.
    pub(crate) fn new(id: &str) -> Option<Self> {
        let b = id.as_bytes();
        let len = b.len();
        if len > INLINE {
            return None;
        }
        let mut words = [0u64; 3];
        let full = len / 8;
        for (w, chunk) in words.iter_mut().zip(b.chunks_exact(8)) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            *w = u64::from_be_bytes(word);
        }
        let rest = len % 8;
        if rest > 0 {
            words[full] = if len >= 8 {
                // The last 8 bytes, shifted so the `rest` new ones lead, zeros after.
                let mut word = [0u8; 8];
                word.copy_from_slice(&b[len - 8..]);
                u64::from_be_bytes(word) << ((8 - rest) * 8)
            } else {
                b.iter()
                    .enumerate()
                    .fold(0, |w, (k, &byte)| w | u64::from(byte) << (56 - 8 * k))
            };
        }
        Some(Self {
            words,
            len: len as u8,
        })
    }

    /// Orders like the ids themselves (ids hold no NUL byte, so the zero padding sorts first);
    /// `Equal` for equal ids.
    pub(crate) fn cmp_bytes(&self, other: &Self) -> std::cmp::Ordering {
        self.words.cmp(&other.words).then(self.len.cmp(&other.len))
    }

    fn bytes(&self) -> Vec<u8> {
        let mut bytes: Vec<u8> = self.words.iter().flat_map(|w| w.to_be_bytes()).collect();
        bytes.truncate(usize::from(self.len));
        bytes
    }
}

impl std::hash::Hash for InlineId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.words[0] ^ u64::from(self.len));
        state.write_u64(self.words[1]);
        state.write_u64(self.words[2]);
    }
}

impl std::fmt::Debug for InlineId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.bytes()))
    }
}

/// A small index from ids to `u32` for the lookups repeated millions of times over a few
/// thousand keys (a user's groups): open addressing over `u32` slots, so the slots stay in the
/// processor's first cache and a lookup costs one multiply-mix of the inline id and, mostly,
/// one comparison. Ids too long to inline go to an ordinary map.
#[derive(Debug)]
pub(crate) struct SmallIndex<'a> {
    /// 0: empty; else 1 + the position in `entries`.
    slots: Vec<u32>,
    entries: Vec<(InlineId, u32)>,
    long: IdMap<&'a str, u32>,
    mask: usize,
}

impl<'a> SmallIndex<'a> {
    pub(crate) fn with_capacity(n: usize) -> Self {
        let size = (n.saturating_mul(2)).next_power_of_two().max(16);
        Self {
            slots: vec![0; size],
            entries: Vec::with_capacity(n),
            long: IdMap::default(),
            mask: size - 1,
        }
    }

    fn first_slot(&self, k: &InlineId) -> usize {
        let mut h =
            k.words[0] ^ k.words[1].rotate_left(21) ^ k.words[2].rotate_left(42) ^ u64::from(k.len);
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        (h as usize) & self.mask
    }

    /// Inserts unless `id` is already there (the first one wins).
    pub(crate) fn insert_first(&mut self, id: &'a str, value: u32) {
        let Some(k) = InlineId::new(id) else {
            self.long.entry(id).or_insert(value);
            return;
        };
        if self.entries.len() * 2 >= self.slots.len() {
            self.grow();
        }
        let mut i = self.first_slot(&k);
        loop {
            match self.slots[i] {
                0 => {
                    self.entries.push((k, value));
                    self.slots[i] = self.entries.len() as u32;
                    return;
                }
                s if self.entries[s as usize - 1].0 == k => return,
                _ => i = (i + 1) & self.mask,
            }
        }
    }

    fn grow(&mut self) {
        let size = self.slots.len() * 2;
        self.slots = vec![0; size];
        self.mask = size - 1;
        for (n, (k, _)) in self.entries.iter().enumerate() {
            let mut i = self.first_slot(k);
            while self.slots[i] != 0 {
                i = (i + 1) & self.mask;
            }
            self.slots[i] = n as u32 + 1;
        }
    }

    pub(crate) fn get(&self, id: &str) -> Option<u32> {
        let Some(k) = InlineId::new(id) else {
            return self.long.get(id).copied();
        };
        let mut i = self.first_slot(&k);
        loop {
            match self.slots[i] {
                0 => return None,
                s => {
                    let (key, value) = &self.entries[s as usize - 1];
                    if *key == k {
                        return Some(*value);
                    }
                }
            }
            i = (i + 1) & self.mask;
        }
    }
}

/// No position: an id not in a [`Dense`] index, a user without an account.
pub(crate) const NONE: u32 = u32::MAX;

/// The slot of `k` in a [`Dense`] table of `size` slots: its hash scaled to the size (the
/// hash's high bits pick the slot, so any size will do).
fn slot_in(k: &InlineId, size: usize) -> usize {
    let mut h =
        k.words[0] ^ k.words[1].rotate_left(21) ^ k.words[2].rotate_left(42) ^ u64::from(k.len);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    ((u128::from(h) * size as u128) >> 64) as usize
}

/// The scratch space of a sweep over a table: the ids' inline forms, each read from its string
/// once and in the ids' order (a million ids' strings lie all over the heap; reading them again
/// in the order of their slots would jump to each), and that order.
#[derive(Default)]
pub(crate) struct Sweep {
    /// `slot << 32 | j` for each inline id `ids[j]`, sorted: by slot, then by position.
    order: Vec<u64>,
    /// The inline form of `ids[j]` (unused for the ids too long to be inline).
    keys: Vec<InlineId>,
}

impl Sweep {
    /// Prepares the sweep of `ids` over a table of `size` slots; `long(j, id)` is called, in
    /// order, for each id too long to be inline.
    fn prepare(&mut self, ids: &[&str], size: usize, mut long: impl FnMut(usize, &str)) {
        self.order.clear();
        self.keys.clear();
        for (j, id) in ids.iter().enumerate() {
            match InlineId::new(id) {
                Some(k) => {
                    self.order.push((slot_in(&k, size) as u64) << 32 | j as u64);
                    self.keys.push(k);
                }
                None => {
                    long(j, id);
                    self.keys.push(InlineId::LONG);
                }
            }
        }
        self.order.sort_unstable();
    }

    /// `(slot, j, key)` for each inline id, in the order of their slots.
    fn swept(&self) -> impl Iterator<Item = (usize, usize, &InlineId)> {
        self.order.iter().map(|&entry| {
            let j = (entry & u64::from(u32::MAX)) as usize;
            ((entry >> 32) as usize, j, &self.keys[j])
        })
    }
}

/// Ids interned to dense positions: each id of a list maps to the position of its first
/// occurrence, so the planner's later work is on integers and arrays rather than strings and
/// maps. Open addressing over slots that hold short ids inline (a lookup reads one slot,
/// mostly one cache line); longer ids in an ordinary map. Many ids are looked up at once in the
/// order of their slots ([`Dense::get_swept`], [`Dense::get_all`]): a table of a million ids fits
/// neither the data cache nor the page cache, and a sweep over it is several times faster than
/// a jump per id.
pub(crate) struct Dense<'a> {
    slots: Vec<Slot>,
    long: IdMap<&'a str, u32>,
}

impl std::fmt::Debug for Dense<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dense")
            .field("slots", &self.slots.len())
            .field("long", &self.long.len())
            .finish()
    }
}

/// One slot of a [`Dense`] index: an inline id and its position; `len` is 0 when empty, else
/// the id's length plus one.
#[derive(Clone, Copy, Default)]
struct Slot {
    words: [u64; 3],
    len: u32,
    value: u32,
}

impl Slot {
    fn of(k: &InlineId, value: u32) -> Self {
        Self {
            words: k.words,
            len: u32::from(k.len) + 1,
            value,
        }
    }

    /// Whether the slot holds `k`.
    fn holds(&self, k: &InlineId) -> bool {
        self.len == u32::from(k.len) + 1 && self.words == k.words
    }
}

impl<'a> Dense<'a> {
    /// The index of `ids` (position → first position of the same id), and for each position
    /// the position of its id's first occurrence.
    pub(crate) fn build(ids: impl ExactSizeIterator<Item = &'a str>) -> (Self, Vec<u32>) {
        let n = ids.len();
        // At most three quarters full, whatever the count: the table is sized to it rather
        // than to a power of two (a slot is the hash scaled to the size), so a directory just
        // past a power of two does not get a table twice its size.
        let size = n.saturating_add(n / 3).saturating_add(1).max(16);
        let mut index = Self {
            slots: vec![Slot::default(); size],
            long: IdMap::default(),
        };
        // Inserted a run of ids at a time in the order of their slots (a sweep, as
        // [`Dense::get_swept`]); within a slot's run in the order of their positions, so the
        // first occurrence of an id is the one kept.
        let mut first = vec![NONE; n];
        let mut chunk: Vec<&'a str> = Vec::with_capacity(n.min(SWEEP));
        let mut sweep = Sweep::default();
        let mut ids = ids.peekable();
        let mut start = 0usize;
        while ids.peek().is_some() {
            chunk.clear();
            chunk.extend(ids.by_ref().take(SWEEP));
            let long = &mut index.long;
            // (The chunk's own `&'a str`, which the map of long ids keeps.)
            sweep.prepare(&chunk, size, |j, _| {
                first[start + j] = *long.entry(chunk[j]).or_insert((start + j) as u32);
            });
            for (mut i, j, k) in sweep.swept() {
                let position = (start + j) as u32;
                first[start + j] = loop {
                    let slot = &mut index.slots[i];
                    if slot.len == 0 {
                        *slot = Slot::of(k, position);
                        break position;
                    }
                    if slot.holds(k) {
                        break slot.value;
                    }
                    i = index.next(i);
                };
            }
            start += chunk.len();
        }
        (index, first)
    }

    fn slot_of(&self, k: &InlineId) -> usize {
        slot_in(k, self.slots.len())
    }

    /// The slot after `i`, around the end.
    fn next(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() { 0 } else { i + 1 }
    }

    fn probe(&self, mut i: usize, k: &InlineId) -> u32 {
        loop {
            let slot = &self.slots[i];
            if slot.len == 0 {
                return NONE;
            }
            if slot.holds(k) {
                return slot.value;
            }
            i = self.next(i);
        }
    }

    /// The first position of `id`, or [`NONE`].
    pub(crate) fn get(&self, id: &str) -> u32 {
        match InlineId::new(id) {
            Some(k) => self.probe(self.slot_of(&k), &k),
            None => self.long.get(id).copied().unwrap_or(NONE),
        }
    }
}

/// Ids looked up (or inserted) in one sweep at most: their slots and positions take 8 bytes
/// each while they are sorted.
pub(crate) const SWEEP: usize = 1 << 16;

impl Dense<'_> {
    /// Appends the first position of each of `ids` (or [`NONE`]) to `out`, in order, looking
    /// them up in the order of their slots: a sweep over the table rather than a jump per id.
    /// A table of a million ids spans 16,000 memory pages, and a lookup at a random one misses
    /// the processor's page cache as well as its data cache; in slot order, consecutive lookups fall on the same page, mostly the same
    /// cache lines, and the prefetcher sees them coming. Worth it from a few thousand ids; the
    /// planner hands it all the members of a run of groups, up to [`SWEEP`].
    pub(crate) fn get_swept(&self, ids: &[&str], out: &mut Vec<u32>, sweep: &mut Sweep) {
        let base = out.len();
        out.resize(base + ids.len(), NONE);
        sweep.prepare(ids, self.slots.len(), |j, id| {
            out[base + j] = self.long.get(id).copied().unwrap_or(NONE);
        });
        for (slot, j, k) in sweep.swept() {
            out[base + j] = self.probe(slot, k);
        }
    }

    /// [`Dense::get_swept`] over any number of ids, [`SWEEP`] at a time.
    pub(crate) fn get_all<'s>(&self, ids: impl Iterator<Item = &'s str>, out: &mut Vec<u32>) {
        let mut chunk: Vec<&str> = Vec::new();
        let mut sweep = Sweep::default();
        let mut ids = ids.peekable();
        while ids.peek().is_some() {
            chunk.clear();
            chunk.extend(ids.by_ref().take(SWEEP));
            self.get_swept(&chunk, out, &mut sweep);
        }
    }
}

/// A set of dense positions, one bit each: a million positions take 128 KiB, which stays in
/// the processor's cache while a group's members are compared.
#[derive(Debug, Clone)]
pub(crate) struct Bits(Vec<u64>);

impl Bits {
    pub(crate) fn new(n: usize) -> Self {
        Self(vec![0; n.div_ceil(64)])
    }

    pub(crate) fn set(&mut self, i: u32) {
        self.0[i as usize / 64] |= 1 << (i % 64);
    }

    pub(crate) fn clear(&mut self, i: u32) {
        self.0[i as usize / 64] &= !(1 << (i % 64));
    }

    pub(crate) fn has(&self, i: u32) -> bool {
        self.0[i as usize / 64] & (1 << (i % 64)) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_ids_order_and_compare_like_their_strings() {
        let ids = [
            "",
            "a",
            "ab",
            "abcdefg",
            "abcdefgh",
            "abcdefghi",
            "abcdefgh\u{7f}",
            "abcdefghijklmnop",
            "abcdefghijklmnopq",
            "abcdefghijklmnopqrstuvw",
            "b",
            "DU000000000000000001",
            "DU000000000000000002",
            "DU00000000000000000",
            "005000000000000001",
        ];
        for a in ids {
            let ka = InlineId::new(a).expect("short");
            assert_eq!(format!("{ka:?}"), a);
            for b in ids {
                let kb = InlineId::new(b).expect("short");
                assert_eq!(ka.cmp_bytes(&kb), a.cmp(b), "{a:?} {b:?}");
                assert_eq!(ka == kb, a == b);
            }
        }
        assert!(InlineId::new(&"x".repeat(24)).is_none());
    }

    #[test]
    fn a_small_index_finds_what_it_holds_and_keeps_the_first() {
        let long = "y".repeat(30);
        let ids: Vec<String> = (0..1000).map(|g| format!("DG{g:018}")).collect();
        let mut index = SmallIndex::with_capacity(3);
        for (n, id) in ids.iter().enumerate() {
            index.insert_first(id, n as u32);
        }
        index.insert_first(&ids[7], 99);
        index.insert_first(&long, 5000);
        index.insert_first(&long, 5001);
        for (n, id) in ids.iter().enumerate() {
            assert_eq!(index.get(id), Some(n as u32));
        }
        assert_eq!(index.get(&long), Some(5000));
        assert_eq!(index.get("DG000000000000001000"), None);
        assert_eq!(index.get(""), None);
    }

    #[test]
    fn distinguishes_ids_that_differ_in_the_last_bytes() {
        let mut m: IdMap<&str, usize> = IdMap::default();
        for (i, id) in [
            "DU000000000000000001",
            "DU000000000000000002",
            "DU00000000000000000",
            "DU0000000000000000010",
        ]
        .into_iter()
        .enumerate()
        {
            m.insert(id, i);
        }
        assert_eq!(m.len(), 4);
        assert_eq!(m.get("DU000000000000000002"), Some(&1));
        assert_eq!(m.get("DU000000000000000003"), None);
    }

    #[test]
    fn a_dense_index_gives_first_positions_short_and_long() {
        let long = "z".repeat(40);
        let ids: Vec<String> = (0..5000)
            .map(|i| format!("005{:015}", i % 4000))
            .chain([long.clone(), long.clone(), String::new()])
            .collect();
        let (index, first) = Dense::build(ids.iter().map(String::as_str));
        for (n, id) in ids.iter().enumerate() {
            let expected = ids.iter().position(|x| x == id).expect("there") as u32;
            assert_eq!(first[n], expected, "{id}");
            assert_eq!(index.get(id), expected, "{id}");
        }
        assert_eq!(index.get("005000000000004000"), NONE);
        assert_eq!(index.get(&"z".repeat(41)), NONE);
        let mut out = Vec::new();
        let asked = [
            "005000000000000007",
            "nobody",
            long.as_str(),
            "",
            "005000000000003999",
        ];
        index.get_all(asked.iter().copied().cycle().take(37), &mut out);
        let expected: Vec<u32> = asked
            .iter()
            .map(|id| index.get(id))
            .cycle()
            .take(37)
            .collect();
        assert_eq!(out, expected);
        assert_eq!(&out[..5], &[7, NONE, 5000, 5002, 3999]);
    }

    #[test]
    fn bits_hold_what_was_set() {
        let mut bits = Bits::new(130);
        for i in [0, 63, 64, 129] {
            bits.set(i);
        }
        assert!(bits.has(63) && bits.has(64) && bits.has(129) && !bits.has(1));
        bits.clear(64);
        assert!(!bits.has(64) && bits.has(63));
    }
}
