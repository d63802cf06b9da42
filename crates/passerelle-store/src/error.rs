//! The one error type of the store.

use std::sync::Arc;

use passerelle_model::RecordKey;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What can go wrong in the store. `Clone` so that a failed batch can report its error
/// on every item it carried.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("storage engine: {0}")]
    Engine(Arc<dyn std::error::Error + Send + Sync>),
    #[error("corrupt value at {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("unsupported format version {version} at {key}")]
    UnsupportedFormat { key: String, version: u8 },
    #[error("revision mismatch on {key}: expected {expected}, stored {actual}")]
    RevisionMismatch {
        key: RecordKey,
        expected: u64,
        actual: u64,
    },
    #[error("revision overflow on {key}")]
    RevisionOverflow { key: RecordKey },
    #[error("the store is not empty ({keys} keys): a restore only goes into an empty store")]
    NotEmpty { keys: u64 },
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Engine(Arc::new(e))
    }
}

impl StoreError {
    pub(crate) fn corrupt(key: &[u8], reason: impl Into<String>) -> Self {
        StoreError::Corrupt {
            key: key.escape_ascii().to_string(),
            reason: reason.into(),
        }
    }
}
