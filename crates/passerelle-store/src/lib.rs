//! Record store and sync log of a passerelle node, over an ordered key-value engine.
//!
//! Layers, bottom up: [`engine`] (sled in production, which survives a full or read-only
//! data folder without a restart, see [`SledEngine`]; a `BTreeMap` in tests and
//! simulations; [`AnyEngine`] to pick one at run time; one shared test suite) and
//! [`records`] (records of every origin, revisions, the compacted sync log, tombstone
//! purge, peer cursors, a small metadata map, consistency check and state digest).
//! Record content is opaque bytes: the caller validates and canonically encodes domain
//! records before they get here.

mod codec;
pub mod engine;
mod error;
pub mod records;
mod sled_engine;
#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;

pub use engine::{
    AnyEngine, BatchOp, Engine, KeyValue, MemEngine, Scan, SledEngine, SledOptions, WriteBatch,
    DEFAULT_RESERVE_BYTES, RESERVE_FILE,
};
pub use error::{DiskProblem, Result, StoreError};
pub use records::{
    ConsistencyReport, ExportSummary, LogEntry, PutOutcome, RecordStore, Replica, ReplicaOutcome,
    StateDigest, StoredRecord,
};
