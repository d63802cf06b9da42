//! Storage layout (layout 1): how record keys, log entries and metadata map to engine bytes.
//!
//! Key spaces, chosen so that the hot writes are appends:
//! - `r` + kind tag + origin + `/` + id -> [`RecordValue`] (ids of one origin are
//!   usually issued in order, so imports append)
//! - `l` + seq as u64 big-endian -> [`LogValue`] (strictly increasing: always appends;
//!   exactly one entry per stored record, at the record's seq)
//! - `m` + name -> metadata:
//!   - `mlayout` -> [`MetaLayout`]
//!   - `mhead` -> [`MetaSeq`], the head seq, written by every batch that allocates one
//!     (the newest log entry may be compacted or purged, so it cannot tell the head)
//!   - `mpurged` -> [`MetaSeq`], the highest seq of anything purged so far
//!   - `mc` + peer agency -> [`MetaSeq`], the sync cursor of that peer
//!   - `mu` + name -> [`MetaBytes`], the caller's own metadata map
//!
//!   The fixed names never start with a sub-prefix (`mc`, `mu`), so the open-ended
//!   key families cannot collide with them or with each other.
//!
//! Every value is a format byte ([`FORMAT_V1`]) then postcard: a later release reads the
//! byte and migrates what it does not write itself.

use passerelle_model::{AgencyId, Kind, RecordKey};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};

pub(crate) const FORMAT_V1: u8 = 1;
pub(crate) const LAYOUT: u32 = 1;

pub(crate) const RECORD: u8 = b'r';
pub(crate) const LOG: u8 = b'l';
pub(crate) const META: u8 = b'm';
pub(crate) const META_LAYOUT: &[u8] = b"mlayout";
pub(crate) const META_HEAD: &[u8] = b"mhead";
pub(crate) const META_PURGED: &[u8] = b"mpurged";
pub(crate) const META_CURSOR: &[u8] = b"mc";
pub(crate) const META_USER: &[u8] = b"mu";
/// Every fixed metadata key; none starts with [`META_CURSOR`] or [`META_USER`].
#[cfg(test)]
pub(crate) const META_FIXED: [&[u8]; 3] = [META_LAYOUT, META_HEAD, META_PURGED];

/// The value stored under a record key. The key itself is not repeated: it is the
/// storage key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RecordValue {
    pub revision: u64,
    pub updated_at_micros: i64,
    /// The log entry of this version, so that log compaction can tell superseded
    /// entries from live ones without a scan.
    pub seq: u64,
    #[serde(with = "bytes")]
    pub content: Vec<u8>,
    #[serde(with = "bytes")]
    pub seal: Vec<u8>,
}

/// The value of a sync-log entry. The kind is stored as its one-byte tag, not as a
/// serde enum index, so reordering `Kind` can never change stored data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LogValue {
    pub kind: u8,
    pub origin: String,
    pub id: String,
    pub revision: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MetaLayout {
    pub layout: u32,
}

/// A sequence number kept as metadata: head, purge horizon, peer cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MetaSeq {
    pub seq: u64,
}

/// A value of the caller's metadata map, opaque here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MetaBytes {
    #[serde(with = "bytes")]
    pub value: Vec<u8>,
}

/// `prefix` followed by `name`: the key of a cursor or of a user metadata entry.
pub(crate) fn meta_name_key(prefix: &[u8], name: &str) -> Vec<u8> {
    [prefix, name.as_bytes()].concat()
}

/// The name in a key made by [`meta_name_key`] with the same `prefix`.
pub(crate) fn decode_meta_name(prefix: &[u8], k: &[u8]) -> Result<String> {
    let rest = k
        .strip_prefix(prefix)
        .ok_or_else(|| StoreError::corrupt(k, "wrong metadata prefix"))?;
    String::from_utf8(rest.to_vec()).map_err(|_| StoreError::corrupt(k, "name is not utf-8"))
}

pub(crate) fn record_key(key: &RecordKey) -> Vec<u8> {
    let origin = key.origin.as_str().as_bytes();
    let mut k = Vec::with_capacity(3 + origin.len() + key.id.len());
    k.push(RECORD);
    k.push(key.kind.tag());
    k.extend_from_slice(origin);
    k.push(b'/');
    k.extend_from_slice(key.id.as_bytes());
    k
}

/// The prefix of all records, of one kind, or of one kind and origin. The trailing `/`
/// after the origin keeps `be.vdab` from matching `be.vdab-x`.
pub(crate) fn record_prefix(kind: Option<Kind>, origin: Option<&AgencyId>) -> Vec<u8> {
    let mut p = vec![RECORD];
    if let Some(kind) = kind {
        p.push(kind.tag());
        if let Some(origin) = origin {
            p.extend_from_slice(origin.as_str().as_bytes());
            p.push(b'/');
        }
    }
    p
}

pub(crate) fn decode_record_key(k: &[u8]) -> Result<RecordKey> {
    let bad = |reason: &str| StoreError::corrupt(k, reason);
    if k.len() < 3 || k[0] != RECORD {
        return Err(bad("not a record key"));
    }
    let kind = Kind::from_tag(k[1]).ok_or_else(|| bad("unknown kind tag"))?;
    let rest = std::str::from_utf8(&k[2..]).map_err(|_| bad("record key is not utf-8"))?;
    let (origin, id) = rest
        .split_once('/')
        .ok_or_else(|| bad("record key has no '/'"))?;
    let origin = AgencyId::parse(origin).map_err(|e| bad(&e.to_string()))?;
    RecordKey::new(origin, kind, id).map_err(|e| bad(&e.to_string()))
}

pub(crate) fn log_key(seq: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = LOG;
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

pub(crate) fn decode_log_key(k: &[u8]) -> Result<u64> {
    match k {
        [LOG, rest @ ..] if rest.len() == 8 => {
            Ok(u64::from_be_bytes(rest.try_into().expect("length checked")))
        }
        _ => Err(StoreError::corrupt(k, "not a log key")),
    }
}

impl LogValue {
    pub fn new(key: &RecordKey, revision: u64) -> Self {
        LogValue {
            kind: key.kind.tag(),
            origin: key.origin.as_str().to_owned(),
            id: key.id.clone(),
            revision,
        }
    }

    pub fn record_key(&self, storage_key: &[u8]) -> Result<RecordKey> {
        let bad = |reason: String| StoreError::corrupt(storage_key, reason);
        let kind = Kind::from_tag(self.kind).ok_or_else(|| bad("unknown kind tag".into()))?;
        let origin = AgencyId::parse(&self.origin).map_err(|e| bad(e.to_string()))?;
        RecordKey::new(origin, kind, self.id.as_str()).map_err(|e| bad(e.to_string()))
    }
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_extend(value, vec![FORMAT_V1])
        .expect("postcard cannot fail on these types when writing to a Vec")
}

/// Decodes a value written by [`encode`]; `key` only names the culprit in errors.
pub(crate) fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T> {
    match bytes.split_first() {
        Some((&FORMAT_V1, body)) => {
            postcard::from_bytes(body).map_err(|e| StoreError::corrupt(key, e.to_string()))
        }
        Some((&version, _)) => Err(StoreError::UnsupportedFormat {
            key: key.escape_ascii().to_string(),
            version,
        }),
        None => Err(StoreError::corrupt(key, "empty value")),
    }
}

/// Byte strings as postcard byte arrays (length + raw bytes), which is the same wire
/// form as a sequence of `u8` but written and read in one call instead of per byte.
mod bytes {
    use serde::de::{SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(BytesVisitor)
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a byte string")
        }

        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
            while let Some(b) = seq.next_element()? {
                v.push(b);
            }
            Ok(v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> RecordKey {
        s.parse().unwrap()
    }

    #[test]
    fn record_keys_round_trip_and_prefixes_do_not_leak() {
        let k = key("be.vdab/vacancy/V-2026-00042");
        let b = record_key(&k);
        assert_eq!(b, b"rvbe.vdab/V-2026-00042");
        assert_eq!(decode_record_key(&b).unwrap(), k);
        let vdab = AgencyId::parse("be.vdab").unwrap();
        let p = record_prefix(Some(Kind::Vacancy), Some(&vdab));
        assert!(b.starts_with(&p));
        assert!(!record_key(&key("be.vdab-x/vacancy/V-1")).starts_with(&p));
        assert!(decode_record_key(b"rxbe.vdab/1").is_err());
        assert!(decode_record_key(b"rvbe.vdab").is_err());
        assert!(decode_record_key(b"rvBE.vdab/1").is_err());
    }

    #[test]
    fn metadata_families_cannot_collide() {
        for fixed in META_FIXED {
            assert!(fixed.starts_with(&[META]));
            assert!(!fixed.starts_with(META_CURSOR), "{}", fixed.escape_ascii());
            assert!(!fixed.starts_with(META_USER), "{}", fixed.escape_ascii());
        }
        assert!(!META_CURSOR.starts_with(META_USER) && !META_USER.starts_with(META_CURSOR));
        // a user name that spells a cursor key or a fixed key stays in its own family
        let k = meta_name_key(META_USER, "c/be.vdab");
        assert!(k.starts_with(META_USER) && !k.starts_with(META_CURSOR));
        assert_eq!(decode_meta_name(META_USER, &k).unwrap(), "c/be.vdab");
        assert_eq!(meta_name_key(META_CURSOR, "be.vdab"), b"mcbe.vdab");
        assert!(decode_meta_name(META_CURSOR, &k).is_err());
        assert!(decode_meta_name(META_USER, &[b'm', b'u', 0xff]).is_err());
    }

    #[test]
    fn log_keys_sort_by_seq() {
        assert!(log_key(255) < log_key(256));
        assert_eq!(decode_log_key(&log_key(u64::MAX)).unwrap(), u64::MAX);
        assert!(decode_log_key(b"l123").is_err());
    }

    #[test]
    fn values_carry_a_format_byte() {
        let v = RecordValue {
            revision: 3,
            updated_at_micros: -5,
            seq: 9,
            content: vec![0, 1, 2, 255],
            seal: vec![7; 64],
        };
        let bytes = encode(&v);
        assert_eq!(bytes[0], FORMAT_V1);
        assert_eq!(decode::<RecordValue>(b"k", &bytes).unwrap(), v);
        // the byte-string form equals postcard's default sequence form
        #[derive(Deserialize)]
        struct Plain {
            revision: u64,
            updated_at_micros: i64,
            seq: u64,
            content: Vec<u8>,
            seal: Vec<u8>,
        }
        let p: Plain = postcard::from_bytes(&bytes[1..]).unwrap();
        assert_eq!(
            (p.revision, p.updated_at_micros, p.seq, p.content, p.seal),
            (v.revision, v.updated_at_micros, v.seq, v.content, v.seal)
        );
        let mut future = bytes.clone();
        future[0] = 2;
        assert!(matches!(
            decode::<RecordValue>(b"k", &future),
            Err(StoreError::UnsupportedFormat { version: 2, .. })
        ));
        assert!(matches!(
            decode::<RecordValue>(b"k", &[]),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(decode::<RecordValue>(b"k", &bytes[..bytes.len() - 1]).is_err());
    }
}
