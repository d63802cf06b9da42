//! The one error type of the store.

use std::fmt;
use std::path::PathBuf;
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
    /// The data folder cannot take writes (full, read-only, failing): this write was not
    /// stored, and writes stay refused until the folder can take them again (no restart
    /// needed; see `SledEngine`). Reads go on.
    #[error("data folder {} {problem}: the store cannot write ({detail})", folder.display())]
    Unwritable {
        folder: PathBuf,
        problem: DiskProblem,
        detail: String,
    },
}

/// Why a data folder cannot take writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskProblem {
    /// No space left (or a quota reached).
    Full,
    /// A read-only file system, or no permission to write.
    ReadOnly,
    /// Any other input/output error.
    Failing,
}

impl DiskProblem {
    /// The problem an IO error stands for.
    pub fn of(e: &std::io::Error) -> DiskProblem {
        use std::io::ErrorKind;
        match e.kind() {
            ErrorKind::StorageFull | ErrorKind::QuotaExceeded => DiskProblem::Full,
            ErrorKind::ReadOnlyFilesystem | ErrorKind::PermissionDenied => DiskProblem::ReadOnly,
            _ => DiskProblem::Failing,
        }
    }
}

impl fmt::Display for DiskProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DiskProblem::Full => "is full",
            DiskProblem::ReadOnly => "is read-only",
            DiskProblem::Failing => "is failing",
        })
    }
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
