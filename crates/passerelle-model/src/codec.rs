//! Canonical encoding of record content: what the store compares for no-op puts and what origins sign.
//!
//! The content excludes the fields the origin node assigns (revision and
//! change time), so re-putting equal content is recognised whatever the
//! client sends there. A leading format byte lets a later release migrate.

use crate::ids::Kind;
use crate::records::{Record, Shortage, SupplyCell, Vacancy};

/// Version of the content encoding (postcard of the record structs).
pub const CONTENT_FORMAT: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("unknown content format {0}")]
    UnknownFormat(u8),
    #[error("empty content")]
    Empty,
    #[error("content does not decode: {0}")]
    Decode(#[from] postcard::Error),
    #[error("{0}")]
    Invalid(String),
}

/// Canonical bytes of a record's content (revision and change time zeroed).
pub fn encode_content(record: &Record) -> Vec<u8> {
    // puts arrive with the version already cleared: copy only when it is not
    let cleared;
    let r = if record.revision() == 0 && record.updated_at_micros() == 0 {
        record
    } else {
        let mut c = record.clone();
        c.set_version(0, 0);
        cleared = c;
        &cleared
    };
    let mut out = vec![CONTENT_FORMAT];
    let body = match r {
        Record::Vacancy(v) => postcard::to_stdvec(v),
        Record::Shortage(s) => postcard::to_stdvec(s),
        Record::Supply(c) => postcard::to_stdvec(c),
    }
    .expect("records always serialise");
    out.extend_from_slice(&body);
    out
}

/// Decodes content written by [`encode_content`]; revision and change time are left at 0.
pub fn decode_content(kind: Kind, bytes: &[u8]) -> Result<Record, CodecError> {
    let (&format, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if format != CONTENT_FORMAT {
        return Err(CodecError::UnknownFormat(format));
    }
    Ok(match kind {
        Kind::Vacancy => Record::Vacancy(postcard::from_bytes::<Vacancy>(body)?),
        Kind::Shortage => Record::Shortage(postcard::from_bytes::<Shortage>(body)?),
        Kind::Supply => Record::Supply(postcard::from_bytes::<SupplyCell>(body)?),
    })
}
