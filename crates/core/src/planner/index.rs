//! Hash maps keyed by borrowed ids, with a fast non-cryptographic hasher.
//!
//! The planner builds several maps of a million entries per run, keyed by ids that come from the
//! source directory and the target (not from arbitrary clients), so it trades SipHash's
//! resistance to crafted collisions for speed: this is the multiply-rotate hash rustc uses
//! (FxHash), a word at a time.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A map keyed by ids.
pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;
/// A set of ids.
pub(crate) type IdSet<K> = HashSet<K, BuildHasherDefault<IdHasher>>;

/// An empty map with room for `n` entries.
pub(crate) fn map_with_capacity<K, V>(n: usize) -> IdMap<K, V> {
    IdMap::with_capacity_and_hasher(n, BuildHasherDefault::default())
}

/// An empty set with room for `n` entries.
pub(crate) fn set_with_capacity<K>(n: usize) -> IdSet<K> {
    IdSet::with_capacity_and_hasher(n, BuildHasherDefault::default())
}

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

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinguishes_ids_that_differ_in_the_last_bytes() {
        let mut m: IdMap<&str, usize> = map_with_capacity(4);
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
}
