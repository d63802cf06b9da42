//! Signed record versions: the exact bytes an origin signs (payload) and the seal kept beside them.
//!
//! The payload binds the key, the revision and the change time to the
//! canonical content, so a relay can neither alter a record nor replay one
//! version under another key or revision without the signature failing.

use serde::{Deserialize, Serialize};

use crate::codec::CodecError;
use crate::ids::RecordKey;

/// Version of the payload encoding (postcard of [`PayloadV1`]).
pub const PAYLOAD_FORMAT: u8 = 1;
/// Version of the seal encoding.
pub const SEAL_FORMAT: u8 = 1;

#[derive(Serialize, Deserialize)]
struct PayloadV1 {
    key: String,
    revision: u64,
    updated_at_micros: i64,
    content: Vec<u8>,
}

/// A decoded payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub key: RecordKey,
    pub revision: u64,
    pub updated_at_micros: i64,
    pub content: Vec<u8>,
}

/// The bytes an origin signs for one record version.
pub fn encode_payload(
    key: &RecordKey,
    revision: u64,
    updated_at_micros: i64,
    content: &[u8],
) -> Vec<u8> {
    let body = postcard::to_stdvec(&PayloadV1 {
        key: key.to_string(),
        revision,
        updated_at_micros,
        content: content.to_vec(),
    })
    .expect("payloads always serialise");
    let mut out = Vec::with_capacity(body.len() + 1);
    out.push(PAYLOAD_FORMAT);
    out.extend_from_slice(&body);
    out
}

pub fn decode_payload(bytes: &[u8]) -> Result<Payload, CodecError> {
    let (&format, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if format != PAYLOAD_FORMAT {
        return Err(CodecError::UnknownFormat(format));
    }
    let p: PayloadV1 = postcard::from_bytes(body)?;
    let key = p
        .key
        .parse()
        .map_err(|e: crate::ids::IdError| CodecError::Invalid(e.to_string()))?;
    Ok(Payload {
        key,
        revision: p.revision,
        updated_at_micros: p.updated_at_micros,
        content: p.content,
    })
}

/// The origin's signature over a payload, with the id of the key that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    pub key_id: String,
    pub signature: Vec<u8>,
}

impl Seal {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![SEAL_FORMAT];
        out.extend_from_slice(&postcard::to_stdvec(self).expect("seals always serialise"));
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Seal, CodecError> {
        let (&format, body) = bytes.split_first().ok_or(CodecError::Empty)?;
        if format != SEAL_FORMAT {
            return Err(CodecError::UnknownFormat(format));
        }
        Ok(postcard::from_bytes(body)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips_and_is_deterministic() {
        let key: RecordKey = "be.vdab/vacancy/V-1".parse().unwrap();
        let a = encode_payload(&key, 3, 1_700_000_000_000_000, b"content");
        assert_eq!(
            a,
            encode_payload(&key, 3, 1_700_000_000_000_000, b"content")
        );
        let p = decode_payload(&a).unwrap();
        assert_eq!(p.key, key);
        assert_eq!(p.revision, 3);
        assert_eq!(p.content, b"content");
        assert_ne!(
            a,
            encode_payload(&key, 4, 1_700_000_000_000_000, b"content")
        );
        assert!(decode_payload(&[9, 1, 2]).is_err());
    }

    #[test]
    fn seal_round_trips() {
        let s = Seal {
            key_id: "abcd".into(),
            signature: vec![7; 64],
        };
        assert_eq!(Seal::decode(&s.encode()).unwrap(), s);
    }
}
