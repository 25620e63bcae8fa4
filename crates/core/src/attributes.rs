//! [`Attributes`]: a directory user's custom attributes, name → value, held compactly.

use compact_str::CompactString;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Custom attributes by name, ordered by name, each name once.
///
/// A user has a handful of them; a `Vec` of pairs sorted by name holds four in one allocation
/// of about 200 bytes, where a `BTreeMap` allocates a node of eleven slots (over 500 bytes) plus
/// one allocation per name and value. Names and values of up to 24 bytes are held inline.
/// Serialized as a JSON object, like a map.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Attributes(Vec<(CompactString, CompactString)>);

impl Attributes {
    pub fn new() -> Self {
        Self::default()
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(n, _)| n.as_str().cmp(name))
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.position(name).ok().map(|i| self.0[i].1.as_str())
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.position(name).is_ok()
    }

    /// Sets `name` to `value`; returns the value it replaced.
    pub fn insert(
        &mut self,
        name: impl Into<CompactString>,
        value: impl Into<CompactString>,
    ) -> Option<CompactString> {
        let name = name.into();
        let value = value.into();
        match self.position(&name) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (name, value));
                None
            }
        }
    }

    /// Keeps the attributes whose name `keep` accepts (and gives back the room of the others).
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.0.retain(|(n, _)| keep(n));
        self.0.shrink_to_fit();
    }

    /// Removes `name`; returns its value.
    pub fn remove(&mut self, name: &str) -> Option<CompactString> {
        self.position(name).ok().map(|i| self.0.remove(i).1)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// (name, value) in name order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The bytes held on the heap: the list, and the names and values too long to be inline.
    pub fn heap_size(&self) -> usize {
        self.0.capacity() * std::mem::size_of::<(CompactString, CompactString)>()
            + self
                .0
                .iter()
                .map(|(n, v)| text_heap(n) + text_heap(v))
                .sum::<usize>()
    }

    /// Gives back the capacity beyond the attributes held (after a reader built them one by one).
    pub fn shrink_to_fit(&mut self) {
        self.0.shrink_to_fit();
    }
}

/// The bytes `text` holds on the heap (none when it is inline).
pub fn text_heap(text: &CompactString) -> usize {
    if text.is_heap_allocated() {
        text.capacity()
    } else {
        0
    }
}

impl<N: Into<CompactString>, V: Into<CompactString>> FromIterator<(N, V)> for Attributes {
    /// Later pairs win over earlier ones of the same name, as in a map.
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let mut out = Self::new();
        for (n, v) in iter {
            out.insert(n, v);
        }
        out.shrink_to_fit();
        out
    }
}

impl<N: Into<CompactString>, V: Into<CompactString>, const K: usize> From<[(N, V); K]>
    for Attributes
{
    fn from(pairs: [(N, V); K]) -> Self {
        pairs.into_iter().collect()
    }
}

impl Serialize for Attributes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (n, v) in &self.0 {
            map.serialize_entry(n.as_str(), v.as_str())?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Attributes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Pairs;
        impl<'de> Visitor<'de> for Pairs {
            type Value = Attributes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of attribute names and string values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Attributes, A::Error> {
                let mut out = Attributes(Vec::with_capacity(map.size_hint().unwrap_or(0).min(64)));
                while let Some((n, v)) = map.next_entry::<CompactString, CompactString>()? {
                    out.insert(n, v);
                }
                out.shrink_to_fit();
                Ok(out)
            }
        }
        deserializer.deserialize_map(Pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kept_in_order_once_and_read_back() {
        let mut a: Attributes = [("title", "Engineer"), ("dept", "R&D")].into();
        assert_eq!(a.insert("title", "CTO").as_deref(), Some("Engineer"));
        assert_eq!(a.get("title"), Some("CTO"));
        assert_eq!(a.get("none"), None);
        assert_eq!(
            a.iter().collect::<Vec<_>>(),
            [("dept", "R&D"), ("title", "CTO")]
        );
        assert_eq!(a.remove("dept").as_deref(), Some("R&D"));
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn it_reads_and_writes_a_json_object_the_last_of_a_name_winning() {
        let a: Attributes = serde_json::from_str(r#"{"b":"2","a":"1","b":"3"}"#).unwrap();
        assert_eq!(serde_json::to_string(&a).unwrap(), r#"{"a":"1","b":"3"}"#);
        let err = serde_json::from_str::<Attributes>(r#"{"a":1}"#).unwrap_err();
        assert!(err.to_string().contains("expected a string"), "{err}");
    }
}
