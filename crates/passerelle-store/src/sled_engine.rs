//! sled 0.34 behind [`Engine`], and how the store lives through a full or read-only disk.
//!
//! What sled 0.34 does after an IO error (read in its source and measured on a full
//! tmpfs): the first error of a database is latched (`Config::global_error`) and every
//! later write fails with it, also once space is back, until the database is opened
//! again. A batch that fails half-way stays half-applied in memory (on disk batches are
//! atomic), a flushed batch is durable, and on a latched database some reads fail and a
//! scan can spin in a node split that can never be logged. Opening needs a little free
//! space: it fails on a disk with none at all.
//!
//! So, after a failed write or flush, this engine at once deletes its reserve file (a
//! file of [`SledOptions::reserve_bytes`] kept in the data folder to make that room),
//! reopens the database, which drops the latch and any half-applied batch, and replays
//! the batches that were applied but not yet flushed, so readers keep seeing exactly
//! the applied state. Writes are then refused with [`StoreError::Unwritable`], quickly
//! and without touching sled, until the folder is writable with twice the reserve free;
//! the next write then rewrites the reserve and goes on, without a restart. A flush
//! returns `Ok` only once every batch applied before it is on disk. On a read-only file
//! system the database cannot be reopened (sled opens its file for writing): it stays
//! open, latched, for reads.
//!
//! sled's flush is not an fsync on Linux: it writes its log with `sync_file_range`, which
//! makes the bytes durable but not the file's size and block allocation (the journal
//! commits those within seconds; sled's own background thread calls `sync_all` every
//! 500 ms). Writes acknowledged just before an ext4 abort (`errors=remount-ro`) were
//! lost that way, as they would be by a power cut. So a flush here also calls
//! `fdatasync` on sled's file whenever its size or allocated blocks changed since the
//! last one: every flush while the file grows, none while sled reuses its space.

use std::collections::VecDeque;
use std::io::Write as _;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockWriteGuard, TryLockError};
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use crate::engine::{scan_bounds, BatchOp, Engine, KeyValue, WriteBatch, DEFAULT_SCAN_CHUNK};
use crate::error::{DiskProblem, Result, StoreError};

/// Size of the reserve file unless told otherwise: room for sled to reopen and replay
/// one large batch (an import batch of 1000 records is about 2 MB).
pub const DEFAULT_RESERVE_BYTES: u64 = 8 << 20;

/// The reserve file, in the data folder (sled ignores files it does not know).
pub const RESERVE_FILE: &str = "passerelle.reserve";

/// A small file written and removed to learn whether the folder takes writes again.
const PROBE_FILE: &str = "passerelle.probe";

/// How long a reopen waits for reads in progress on the failed database.
const REOPEN_WAIT: Duration = Duration::from_secs(30);

/// How long a first open waits for the lock: a node restarted in the same process (tests, a
/// failed start retried) finds the previous instance's IO threads still holding it for a
/// moment; another process holding it is reported after this.
const OPEN_LOCK_WAIT: Duration = Duration::from_secs(3);

/// How often reads retry opening a database that could not be reopened.
const READ_REOPEN_INTERVAL: Duration = Duration::from_secs(1);

/// How a sled engine is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SledOptions {
    pub cache_capacity_bytes: u64,
    /// Size of the reserve file; 0 keeps none (then a full disk leaves the store without
    /// a database, reads included, until space is back).
    pub reserve_bytes: u64,
}

impl SledOptions {
    pub fn new(cache_capacity_bytes: u64) -> Self {
        SledOptions {
            cache_capacity_bytes,
            reserve_bytes: DEFAULT_RESERVE_BYTES,
        }
    }
}

/// sled 0.34 on one tree: a `sled::Batch` is only atomic within a single tree, so every
/// key space of the store shares the default tree. A clone is another handle to the
/// same database.
#[derive(Clone)]
pub struct SledEngine {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    options: SledOptions,
    /// `None` only after a reopen failed.
    db: RwLock<Option<sled::Db>>,
    /// Bumped each time `db` is replaced, so that an error of a database already
    /// replaced does not trigger another reopen.
    generation: AtomicU64,
    /// Writes and recovery, one at a time. Lock order: `writer`, then `db`, then `synced`.
    writer: Mutex<Writer>,
    /// sled's file as last made durable with `fdatasync`: (length, allocated blocks).
    synced: Mutex<Option<(u64, u64)>>,
}

#[derive(Default)]
struct Writer {
    /// Batches applied but not known to be durable, with their number: what a reopen
    /// replays. Trimmed by every successful flush.
    pending: VecDeque<(u64, Vec<BatchOp>)>,
    pending_bytes: usize,
    /// Number of the next batch applied.
    next: u64,
    /// Set while writes are refused.
    failure: Option<Failure>,
    /// The open database has latched an error.
    latched: bool,
    last_read_reopen: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Failure {
    problem: DiskProblem,
    detail: String,
}

/// A sled call on the current database, or the reason there is none.
enum DbCall<T> {
    Done(sled::Result<T>, u64),
    Closed,
}

impl SledEngine {
    /// Opens or creates the database at `path` with the default reserve. Compression
    /// stays off: measured slower and memory-hungry on this workload (STYLE.md, Storage).
    pub fn open(path: impl AsRef<Path>, cache_capacity_bytes: u64) -> Result<Self> {
        Self::open_with(path, SledOptions::new(cache_capacity_bytes))
    }

    /// Opens or creates the database at `path`. On a full disk it deletes its reserve
    /// to make room; when the reserve cannot be written, the store opens with writes
    /// refused (reads work) until space is back.
    pub fn open_with(path: impl AsRef<Path>, options: SledOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let db = match wait_for_lock(&path, options.cache_capacity_bytes, OPEN_LOCK_WAIT) {
            Ok(db) => db,
            Err(e) if problem_of(&e) == Some(DiskProblem::Full) => {
                remove_reserve(&path);
                open_sled(&path, options.cache_capacity_bytes).map_err(|e| sled_error(&path, e))?
            }
            Err(e) => return Err(sled_error(&path, e)),
        };
        let mut writer = Writer::default();
        if let Err(e) = ensure_reserve(&path, options.reserve_bytes) {
            let failure = Failure {
                problem: DiskProblem::of(&e),
                detail: format!(
                    "no room for the {} reserve: {e}",
                    mib(options.reserve_bytes)
                ),
            };
            warn!(
                folder = %path.display(),
                problem = %failure.problem,
                error = %e,
                "store opened with writes refused"
            );
            writer.failure = Some(failure);
        }
        Ok(SledEngine {
            inner: Arc::new(Inner {
                path,
                options,
                db: RwLock::new(Some(db)),
                generation: AtomicU64::new(0),
                writer: Mutex::new(writer),
                synced: Mutex::new(None),
            }),
        })
    }

    /// The data folder.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Why writes are refused right now, if they are (for status and logs).
    pub fn write_failure(&self) -> Option<StoreError> {
        let w = self.inner.writer();
        w.failure.as_ref().map(|f| self.inner.unwritable(f))
    }
}

impl Inner {
    fn writer(&self) -> MutexGuard<'_, Writer> {
        // Writer state only changes together with the database it describes; a panic
        // in sled while holding the lock leaves it describing that database still.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn unwritable(&self, f: &Failure) -> StoreError {
        StoreError::Unwritable {
            folder: self.path.clone(),
            problem: f.problem,
            detail: f.detail.clone(),
        }
    }

    /// sled's flush, then `fdatasync` of its file when the file's size or allocation
    /// changed since the last one (see the module doc).
    fn flush_db(&self) -> DbCall<()> {
        match self.call(|db| db.flush()) {
            DbCall::Done(Ok(_), generation) => {
                DbCall::Done(self.sync_file().map_err(sled::Error::Io), generation)
            }
            DbCall::Done(Err(e), generation) => DbCall::Done(Err(e), generation),
            DbCall::Closed => DbCall::Closed,
        }
    }

    fn sync_file(&self) -> std::io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let path = self.path.join("db");
        let mut synced = self.synced.lock().unwrap_or_else(PoisonError::into_inner);
        let m = std::fs::metadata(&path)?;
        let now = (m.len(), m.blocks());
        if *synced != Some(now) {
            std::fs::File::open(&path)?.sync_data()?;
            *synced = Some(now);
        }
        Ok(())
    }

    fn call<T>(&self, f: impl FnOnce(&sled::Db) -> sled::Result<T>) -> DbCall<T> {
        let db = self.db.read().unwrap_or_else(PoisonError::into_inner);
        let generation = self.generation.load(Ordering::Acquire);
        match db.as_ref() {
            Some(db) => DbCall::Done(f(db), generation),
            None => DbCall::Closed,
        }
    }

    /// A read; an IO error of a latched database reopens it and tries once more.
    fn read<T>(&self, f: impl Fn(&sled::Db) -> sled::Result<T>) -> Result<T> {
        let mut retried = false;
        loop {
            match self.call(&f) {
                DbCall::Done(Ok(v), _) => return Ok(v),
                DbCall::Done(Err(e), generation) => {
                    if retried || problem_of(&e).is_none() {
                        return Err(e.into());
                    }
                    let mut w = self.writer();
                    let err = self.fail(&mut w, e, generation);
                    if w.latched {
                        return Err(err);
                    }
                }
                DbCall::Closed => {
                    let mut w = self.writer();
                    let due = w
                        .last_read_reopen
                        .is_none_or(|t| t.elapsed() >= READ_REOPEN_INTERVAL);
                    if retried || !due {
                        return Err(self.closed(&w));
                    }
                    w.last_read_reopen = Some(Instant::now());
                    if self.reopen(&mut w, true).is_err() {
                        return Err(self.closed(&w));
                    }
                }
            }
            retried = true;
        }
    }

    fn closed(&self, w: &Writer) -> StoreError {
        match &w.failure {
            Some(f) => self.unwritable(f),
            None => StoreError::Unwritable {
                folder: self.path.clone(),
                problem: DiskProblem::Failing,
                detail: "the database is closed".into(),
            },
        }
    }

    /// Handles an error of a write, flush or read on database `generation`: from an IO
    /// error, refuses writes and (unless the file system is read-only) reopens the
    /// database with the pending batches. Returns the error for the caller.
    fn fail(&self, w: &mut Writer, e: sled::Error, generation: u64) -> StoreError {
        let Some(problem) = problem_of(&e) else {
            return e.into();
        };
        if generation != self.generation.load(Ordering::Acquire) {
            // that database is gone already; its failure was handled then
            return match &w.failure {
                Some(f) => self.unwritable(f),
                None => e.into(),
            };
        }
        if w.failure.is_none() {
            error!(
                folder = %self.path.display(),
                problem = %problem,
                error = %e,
                "store write failed, writes refused until the data folder can take them"
            );
        }
        let failure = Failure {
            problem,
            detail: sled_detail(&e),
        };
        let err = self.unwritable(&failure);
        w.failure = Some(failure);
        w.latched = true;
        if problem != DiskProblem::ReadOnly {
            remove_reserve(&self.path);
            // errors are logged there; reads report a closed database meanwhile
            let _ = self.reopen(w, true);
        }
        err
    }

    /// Replaces the database by a freshly opened one and, with `replay`, applies the
    /// pending batches to it and flushes them. A replay that fails is not left half-way:
    /// the database is opened once more without it (the batches stay pending).
    fn reopen(&self, w: &mut Writer, replay: bool) -> Result<()> {
        let mut db = self.lock_db_exclusive()?;
        if let Some(old) = db.take() {
            close_quietly(old);
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        let fresh = match reopen_sled(&self.path, self.options.cache_capacity_bytes) {
            Ok(fresh) => fresh,
            Err(e) => {
                error!(folder = %self.path.display(), error = %e, "store reopen failed");
                return Err(sled_error(&self.path, e));
            }
        };
        w.latched = false;
        if !replay || w.pending.is_empty() {
            *db = Some(fresh);
            return Ok(());
        }
        let replayed = w
            .pending
            .iter()
            .try_for_each(|(_, ops)| fresh.apply_batch(sled_batch(ops)))
            .and_then(|()| fresh.flush())
            .and_then(|_| self.sync_file().map_err(sled::Error::Io));
        match replayed {
            Ok(()) => {
                w.pending.clear();
                w.pending_bytes = 0;
                *db = Some(fresh);
                Ok(())
            }
            Err(e) => {
                warn!(
                    folder = %self.path.display(),
                    batches = w.pending.len(),
                    error = %e,
                    "replay of unflushed batches failed, they stay pending"
                );
                close_quietly(fresh);
                self.generation.fetch_add(1, Ordering::AcqRel);
                match reopen_sled(&self.path, self.options.cache_capacity_bytes) {
                    Ok(again) => *db = Some(again),
                    Err(e2) => {
                        error!(folder = %self.path.display(), error = %e2, "store reopen failed");
                    }
                }
                Err(sled_error(&self.path, e))
            }
        }
    }

    /// The write lock on the database, once reads in progress are done (bounded: a read
    /// spinning in a latched database must not hang every writer).
    fn lock_db_exclusive(&self) -> Result<RwLockWriteGuard<'_, Option<sled::Db>>> {
        let started = Instant::now();
        loop {
            match self.db.try_write() {
                Ok(guard) => return Ok(guard),
                Err(TryLockError::Poisoned(p)) => return Ok(p.into_inner()),
                Err(TryLockError::WouldBlock) if started.elapsed() < REOPEN_WAIT => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(TryLockError::WouldBlock) => {
                    error!(folder = %self.path.display(), "store reopen gave up waiting for reads");
                    return Err(StoreError::Unwritable {
                        folder: self.path.clone(),
                        problem: DiskProblem::Failing,
                        detail: "reads of the failed database did not end".into(),
                    });
                }
            }
        }
    }

    /// Lets writes go on again if the folder takes them: enough free space, a write
    /// that succeeds, the reserve in place, a fresh database holding the pending batches.
    fn resume(&self, w: &mut Writer) -> Result<()> {
        if w.failure.is_none() {
            return Ok(());
        }
        let refuse = |problem: DiskProblem, detail: String| {
            let f = Failure { problem, detail };
            let err = self.unwritable(&f);
            (f, err)
        };
        let need = 2 * self.options.reserve_bytes;
        let checked = match fs2::available_space(&self.path) {
            Ok(free) if free < need => Err(refuse(
                DiskProblem::Full,
                format!("{} free, writes resume from {}", mib(free), mib(need)),
            )),
            Ok(_) => probe_write(&self.path)
                .and_then(|()| ensure_reserve(&self.path, self.options.reserve_bytes))
                .map_err(|e| refuse(DiskProblem::of(&e), io_detail(&e))),
            Err(e) => Err(refuse(DiskProblem::of(&e), io_detail(&e))),
        };
        if let Err((f, err)) = checked {
            w.failure = Some(f);
            return Err(err);
        }
        let db_ok = !w.latched
            && self
                .db
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .is_some();
        if db_ok {
            if !w.pending.is_empty() {
                let target = w.next;
                match self.flush_db() {
                    DbCall::Done(Ok(()), _) => w.trim_below(target),
                    DbCall::Done(Err(e), generation) => return Err(self.fail(w, e, generation)),
                    DbCall::Closed => return Err(self.closed(w)),
                }
            }
        } else {
            self.reopen(w, true)?;
        }
        w.failure = None;
        info!(folder = %self.path.display(), "data folder writable again, writes resume");
        Ok(())
    }
}

impl Writer {
    fn trim_below(&mut self, target: u64) {
        while self.pending.front().is_some_and(|(n, _)| *n < target) {
            if let Some((_, ops)) = self.pending.pop_front() {
                self.pending_bytes -= ops_bytes(&ops);
            }
        }
    }

    fn durable_below(&self, target: u64) -> bool {
        self.pending.front().is_none_or(|(n, _)| *n >= target)
    }
}

impl Engine for SledEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.inner
            .read(|db| db.get(key))
            .map(|v| v.map(|v| v.to_vec()))
    }

    fn scan(&self, prefix: &[u8], start: &[u8], limit: usize) -> Result<Vec<KeyValue>> {
        let Some((from, end)) = scan_bounds(prefix, start) else {
            return Ok(Vec::new());
        };
        self.inner.read(|db| {
            let mut out = Vec::with_capacity(limit.min(DEFAULT_SCAN_CHUNK));
            for item in db
                .range((Bound::Included(from.clone()), end.clone()))
                .take(limit)
            {
                let (k, v) = item?;
                out.push((k.to_vec(), v.to_vec()));
            }
            Ok(out)
        })
    }

    fn last_with_prefix(&self, prefix: &[u8]) -> Result<Option<KeyValue>> {
        self.inner
            .read(|db| match db.scan_prefix(prefix).next_back() {
                Some(item) => item.map(Some),
                None => Ok(None),
            })
            .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())))
    }

    fn count_prefix(&self, prefix: &[u8]) -> Result<u64> {
        // sled values are reference-counted, so iterating does not copy them.
        self.inner.read(|db| {
            let mut n = 0u64;
            for item in db.scan_prefix(prefix).keys() {
                item?;
                n += 1;
            }
            Ok(n)
        })
    }

    fn apply(&self, batch: WriteBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let inner = &*self.inner;
        let mut w = inner.writer();
        if w.failure.is_some() {
            inner.resume(&mut w)?;
        }
        let ops = batch.into_ops();
        match inner.call(|db| db.apply_batch(sled_batch(&ops))) {
            DbCall::Done(Ok(()), _) => {}
            DbCall::Done(Err(e), generation) => return Err(inner.fail(&mut w, e, generation)),
            DbCall::Closed => return Err(inner.closed(&w)),
        }
        w.pending_bytes += ops_bytes(&ops);
        let n = w.next;
        w.pending.push_back((n, ops));
        w.next += 1;
        // callers that never flush (a restore) must not pile up pending batches beyond
        // what the reserve can hold when they are replayed; the node flushes every write
        // itself, outside its locks, and its batches stay below this
        if w.pending_bytes as u64 >= (inner.options.reserve_bytes / 2).max(1 << 20) {
            let target = w.next;
            match inner.flush_db() {
                DbCall::Done(Ok(()), _) => w.trim_below(target),
                DbCall::Done(Err(e), generation) => {
                    // applied all the same; the caller's flush reports durability
                    let _ = inner.fail(&mut w, e, generation);
                }
                DbCall::Closed => {}
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        let inner = &*self.inner;
        let target = {
            let mut w = inner.writer();
            if w.failure.is_some() {
                if w.durable_below(w.next) {
                    return Ok(());
                }
                return inner.resume(&mut w);
            }
            w.next
        };
        let flushed = inner.flush_db();
        let mut w = inner.writer();
        match flushed {
            DbCall::Done(Ok(()), _) => {
                w.trim_below(target);
                Ok(())
            }
            DbCall::Done(Err(e), generation) => {
                let err = inner.fail(&mut w, e, generation);
                // the reopen may have made everything durable after all
                if w.durable_below(target) {
                    Ok(())
                } else {
                    Err(err)
                }
            }
            DbCall::Closed => {
                if w.durable_below(target) {
                    Ok(())
                } else {
                    Err(inner.closed(&w))
                }
            }
        }
    }

    fn size_on_disk(&self) -> Result<u64> {
        self.inner.read(|db| db.size_on_disk())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let db = self.db.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(db) = db.take() {
            close_quietly(db);
        }
    }
}

fn open_sled(path: &Path, cache_capacity_bytes: u64) -> sled::Result<sled::Db> {
    sled::Config::new()
        .path(path)
        .cache_capacity(cache_capacity_bytes)
        .open()
}

/// [`open_sled`] right after closing the same database: sled's IO threads may still
/// hold the old instance's file, and its lock, for a moment. Bounded by [`REOPEN_WAIT`].
fn reopen_sled(path: &Path, cache_capacity_bytes: u64) -> sled::Result<sled::Db> {
    wait_for_lock(path, cache_capacity_bytes, REOPEN_WAIT)
}

/// [`open_sled`], retried while sled's file lock is held, for at most `wait`.
fn wait_for_lock(path: &Path, cache_capacity_bytes: u64, wait: Duration) -> sled::Result<sled::Db> {
    let started = Instant::now();
    loop {
        match open_sled(path, cache_capacity_bytes) {
            // sled reports its file lock only as text
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock") && started.elapsed() < wait =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

/// Drops a database. sled flushes on drop and may panic there when the disk fails; the
/// store must go on.
fn close_quietly(db: sled::Db) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(db))).is_err() {
        error!("closing the failed database panicked");
    }
}

fn sled_batch(ops: &[BatchOp]) -> sled::Batch {
    let mut b = sled::Batch::default();
    for op in ops {
        match op {
            BatchOp::Put { key, value } => b.insert(key.as_slice(), value.as_slice()),
            BatchOp::Delete { key } => b.remove(key.as_slice()),
        }
    }
    b
}

fn ops_bytes(ops: &[BatchOp]) -> usize {
    ops.iter()
        .map(|op| match op {
            BatchOp::Put { key, value } => key.len() + value.len(),
            BatchOp::Delete { key } => key.len(),
        })
        .sum()
}

/// The disk problem behind a sled error, if it is an IO error.
fn problem_of(e: &sled::Error) -> Option<DiskProblem> {
    match e {
        sled::Error::Io(io) => Some(DiskProblem::of(io)),
        _ => None,
    }
}

fn sled_error(path: &Path, e: sled::Error) -> StoreError {
    match &e {
        // a full or read-only folder is said as such; anything else (another process holding
        // the lock, say) keeps sled's own words
        sled::Error::Io(io) if DiskProblem::of(io) != DiskProblem::Failing => {
            StoreError::Unwritable {
                folder: path.to_path_buf(),
                problem: DiskProblem::of(io),
                detail: io_detail(io),
            }
        }
        _ => e.into(),
    }
}

fn sled_detail(e: &sled::Error) -> String {
    match e {
        sled::Error::Io(io) => io_detail(io),
        other => other.to_string(),
    }
}

/// sled re-wraps OS errors as text in Debug form; their kind reads better.
fn io_detail(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(_) => e.to_string(),
        None if e.kind() == std::io::ErrorKind::Other => e.to_string(),
        None => e.kind().to_string(),
    }
}

fn remove_reserve(dir: &Path) {
    match std::fs::remove_file(dir.join(RESERVE_FILE)) {
        Ok(()) => info!(folder = %dir.display(), "store reserve released"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => warn!(folder = %dir.display(), error = %e, "store reserve not released"),
    }
}

/// Writes the reserve file unless it is there at full size. Its bytes are not zeros,
/// so that a compressing file system allocates them; removed again if it cannot be
/// written whole.
fn ensure_reserve(dir: &Path, bytes: u64) -> std::io::Result<()> {
    if bytes == 0 {
        return Ok(());
    }
    let path = dir.join(RESERVE_FILE);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == bytes) {
        return Ok(());
    }
    let written = (|| {
        let mut f = std::fs::File::create(&path)?;
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut chunk = vec![0u8; 1 << 20];
        let mut left = bytes;
        while left > 0 {
            for word in chunk.chunks_exact_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                word.copy_from_slice(&x.to_le_bytes());
            }
            let n = left.min(chunk.len() as u64) as usize;
            f.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        // writing allocates the blocks (or fails with ENOSPC): no need to sync
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&path);
    }
    written
}

/// Creates, writes, syncs and removes a small file.
fn probe_write(dir: &Path) -> std::io::Result<()> {
    let path = dir.join(PROBE_FILE);
    let result = std::fs::File::create(&path).and_then(|mut f| {
        f.write_all(&[0x5a; 4096])?;
        f.sync_all()
    });
    let _ = std::fs::remove_file(&path);
    result
}

fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes.div_ceil(1 << 20))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_error_that_is_not_about_space_keeps_sleds_words() {
        let path = Path::new("/srv/passerelle/data");
        let lock = sled::Error::Io(std::io::Error::other(
            "could not acquire lock on \"/srv/passerelle/data/db\": Resource temporarily unavailable",
        ));
        let e = sled_error(path, lock).to_string();
        assert!(e.contains("could not acquire lock"), "{e}");
        let full = sled::Error::Io(std::io::Error::from(std::io::ErrorKind::StorageFull));
        let e = sled_error(path, full).to_string();
        assert!(
            e.contains("/srv/passerelle/data") && e.contains("full"),
            "{e}"
        );
    }
}
