//! String interning: countries, origins, skill URIs and labels become dense `u32` ids.
//!
//! Interned strings are never forgotten. The sets involved are bounded by the reference data
//! (countries, subdivisions, ESCO skills) or by the federation (origins); only skill labels
//! are free text, and a node sees few distinct labels per skill.

use std::collections::HashMap;
use std::mem::size_of;

#[derive(Debug, Default)]
pub(crate) struct Interner {
    ids: HashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl Interner {
    /// An interner whose first ids are `names`, in that order.
    pub(crate) fn with<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut i = Interner::default();
        for n in names {
            i.intern(n);
        }
        i
    }

    pub(crate) fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = u32::try_from(self.names.len()).expect("fewer than 2^32 interned strings");
        self.ids.insert(s.into(), id);
        self.names.push(s.into());
        id
    }

    pub(crate) fn get(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    pub(crate) fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    /// Heap bytes, approximately (each string is stored twice, plus table overhead).
    pub(crate) fn bytes(&self) -> usize {
        let strings: usize = self.names.iter().map(|n| 2 * n.len()).sum();
        strings
            + self.names.capacity() * size_of::<Box<str>>()
            + self.ids.capacity() * (size_of::<(Box<str>, u32)>() + 1)
    }
}

/// A fast hash for small integer keys (the FxHash of rustc): the maps it serves are keyed by
/// ids this crate assigns or by UUIDs of the reference data, so nobody can aim collisions.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Fx(u64);

impl Fx {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl std::hash::Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u16(&mut self, n: u16) {
        self.add(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_u128(&mut self, n: u128) {
        self.add(n as u64);
        self.add((n >> 64) as u64);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

pub(crate) type FxMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<Fx>>;

/// The 128-bit UUID of a canonical ESCO skill URI (`http://data.europa.eu/esco/skill/` and
/// 36 lowercase hex digits and dashes); other strings get `None`. The UUID identifies the URI
/// exactly, and hashing 16 bytes is much cheaper than hashing and comparing 69.
pub(crate) fn esco_skill_uuid(uri: &str) -> Option<u128> {
    let hex = uri
        .strip_prefix("http://data.europa.eu/esco/skill/")?
        .as_bytes();
    if hex.len() != 36 || [8, 13, 18, 23].iter().any(|&i| hex[i] != b'-') {
        return None;
    }
    // called for every skill of every vacancy: a table and no branch per digit
    let mut v: u128 = 0;
    let mut bad = 0u8;
    for part in [
        &hex[..8],
        &hex[9..13],
        &hex[14..18],
        &hex[19..23],
        &hex[24..],
    ] {
        for &c in part {
            let d = HEX[c as usize];
            bad |= d;
            v = v << 4 | u128::from(d & 0xf);
        }
    }
    (bad & 0x80 == 0).then_some(v)
}

/// Value of a lowercase hex digit; 0xff for anything else.
static HEX: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_of_canonical_skill_uris_only() {
        let java = "http://data.europa.eu/esco/skill/19a8293b-8e95-4de3-983f-77484079c389";
        assert_eq!(
            esco_skill_uuid(java),
            Some(0x19a8293b_8e95_4de3_983f_77484079c389)
        );
        assert_eq!(esco_skill_uuid(&java.to_uppercase()), None);
        assert_eq!(esco_skill_uuid(&java.replace("19a8", "19A8")), None);
        assert_eq!(esco_skill_uuid(&format!("{java}0")), None);
        assert_eq!(esco_skill_uuid(&java.replace("-4de3", "x4de3")), None);
        assert_eq!(esco_skill_uuid("http://data.europa.eu/esco/skill/"), None);
    }
}
