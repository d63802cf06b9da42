//! Ordered key-value engines behind one small trait, so that sled can be replaced later.
//!
//! The trait is deliberately narrow (point reads, bounded prefix scans, atomic batches,
//! flush): everything the record store needs and nothing sled-specific. Every engine
//! must pass `testsuite::engine_suite`.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, PoisonError, RwLock};

use crate::error::Result;
pub use crate::sled_engine::{SledEngine, SledOptions, DEFAULT_RESERVE_BYTES, RESERVE_FILE};

/// An owned key and value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// Entries fetched per engine call by [`Scan`] unless told otherwise.
pub const DEFAULT_SCAN_CHUNK: usize = 256;

/// One write of a [`WriteBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp {
    Put { key: Vec<u8>, value: Vec<u8> },
    Delete { key: Vec<u8> },
}

/// Puts and deletes applied all or nothing; when a key appears twice, the later op wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<BatchOp>,
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(BatchOp::Put {
            key: key.into(),
            value: value.into(),
        });
    }

    pub fn delete(&mut self, key: impl Into<Vec<u8>>) {
        self.ops.push(BatchOp::Delete { key: key.into() });
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn ops(&self) -> &[BatchOp] {
        &self.ops
    }

    pub fn into_ops(self) -> Vec<BatchOp> {
        self.ops
    }
}

/// An ordered byte-key store.
pub trait Engine: Send + Sync + 'static {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Up to `limit` entries, ascending, whose key starts with `prefix` and is `>= start`.
    /// A `start` below the prefix range means "from the first key of the prefix".
    fn scan(&self, prefix: &[u8], start: &[u8], limit: usize) -> Result<Vec<KeyValue>>;

    /// The greatest entry whose key starts with `prefix`.
    fn last_with_prefix(&self, prefix: &[u8]) -> Result<Option<KeyValue>>;

    /// Number of keys starting with `prefix`. Engines should override this when they can
    /// count without copying values.
    fn count_prefix(&self, prefix: &[u8]) -> Result<u64> {
        let mut n = 0u64;
        for item in Scan::new(self, prefix, prefix, DEFAULT_SCAN_CHUNK) {
            item?;
            n += 1;
        }
        Ok(n)
    }

    /// Applies every op or none, also as seen by concurrent readers of single keys.
    fn apply(&self, batch: WriteBatch) -> Result<()>;

    /// Returns once everything applied before the call is durable on disk.
    fn flush(&self) -> Result<()>;

    fn size_on_disk(&self) -> Result<u64>;

    /// A lazy ascending iterator over the prefix from `start`, fetching chunks of
    /// [`DEFAULT_SCAN_CHUNK`] entries. Not a snapshot: writes between chunks may show.
    fn iter_prefix(&self, prefix: &[u8], start: &[u8]) -> Scan<'_, Self>
    where
        Self: Sized,
    {
        Scan::new(self, prefix, start, DEFAULT_SCAN_CHUNK)
    }
}

/// Lazy prefix scan built on [`Engine::scan`]: it holds no engine lock between chunks,
/// so a slow consumer (a streamed page, a backup) never blocks writers.
pub struct Scan<'a, E: Engine + ?Sized> {
    engine: &'a E,
    prefix: Vec<u8>,
    next: Vec<u8>,
    chunk: usize,
    buf: VecDeque<KeyValue>,
    done: bool,
}

impl<'a, E: Engine + ?Sized> Scan<'a, E> {
    pub fn new(engine: &'a E, prefix: &[u8], start: &[u8], chunk: usize) -> Self {
        Scan {
            engine,
            prefix: prefix.to_vec(),
            next: start.to_vec(),
            chunk: chunk.max(1),
            buf: VecDeque::new(),
            done: false,
        }
    }

    /// Sets how many entries each engine call fetches.
    pub fn with_chunk(mut self, chunk: usize) -> Self {
        self.chunk = chunk.max(1);
        self
    }
}

impl<E: Engine + ?Sized> Iterator for Scan<'_, E> {
    type Item = Result<KeyValue>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            if self.done {
                return None;
            }
            match self.engine.scan(&self.prefix, &self.next, self.chunk) {
                Ok(page) => {
                    if page.len() < self.chunk {
                        self.done = true;
                    }
                    if let Some((last, _)) = page.last() {
                        self.next = successor(last);
                    }
                    self.buf.extend(page);
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        self.buf.pop_front().map(Ok)
    }
}

/// The smallest key greater than `key`.
pub fn successor(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.extend_from_slice(key);
    k.push(0);
    k
}

/// The smallest key greater than every key starting with `prefix`; `None` when no such
/// key exists (empty prefix or all 0xff).
pub fn prefix_upper_bound(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The key range of a scan, or `None` when it is empty. Both engines panic on
/// reversed ranges, hence the explicit check.
pub(crate) fn scan_bounds(prefix: &[u8], start: &[u8]) -> Option<(Vec<u8>, Bound<Vec<u8>>)> {
    let from = if start < prefix { prefix } else { start };
    match prefix_upper_bound(prefix) {
        Some(end) if from >= end.as_slice() => None,
        Some(end) => Some((from.to_vec(), Bound::Excluded(end))),
        None => Some((from.to_vec(), Bound::Unbounded)),
    }
}

/// In-memory engine for tests and deterministic simulations: a `BTreeMap` under a lock.
///
/// A clone is another handle to the same map, so a simulated crash-restart can drop a
/// [`crate::RecordStore`] and open a new one on a clone. Everything applied survives
/// such a restart, flushed or not (unlike sled after a crash). Open only one store on
/// the map at a time: two stores would each allocate seqs. The data lives until the
/// last handle is dropped.
#[derive(Default, Clone)]
pub struct MemEngine {
    map: Arc<RwLock<BTreeMap<Vec<u8>, Vec<u8>>>>,
}

impl MemEngine {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        // A panic cannot leave the map half-written (apply only runs infallible inserts),
        // so a poisoned lock still guards a consistent map.
        self.map.read().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Engine for MemEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.read().get(key).cloned())
    }

    fn scan(&self, prefix: &[u8], start: &[u8], limit: usize) -> Result<Vec<KeyValue>> {
        let Some((from, end)) = scan_bounds(prefix, start) else {
            return Ok(Vec::new());
        };
        let map = self.read();
        let end = match &end {
            Bound::Excluded(e) => Bound::Excluded(e.as_slice()),
            _ => Bound::Unbounded,
        };
        Ok(map
            .range::<[u8], _>((Bound::Included(from.as_slice()), end))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn last_with_prefix(&self, prefix: &[u8]) -> Result<Option<KeyValue>> {
        let map = self.read();
        let upper = prefix_upper_bound(prefix);
        let end = match &upper {
            Some(e) => Bound::Excluded(e.as_slice()),
            None => Bound::Unbounded,
        };
        Ok(map
            .range::<[u8], _>((Bound::Included(prefix), end))
            .next_back()
            .map(|(k, v)| (k.clone(), v.clone())))
    }

    fn apply(&self, batch: WriteBatch) -> Result<()> {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        for op in batch.into_ops() {
            match op {
                BatchOp::Put { key, value } => {
                    map.insert(key, value);
                }
                BatchOp::Delete { key } => {
                    map.remove(&key);
                }
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    /// Bytes held in keys and values, standing in for a file size.
    fn size_on_disk(&self) -> Result<u64> {
        Ok(self
            .read()
            .iter()
            .map(|(k, v)| (k.len() + v.len()) as u64)
            .sum())
    }
}

/// Either engine behind one concrete type, so that the node can run on sled in
/// production and on memory in simulations without being generic over the engine.
#[derive(Clone)]
pub enum AnyEngine {
    Sled(SledEngine),
    Mem(MemEngine),
}

impl AnyEngine {
    /// Why writes are refused right now (a full or read-only data folder), if they are.
    pub fn write_failure(&self) -> Option<crate::StoreError> {
        match self {
            AnyEngine::Sled(e) => e.write_failure(),
            AnyEngine::Mem(_) => None,
        }
    }
}

impl From<SledEngine> for AnyEngine {
    fn from(e: SledEngine) -> Self {
        AnyEngine::Sled(e)
    }
}

impl From<MemEngine> for AnyEngine {
    fn from(e: MemEngine) -> Self {
        AnyEngine::Mem(e)
    }
}

macro_rules! delegate {
    ($self:ident, $e:ident => $call:expr) => {
        match $self {
            AnyEngine::Sled($e) => $call,
            AnyEngine::Mem($e) => $call,
        }
    };
}

impl Engine for AnyEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        delegate!(self, e => e.get(key))
    }

    fn scan(&self, prefix: &[u8], start: &[u8], limit: usize) -> Result<Vec<KeyValue>> {
        delegate!(self, e => e.scan(prefix, start, limit))
    }

    fn last_with_prefix(&self, prefix: &[u8]) -> Result<Option<KeyValue>> {
        delegate!(self, e => e.last_with_prefix(prefix))
    }

    fn count_prefix(&self, prefix: &[u8]) -> Result<u64> {
        delegate!(self, e => e.count_prefix(prefix))
    }

    fn apply(&self, batch: WriteBatch) -> Result<()> {
        delegate!(self, e => e.apply(batch))
    }

    fn flush(&self) -> Result<()> {
        delegate!(self, e => e.flush())
    }

    fn size_on_disk(&self) -> Result<u64> {
        delegate!(self, e => e.size_on_disk())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsuite::engine_suite;

    #[test]
    fn any_engine_passes_the_suite_on_both_engines() {
        engine_suite(&AnyEngine::from(MemEngine::new()));
        let dir = tempfile::tempdir().unwrap();
        let sled = SledEngine::open(dir.path().join("db"), 8 << 20).unwrap();
        engine_suite(&AnyEngine::from(sled));
    }

    #[test]
    fn mem_engine_clones_share_the_map() {
        let a = MemEngine::new();
        let b = a.clone();
        let mut batch = WriteBatch::new();
        batch.put(b"k".to_vec(), b"v".to_vec());
        a.apply(batch).unwrap();
        drop(a);
        assert_eq!(b.get(b"k").unwrap(), Some(b"v".to_vec()));
        let mut batch = WriteBatch::new();
        batch.delete(b"k".to_vec());
        b.clone().apply(batch).unwrap();
        assert_eq!(b.get(b"k").unwrap(), None);
        // a new engine is a new map
        assert_eq!(MemEngine::new().count_prefix(b"").unwrap(), 0);
    }

    #[test]
    fn mem_engine_passes_the_suite() {
        engine_suite(&MemEngine::new());
    }

    #[test]
    fn sled_engine_passes_the_suite() {
        let dir = tempfile::tempdir().unwrap();
        let engine = SledEngine::open(dir.path().join("db"), 8 << 20).unwrap();
        engine_suite(&engine);
    }

    #[test]
    fn sled_engine_keeps_flushed_data_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let engine = SledEngine::open(&path, 8 << 20).unwrap();
            let mut b = WriteBatch::new();
            b.put(b"a".to_vec(), b"1".to_vec());
            b.put(b"b".to_vec(), b"2".to_vec());
            engine.apply(b).unwrap();
            engine.flush().unwrap();
            assert!(engine.size_on_disk().unwrap() > 0);
        }
        let engine = SledEngine::open(&path, 8 << 20).unwrap();
        assert_eq!(engine.get(b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(engine.count_prefix(b"").unwrap(), 2);
    }

    #[test]
    fn upper_bounds() {
        assert_eq!(prefix_upper_bound(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_upper_bound(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_upper_bound(&[0xff, 0xff]), None);
        assert_eq!(prefix_upper_bound(b""), None);
    }
}
