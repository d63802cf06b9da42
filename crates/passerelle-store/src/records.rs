//! Records of every origin, their revisions, and the node's append-only sync log.
//!
//! One writer at a time (a mutex), any number of readers. Each accepted change writes the
//! record and its log entry in one atomic engine batch, so after a crash the log and the
//! records agree and the head sequence is the last log entry. A change is durable once
//! [`RecordStore::flush`] has returned.
//!
//! The log is append-only for now. It is written so that compaction can come later: each
//! record keeps the seq of its current log entry, so an entry whose seq differs from its
//! record's is superseded and may go. Compaction must keep the newest entry (or record a
//! head floor in metadata), since [`RecordStore::open`] recovers the head from it.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use passerelle_model::{AgencyId, Kind, RecordKey};
use tracing::debug;

use crate::codec::{self, LogValue, MetaLayout, RecordValue};
use crate::engine::{successor, Engine, WriteBatch};
use crate::error::{Result, StoreError};

/// A record version as stored: the content is the caller's canonical encoding, the seal
/// (a signature, later) is opaque here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub key: RecordKey,
    pub revision: u64,
    pub updated_at_micros: i64,
    /// The local sync-log sequence number of this version.
    pub seq: u64,
    pub content: Vec<u8>,
    pub seal: Vec<u8>,
}

/// One entry of the sync log: at local sequence `seq`, `key` reached `revision`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub seq: u64,
    pub key: RecordKey,
    pub revision: u64,
}

/// The result of a put of an own record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The content equals the stored one: nothing was written.
    Unchanged {
        revision: u64,
        seq: u64,
    },
    Written {
        revision: u64,
        seq: u64,
    },
}

impl PutOutcome {
    pub fn revision(&self) -> u64 {
        match *self {
            PutOutcome::Unchanged { revision, .. } | PutOutcome::Written { revision, .. } => {
                revision
            }
        }
    }

    pub fn seq(&self) -> u64 {
        match *self {
            PutOutcome::Unchanged { seq, .. } | PutOutcome::Written { seq, .. } => seq,
        }
    }

    pub fn is_written(&self) -> bool {
        matches!(self, PutOutcome::Written { .. })
    }
}

/// A record version received from another node, with the revision, timestamp, content
/// and seal its origin assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub key: RecordKey,
    pub revision: u64,
    pub updated_at_micros: i64,
    pub content: Vec<u8>,
    pub seal: Vec<u8>,
}

impl From<StoredRecord> for Replica {
    fn from(r: StoredRecord) -> Self {
        Replica {
            key: r.key,
            revision: r.revision,
            updated_at_micros: r.updated_at_micros,
            content: r.content,
            seal: r.seal,
        }
    }
}

/// The result of applying a replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaOutcome {
    /// Newer than the stored version: stored under a new local seq.
    Applied { seq: u64 },
    /// Not newer than the stored version (0 when absent): nothing was written.
    Ignored { stored_revision: u64 },
}

/// What [`RecordStore::check_consistency`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyReport {
    pub head_seq: u64,
    pub records: u64,
    pub log_entries: u64,
    /// The first [`ConsistencyReport::MAX_LISTED`] problems, in the order found.
    pub problems: Vec<String>,
    pub problems_total: u64,
}

impl ConsistencyReport {
    pub const MAX_LISTED: usize = 100;

    pub fn is_ok(&self) -> bool {
        self.problems_total == 0
    }

    fn problem(&mut self, p: String) {
        self.problems_total += 1;
        if self.problems.len() < Self::MAX_LISTED {
            self.problems.push(p);
        }
    }
}

impl fmt::Display for ConsistencyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "head seq {}, {} records, {} log entries, {} problems",
            self.head_seq, self.records, self.log_entries, self.problems_total
        )?;
        for p in &self.problems {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

/// A digest of the replicated state, equal on two nodes holding the same versions.
///
/// SHA-256 over a domain tag then, for every record in storage order (kind tag `p`
/// supply, `s` shortage, `v` vacancy; then origin, `/`, id as bytes), the textual key
/// `<origin>/<kind>/<id>`, the revision, the content and the seal, each length-prefixed
/// (u64 big-endian) so that no two states hash the same input. Local seqs and
/// `updated_at` are left out: seqs differ between nodes by design.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateDigest {
    pub records: u64,
    pub sha256: [u8; 32],
}

impl fmt::Display for StateDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.sha256 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The record store of one node.
pub struct RecordStore<E: Engine> {
    engine: E,
    /// The single writer lock; it holds the head seq, which only writers advance.
    writer: Mutex<u64>,
    /// The head seq for readers, published after each successful batch.
    head: AtomicU64,
}

impl<E: Engine> RecordStore<E> {
    /// Opens the store, writing the layout marker into an empty engine and recovering
    /// the head seq from the last log entry.
    pub fn open(engine: E) -> Result<Self> {
        match engine.get(codec::META_LAYOUT)? {
            Some(bytes) => {
                let meta: MetaLayout = codec::decode(codec::META_LAYOUT, &bytes)?;
                if meta.layout != codec::LAYOUT {
                    return Err(StoreError::corrupt(
                        codec::META_LAYOUT,
                        format!("unsupported layout {}", meta.layout),
                    ));
                }
            }
            None => {
                let mut b = WriteBatch::new();
                b.put(
                    codec::META_LAYOUT,
                    codec::encode(&MetaLayout {
                        layout: codec::LAYOUT,
                    }),
                );
                engine.apply(b)?;
            }
        }
        let head = match engine.last_with_prefix(&[codec::LOG])? {
            Some((k, _)) => codec::decode_log_key(&k)?,
            None => 0,
        };
        debug!(head_seq = head, "record store opened");
        Ok(RecordStore {
            engine,
            writer: Mutex::new(head),
            head: AtomicU64::new(head),
        })
    }

    /// The engine underneath, for whole-store operations (backup). Writing to it
    /// directly bypasses every invariant of this store.
    pub fn engine(&self) -> &E {
        &self.engine
    }

    fn lock_writer(&self) -> MutexGuard<'_, u64> {
        // The guarded head only changes after a batch applied, so a panic while holding
        // the lock cannot leave it out of step with the engine.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn commit(&self, head: &mut u64, txn: Txn<'_, E>) -> Result<()> {
        if txn.batch.is_empty() {
            return Ok(());
        }
        self.engine.apply(txn.batch)?;
        *head = txn.head;
        self.head.store(txn.head, Ordering::Release);
        Ok(())
    }

    /// Stores a new version of an own record, unless its content equals the stored one.
    ///
    /// `expected_revision` (0 = "must not exist") is checked before the content
    /// comparison. `seal` is called with the key, the new revision, `now_micros` and the
    /// content, only when a version is written; the seal is not compared.
    pub fn put_own(
        &self,
        key: RecordKey,
        content: Vec<u8>,
        expected_revision: Option<u64>,
        now_micros: i64,
        seal: impl FnOnce(&RecordKey, u64, i64, &[u8]) -> Vec<u8>,
    ) -> Result<PutOutcome> {
        let mut head = self.lock_writer();
        let mut txn = Txn::new(&self.engine, *head);
        let outcome = txn.put_own(key, content, expected_revision, now_micros, seal)?;
        self.commit(&mut head, txn)?;
        Ok(outcome)
    }

    /// [`RecordStore::put_own`] for many items, in order, in one atomic batch: a later
    /// item sees the earlier ones, also for the same key. If the batch cannot be written,
    /// every item that would have succeeded carries that error, and nothing is stored.
    pub fn put_own_many(
        &self,
        items: Vec<(RecordKey, Vec<u8>, Option<u64>)>,
        now_micros: i64,
        seal: impl Fn(&RecordKey, u64, i64, &[u8]) -> Vec<u8>,
    ) -> Vec<Result<PutOutcome>> {
        let mut head = self.lock_writer();
        let mut txn = Txn::new(&self.engine, *head);
        let results: Vec<Result<PutOutcome>> = items
            .into_iter()
            .map(|(key, content, expected)| txn.put_own(key, content, expected, now_micros, &seal))
            .collect();
        match self.commit(&mut head, txn) {
            Ok(()) => results,
            Err(e) => fail_all(results, e),
        }
    }

    /// Stores a replica if its revision is newer than the stored one. It keeps the
    /// origin's revision, timestamp, content and seal, and gets a new local seq.
    pub fn apply_replica(&self, replica: Replica) -> Result<ReplicaOutcome> {
        let mut head = self.lock_writer();
        let mut txn = Txn::new(&self.engine, *head);
        let outcome = txn.apply_replica(replica)?;
        self.commit(&mut head, txn)?;
        Ok(outcome)
    }

    /// [`RecordStore::apply_replica`] for many replicas, in order, in one atomic batch,
    /// with the same error rule as [`RecordStore::put_own_many`].
    pub fn apply_replicas(&self, replicas: Vec<Replica>) -> Vec<Result<ReplicaOutcome>> {
        let mut head = self.lock_writer();
        let mut txn = Txn::new(&self.engine, *head);
        let results: Vec<Result<ReplicaOutcome>> =
            replicas.into_iter().map(|r| txn.apply_replica(r)).collect();
        match self.commit(&mut head, txn) {
            Ok(()) => results,
            Err(e) => fail_all(results, e),
        }
    }

    pub fn get(&self, key: &RecordKey) -> Result<Option<StoredRecord>> {
        let skey = codec::record_key(key);
        match self.engine.get(&skey)? {
            Some(bytes) => {
                let v: RecordValue = codec::decode(&skey, &bytes)?;
                Ok(Some(stored(key.clone(), v)))
            }
            None => Ok(None),
        }
    }

    /// A page of records of `kind` (of one origin when given) in storage order (origin
    /// bytes, `/`, id bytes), starting after `after`, keeping those `filter` accepts.
    ///
    /// Returns at most `limit` records (at least 1 is asked for) and, when the page is
    /// full and more records may follow, the key of the last one to pass as `after` for
    /// the next page. With a selective filter, a page may scan the whole kind.
    pub fn list(
        &self,
        kind: Kind,
        origin: Option<&AgencyId>,
        after: Option<&RecordKey>,
        limit: usize,
        mut filter: impl FnMut(&StoredRecord) -> bool,
    ) -> Result<(Vec<StoredRecord>, Option<RecordKey>)> {
        let limit = limit.max(1);
        let prefix = codec::record_prefix(Some(kind), origin);
        let start = match after {
            Some(k) => successor(&codec::record_key(k)),
            None => prefix.clone(),
        };
        let mut scan = self
            .engine
            .iter_prefix(&prefix, &start)
            .with_chunk(limit.saturating_add(1).clamp(16, 256))
            .peekable();
        let mut page = Vec::new();
        while let Some(item) = scan.next() {
            let (k, v) = item?;
            let rec = decode_stored(&k, &v)?;
            if filter(&rec) {
                page.push(rec);
                if page.len() == limit {
                    let more = scan.peek().is_some();
                    let token = more.then(|| page[limit - 1].key.clone());
                    return Ok((page, token));
                }
            }
        }
        Ok((page, None))
    }

    /// Every record (of one kind when given) in storage order, read lazily in chunks;
    /// meant for rebuilding in-memory indexes at start-up.
    pub fn iter(&self, kind: Option<Kind>) -> impl Iterator<Item = Result<StoredRecord>> + '_ {
        let prefix = codec::record_prefix(kind, None);
        self.engine
            .iter_prefix(&prefix, &prefix)
            .map(|item| item.and_then(|(k, v)| decode_stored(&k, &v)))
    }

    pub fn count(&self, kind: Kind) -> Result<u64> {
        self.engine
            .count_prefix(&codec::record_prefix(Some(kind), None))
    }

    /// The seq of the last accepted change (0 when none).
    pub fn head_seq(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    /// Up to `limit` log entries with seq > `since`, ascending.
    pub fn log_since(&self, since: u64, limit: usize) -> Result<Vec<LogEntry>> {
        let Some(first) = since.checked_add(1) else {
            return Ok(Vec::new());
        };
        self.engine
            .scan(&[codec::LOG], &codec::log_key(first), limit)?
            .into_iter()
            .map(|(k, v)| decode_log(&k, &v))
            .collect()
    }

    /// Returns once every change accepted before the call is durable.
    pub fn flush(&self) -> Result<()> {
        self.engine.flush()
    }

    pub fn size_on_disk(&self) -> Result<u64> {
        self.engine.size_on_disk()
    }

    /// Checks the invariants tying records and log together: log seqs are exactly
    /// 1..=head, every record's seq has a log entry for that key and revision, every log
    /// entry's record exists at that revision or later, every value decodes, no unknown
    /// keys. Writers wait while it runs; engine errors are returned as errors, everything
    /// else as problems in the report.
    pub fn check_consistency(&self) -> Result<ConsistencyReport> {
        let head_guard = self.lock_writer();
        let head = *head_guard;
        let mut report = ConsistencyReport {
            head_seq: head,
            records: 0,
            log_entries: 0,
            problems: Vec::new(),
            problems_total: 0,
        };

        let mut meta_keys = 0u64;
        for item in self.engine.iter_prefix(&[codec::META], &[codec::META]) {
            let (k, v) = item?;
            meta_keys += 1;
            if k == codec::META_LAYOUT {
                match codec::decode::<MetaLayout>(&k, &v) {
                    Ok(m) if m.layout == codec::LAYOUT => {}
                    Ok(m) => report.problem(format!("unsupported layout {}", m.layout)),
                    Err(e) => report.problem(e.to_string()),
                }
            } else {
                report.problem(format!("unknown metadata key {}", k.escape_ascii()));
            }
        }
        if meta_keys == 0 {
            report.problem("layout marker missing".into());
        }

        let mut expected_seq = 1u64;
        for item in self.engine.iter_prefix(&[codec::LOG], &[codec::LOG]) {
            let (k, v) = item?;
            report.log_entries += 1;
            let entry = match decode_log(&k, &v) {
                Ok(e) => e,
                Err(e) => {
                    report.problem(e.to_string());
                    continue;
                }
            };
            let seq = entry.seq;
            if seq != expected_seq {
                report.problem(format!(
                    "log hole: expected seq {expected_seq}, found {seq}"
                ));
            }
            expected_seq = seq.saturating_add(1);
            match self.get(&entry.key) {
                Ok(None) => report.problem(format!("log seq {seq}: record {} missing", entry.key)),
                Ok(Some(rec)) => {
                    if rec.revision < entry.revision {
                        report.problem(format!(
                            "log seq {seq}: record {} at revision {} below logged {}",
                            entry.key, rec.revision, entry.revision
                        ));
                    }
                    if rec.seq < seq {
                        report.problem(format!(
                            "log seq {seq}: record {} points to older seq {}",
                            entry.key, rec.seq
                        ));
                    }
                    if rec.seq == seq && rec.revision != entry.revision {
                        report.problem(format!(
                            "log seq {seq}: record {} has revision {}, log says {}",
                            entry.key, rec.revision, entry.revision
                        ));
                    }
                }
                Err(StoreError::Engine(e)) => return Err(StoreError::Engine(e)),
                Err(e) => report.problem(format!("log seq {seq}: {e}")),
            }
        }
        let last_seq = expected_seq - 1;
        if last_seq != head {
            report.problem(format!("head seq {head} but last log seq {last_seq}"));
        }

        let prefix = codec::record_prefix(None, None);
        for item in self.engine.iter_prefix(&prefix, &prefix) {
            let (k, v) = item?;
            report.records += 1;
            let rec = match decode_stored(&k, &v) {
                Ok(r) => r,
                Err(e) => {
                    report.problem(e.to_string());
                    continue;
                }
            };
            if rec.revision == 0 {
                report.problem(format!("record {} has revision 0", rec.key));
            }
            if rec.seq == 0 || rec.seq > head {
                report.problem(format!(
                    "record {} has seq {} outside 1..={head}",
                    rec.key, rec.seq
                ));
                continue;
            }
            let lk = codec::log_key(rec.seq);
            match self.engine.get(&lk)? {
                None => report.problem(format!(
                    "record {} seq {} has no log entry",
                    rec.key, rec.seq
                )),
                Some(bytes) => match decode_log(&lk, &bytes) {
                    Ok(e) if e.key == rec.key && e.revision == rec.revision => {}
                    Ok(e) => report.problem(format!(
                        "record {} revision {} seq {}: log entry is {} revision {}",
                        rec.key, rec.revision, rec.seq, e.key, e.revision
                    )),
                    // already reported by the log pass
                    Err(_) => {}
                },
            }
        }

        let all = self.engine.count_prefix(&[])?;
        let known = meta_keys + report.log_entries + report.records;
        if all != known {
            report.problem(format!("{} keys outside the known key spaces", all - known));
        }
        drop(head_guard);
        Ok(report)
    }

    /// The [`StateDigest`] of all records. Writers wait while it runs, so the digest is
    /// of one state.
    pub fn digest(&self) -> Result<StateDigest> {
        let _writer = self.lock_writer();
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"passerelle-store state digest v1\0");
        let mut records = 0u64;
        let prefix = codec::record_prefix(None, None);
        for item in self.engine.iter_prefix(&prefix, &prefix) {
            let (k, v) = item?;
            let rec = decode_stored(&k, &v)?;
            records += 1;
            let key = rec.key.to_string();
            for field in [
                key.as_bytes(),
                &rec.revision.to_be_bytes(),
                &rec.content,
                &rec.seal,
            ] {
                ctx.update(&(field.len() as u64).to_be_bytes());
                ctx.update(field);
            }
        }
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(ctx.finish().as_ref());
        Ok(StateDigest { records, sha256 })
    }
}

/// Builds one batch under the writer lock, with the versions written so far in this
/// batch visible to later items.
struct Txn<'a, E: Engine> {
    engine: &'a E,
    head: u64,
    batch: WriteBatch,
    pending: HashMap<Vec<u8>, RecordValue>,
}

impl<'a, E: Engine> Txn<'a, E> {
    fn new(engine: &'a E, head: u64) -> Self {
        Txn {
            engine,
            head,
            batch: WriteBatch::new(),
            pending: HashMap::new(),
        }
    }

    fn with_stored<R>(&self, skey: &[u8], f: impl FnOnce(Option<&RecordValue>) -> R) -> Result<R> {
        if let Some(v) = self.pending.get(skey) {
            return Ok(f(Some(v)));
        }
        match self.engine.get(skey)? {
            Some(bytes) => Ok(f(Some(&codec::decode(skey, &bytes)?))),
            None => Ok(f(None)),
        }
    }

    fn put_own(
        &mut self,
        key: RecordKey,
        content: Vec<u8>,
        expected_revision: Option<u64>,
        now_micros: i64,
        seal: impl FnOnce(&RecordKey, u64, i64, &[u8]) -> Vec<u8>,
    ) -> Result<PutOutcome> {
        let skey = codec::record_key(&key);
        let (stored_revision, stored_seq, same) = self.with_stored(&skey, |v| match v {
            Some(v) => (v.revision, v.seq, v.content == content),
            None => (0, 0, false),
        })?;
        if let Some(expected) = expected_revision {
            if expected != stored_revision {
                return Err(StoreError::RevisionMismatch {
                    key,
                    expected,
                    actual: stored_revision,
                });
            }
        }
        if same {
            return Ok(PutOutcome::Unchanged {
                revision: stored_revision,
                seq: stored_seq,
            });
        }
        let Some(revision) = stored_revision.checked_add(1) else {
            return Err(StoreError::RevisionOverflow { key });
        };
        let seal = seal(&key, revision, now_micros, &content);
        let seq = self.append(
            &key,
            skey,
            RecordValue {
                revision,
                updated_at_micros: now_micros,
                seq: 0,
                content,
                seal,
            },
        );
        Ok(PutOutcome::Written { revision, seq })
    }

    fn apply_replica(&mut self, r: Replica) -> Result<ReplicaOutcome> {
        let skey = codec::record_key(&r.key);
        let stored_revision = self.with_stored(&skey, |v| v.map_or(0, |v| v.revision))?;
        if r.revision <= stored_revision {
            return Ok(ReplicaOutcome::Ignored { stored_revision });
        }
        let seq = self.append(
            &r.key,
            skey,
            RecordValue {
                revision: r.revision,
                updated_at_micros: r.updated_at_micros,
                seq: 0,
                content: r.content,
                seal: r.seal,
            },
        );
        Ok(ReplicaOutcome::Applied { seq })
    }

    /// Adds the version and its log entry to the batch under the next seq.
    fn append(&mut self, key: &RecordKey, skey: Vec<u8>, mut value: RecordValue) -> u64 {
        self.head += 1;
        value.seq = self.head;
        self.batch.put(
            codec::log_key(self.head),
            codec::encode(&LogValue::new(key, value.revision)),
        );
        self.batch.put(skey.clone(), codec::encode(&value));
        self.pending.insert(skey, value);
        self.head
    }
}

fn fail_all<T>(results: Vec<Result<T>>, e: StoreError) -> Vec<Result<T>> {
    results.into_iter().map(|r| r.and(Err(e.clone()))).collect()
}

fn stored(key: RecordKey, v: RecordValue) -> StoredRecord {
    StoredRecord {
        key,
        revision: v.revision,
        updated_at_micros: v.updated_at_micros,
        seq: v.seq,
        content: v.content,
        seal: v.seal,
    }
}

fn decode_stored(k: &[u8], v: &[u8]) -> Result<StoredRecord> {
    let key = codec::decode_record_key(k)?;
    Ok(stored(key, codec::decode(k, v)?))
}

fn decode_log(k: &[u8], v: &[u8]) -> Result<LogEntry> {
    let seq = codec::decode_log_key(k)?;
    let lv: LogValue = codec::decode(k, v)?;
    Ok(LogEntry {
        seq,
        key: lv.record_key(k)?,
        revision: lv.revision,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{MemEngine, SledEngine};

    fn key(s: &str) -> RecordKey {
        s.parse().unwrap()
    }

    fn agency(s: &str) -> AgencyId {
        AgencyId::parse(s).unwrap()
    }

    /// A seal that depends on everything it is given, so tests can see what it got.
    fn seal(k: &RecordKey, revision: u64, at: i64, content: &[u8]) -> Vec<u8> {
        format!("{k}|{revision}|{at}|{}", content.len()).into_bytes()
    }

    fn put(s: &RecordStore<impl Engine>, k: &str, content: &str) -> PutOutcome {
        s.put_own(key(k), content.into(), None, 1_000, seal)
            .unwrap()
    }

    fn assert_consistent(s: &RecordStore<impl Engine>) {
        let report = s.check_consistency().unwrap();
        assert!(report.is_ok(), "{report}");
    }

    fn replica(k: &str, revision: u64, content: &str) -> Replica {
        Replica {
            key: key(k),
            revision,
            updated_at_micros: 77,
            content: content.into(),
            seal: b"sig".to_vec(),
        }
    }

    fn first_put_gets_revision_1_and_seq_1(s: RecordStore<impl Engine>) {
        assert_eq!(s.head_seq(), 0);
        let out = put(&s, "be.vdab/vacancy/V-1", "a");
        assert_eq!(
            out,
            PutOutcome::Written {
                revision: 1,
                seq: 1
            }
        );
        let rec = s.get(&key("be.vdab/vacancy/V-1")).unwrap().unwrap();
        assert_eq!(rec.revision, 1);
        assert_eq!(rec.seq, 1);
        assert_eq!(rec.updated_at_micros, 1_000);
        assert_eq!(rec.content, b"a");
        assert_eq!(rec.seal, b"be.vdab/vacancy/V-1|1|1000|1");
        assert_eq!(s.head_seq(), 1);
        assert_eq!(
            s.log_since(0, 10).unwrap(),
            vec![LogEntry {
                seq: 1,
                key: key("be.vdab/vacancy/V-1"),
                revision: 1
            }]
        );
        assert_eq!(s.get(&key("be.vdab/vacancy/V-2")).unwrap(), None);
        assert_consistent(&s);
    }

    fn identical_put_is_a_no_op(s: RecordStore<impl Engine>) {
        put(&s, "be.vdab/vacancy/V-1", "a");
        put(&s, "be.vdab/vacancy/V-2", "b");
        let before = s.get(&key("be.vdab/vacancy/V-1")).unwrap().unwrap();
        let mut sealed = false;
        let out = s
            .put_own(
                key("be.vdab/vacancy/V-1"),
                b"a".to_vec(),
                None,
                9_999,
                |_, _, _, _| {
                    sealed = true;
                    b"other".to_vec()
                },
            )
            .unwrap();
        assert_eq!(
            out,
            PutOutcome::Unchanged {
                revision: 1,
                seq: 1
            }
        );
        assert!(!sealed, "no seal is made for an unchanged record");
        assert_eq!(s.head_seq(), 2);
        assert_eq!(s.log_since(0, 10).unwrap().len(), 2);
        assert_eq!(s.get(&key("be.vdab/vacancy/V-1")).unwrap().unwrap(), before);
        assert_consistent(&s);
    }

    fn changed_put_gets_next_revision(s: RecordStore<impl Engine>) {
        put(&s, "be.vdab/vacancy/V-1", "a");
        put(&s, "be.vdab/vacancy/V-9", "x");
        let out = s
            .put_own(
                key("be.vdab/vacancy/V-1"),
                b"b".to_vec(),
                Some(1),
                2_000,
                seal,
            )
            .unwrap();
        assert_eq!(
            out,
            PutOutcome::Written {
                revision: 2,
                seq: 3
            }
        );
        let rec = s.get(&key("be.vdab/vacancy/V-1")).unwrap().unwrap();
        assert_eq!(
            (rec.revision, rec.seq, rec.updated_at_micros),
            (2, 3, 2_000)
        );
        assert_eq!(rec.content, b"b");
        // back to the first content is a change too
        assert_eq!(put(&s, "be.vdab/vacancy/V-1", "a").revision(), 3);
        let log = s.log_since(1, 10).unwrap();
        assert_eq!(
            log.iter().map(|e| (e.seq, e.revision)).collect::<Vec<_>>(),
            vec![(2, 1), (3, 2), (4, 3)]
        );
        assert_eq!(s.log_since(3, 10).unwrap().len(), 1);
        assert_eq!(s.log_since(1, 1).unwrap()[0].seq, 2);
        assert!(s.log_since(4, 10).unwrap().is_empty());
        assert!(s.log_since(u64::MAX, 10).unwrap().is_empty());
        assert!(s.log_since(0, 0).unwrap().is_empty());
        assert_consistent(&s);
    }

    fn expected_revision_mismatch_writes_nothing(s: RecordStore<impl Engine>) {
        let k = key("tg.anpe/supply/S-1");
        let err = s
            .put_own(k.clone(), b"a".to_vec(), Some(1), 1, seal)
            .unwrap_err();
        assert!(matches!(
            err,
            StoreError::RevisionMismatch {
                expected: 1,
                actual: 0,
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "revision mismatch on tg.anpe/supply/S-1: expected 1, stored 0"
        );
        assert_eq!(s.head_seq(), 0);
        assert_eq!(s.get(&k).unwrap(), None);
        // 0 means "must not exist yet"
        assert!(s
            .put_own(k.clone(), b"a".to_vec(), Some(0), 1, seal)
            .is_ok());
        let err = s
            .put_own(k.clone(), b"b".to_vec(), Some(0), 1, seal)
            .unwrap_err();
        assert!(matches!(
            err,
            StoreError::RevisionMismatch {
                expected: 0,
                actual: 1,
                ..
            }
        ));
        // checked before the content comparison
        assert!(s
            .put_own(k.clone(), b"a".to_vec(), Some(5), 1, seal)
            .is_err());
        assert_eq!(s.get(&k).unwrap().unwrap().content, b"a");
        assert_eq!(s.head_seq(), 1);
        assert_consistent(&s);
    }

    fn seal_is_not_compared(s: RecordStore<impl Engine>) {
        let k = key("be.vdab/shortage/K-1");
        s.put_own(k.clone(), b"a".to_vec(), None, 1, |_, _, _, _| {
            b"one".to_vec()
        })
        .unwrap();
        let out = s
            .put_own(k.clone(), b"a".to_vec(), None, 2, |_, _, _, _| {
                b"two".to_vec()
            })
            .unwrap();
        assert!(!out.is_written());
        assert_eq!(s.get(&k).unwrap().unwrap().seal, b"one");
    }

    fn put_own_many_sees_earlier_items(s: RecordStore<impl Engine>) {
        put(&s, "be.vdab/vacancy/A", "a1");
        let items = vec![
            (key("be.vdab/vacancy/B"), b"b1".to_vec(), None),
            (key("be.vdab/vacancy/A"), b"a1".to_vec(), None), // unchanged
            (key("be.vdab/vacancy/B"), b"b2".to_vec(), Some(1)), // sees the item above
            (key("be.vdab/vacancy/B"), b"b2".to_vec(), None), // unchanged within the batch
            (key("be.vdab/vacancy/C"), b"c1".to_vec(), Some(3)), // mismatch: skipped
            (key("be.vdab/vacancy/A"), b"a2".to_vec(), Some(1)),
        ];
        let out = s.put_own_many(items, 5_000, seal);
        assert_eq!(out.len(), 6);
        assert_eq!(
            out[0].as_ref().unwrap(),
            &PutOutcome::Written {
                revision: 1,
                seq: 2
            }
        );
        assert_eq!(
            out[1].as_ref().unwrap(),
            &PutOutcome::Unchanged {
                revision: 1,
                seq: 1
            }
        );
        assert_eq!(
            out[2].as_ref().unwrap(),
            &PutOutcome::Written {
                revision: 2,
                seq: 3
            }
        );
        assert_eq!(
            out[3].as_ref().unwrap(),
            &PutOutcome::Unchanged {
                revision: 2,
                seq: 3
            }
        );
        assert!(matches!(
            out[4],
            Err(StoreError::RevisionMismatch {
                expected: 3,
                actual: 0,
                ..
            })
        ));
        assert_eq!(
            out[5].as_ref().unwrap(),
            &PutOutcome::Written {
                revision: 2,
                seq: 4
            }
        );
        assert_eq!(s.head_seq(), 4);
        let b = s.get(&key("be.vdab/vacancy/B")).unwrap().unwrap();
        assert_eq!(
            (b.revision, b.seq, b.content.as_slice()),
            (2, 3, b"b2".as_slice())
        );
        assert_eq!(b.seal, b"be.vdab/vacancy/B|2|5000|2");
        assert_eq!(s.get(&key("be.vdab/vacancy/C")).unwrap(), None);
        assert_eq!(
            s.log_since(0, 10)
                .unwrap()
                .iter()
                .map(|e| (e.seq, e.key.id.as_str(), e.revision))
                .collect::<Vec<_>>(),
            vec![(1, "A", 1), (2, "B", 1), (3, "B", 2), (4, "A", 2)]
        );
        assert!(s.put_own_many(Vec::new(), 0, seal).is_empty());
        assert_eq!(s.head_seq(), 4);
        assert_consistent(&s);
    }

    fn replicas_apply_only_when_newer(s: RecordStore<impl Engine>) {
        let k = "be.vdab/vacancy/V-7";
        assert_eq!(
            s.apply_replica(replica(k, 5, "five")).unwrap(),
            ReplicaOutcome::Applied { seq: 1 }
        );
        let rec = s.get(&key(k)).unwrap().unwrap();
        assert_eq!((rec.revision, rec.seq, rec.updated_at_micros), (5, 1, 77));
        assert_eq!(
            (rec.content.as_slice(), rec.seal.as_slice()),
            (b"five".as_slice(), b"sig".as_slice())
        );
        // equal and older revisions change nothing, whatever their content
        assert_eq!(
            s.apply_replica(replica(k, 5, "other")).unwrap(),
            ReplicaOutcome::Ignored { stored_revision: 5 }
        );
        assert_eq!(
            s.apply_replica(replica(k, 4, "old")).unwrap(),
            ReplicaOutcome::Ignored { stored_revision: 5 }
        );
        assert_eq!(
            s.apply_replica(replica("be.vdab/vacancy/none", 0, "x"))
                .unwrap(),
            ReplicaOutcome::Ignored { stored_revision: 0 }
        );
        assert_eq!(s.head_seq(), 1);
        assert_eq!(s.get(&key(k)).unwrap().unwrap().content, b"five");
        // a revision may skip numbers (intermediate versions were never seen)
        assert_eq!(
            s.apply_replica(replica(k, 9, "nine")).unwrap(),
            ReplicaOutcome::Applied { seq: 2 }
        );
        let out = s.apply_replicas(vec![
            replica(k, 9, "dup"),
            replica("be.vdab/vacancy/V-8", 1, "a"),
            replica("be.vdab/vacancy/V-8", 3, "c"),
            replica("be.vdab/vacancy/V-8", 2, "b"),
        ]);
        let out: Vec<ReplicaOutcome> = out.into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(
            out,
            vec![
                ReplicaOutcome::Ignored { stored_revision: 9 },
                ReplicaOutcome::Applied { seq: 3 },
                ReplicaOutcome::Applied { seq: 4 },
                ReplicaOutcome::Ignored { stored_revision: 3 },
            ]
        );
        assert_eq!(
            s.get(&key("be.vdab/vacancy/V-8")).unwrap().unwrap().content,
            b"c"
        );
        assert_consistent(&s);
    }

    fn list_pages_by_origin_without_leaks(s: RecordStore<impl Engine>) {
        for k in [
            "be.vdab/vacancy/V-1",
            "be.vdab/vacancy/V-2",
            "be.vdab/vacancy/V-3",
            "be.vdab/vacancy/V-4",
            "be.vdab/vacancy/V-5",
            "be.vdab-x/vacancy/V-1",
            "be.vdab-x/vacancy/V-2",
            "be.vdabx/vacancy/V-1",
            "be.vdab/shortage/V-1",
            "tg.anpe/vacancy/T-1",
        ] {
            put(&s, k, k);
        }
        let ids =
            |page: &[StoredRecord]| page.iter().map(|r| r.key.to_string()).collect::<Vec<_>>();
        let vdab = agency("be.vdab");

        let (page, next) = s
            .list(Kind::Vacancy, Some(&vdab), None, 2, |_| true)
            .unwrap();
        assert_eq!(ids(&page), ["be.vdab/vacancy/V-1", "be.vdab/vacancy/V-2"]);
        assert_eq!(next, Some(key("be.vdab/vacancy/V-2")));
        let (page, next) = s
            .list(Kind::Vacancy, Some(&vdab), next.as_ref(), 2, |_| true)
            .unwrap();
        assert_eq!(ids(&page), ["be.vdab/vacancy/V-3", "be.vdab/vacancy/V-4"]);
        let (page, next) = s
            .list(Kind::Vacancy, Some(&vdab), next.as_ref(), 2, |_| true)
            .unwrap();
        assert_eq!(ids(&page), ["be.vdab/vacancy/V-5"]);
        assert_eq!(next, None);
        // a full last page gives no token when nothing follows
        let (page, next) = s
            .list(Kind::Vacancy, Some(&vdab), None, 5, |_| true)
            .unwrap();
        assert_eq!(page.len(), 5);
        assert_eq!(next, None);

        let x = agency("be.vdab-x");
        let (page, _) = s.list(Kind::Vacancy, Some(&x), None, 10, |_| true).unwrap();
        assert_eq!(
            ids(&page),
            ["be.vdab-x/vacancy/V-1", "be.vdab-x/vacancy/V-2"]
        );
        let (page, _) = s
            .list(Kind::Shortage, Some(&vdab), None, 10, |_| true)
            .unwrap();
        assert_eq!(ids(&page), ["be.vdab/shortage/V-1"]);
        let (page, _) = s
            .list(Kind::Supply, Some(&vdab), None, 10, |_| true)
            .unwrap();
        assert!(page.is_empty());

        // all origins, in storage order ('-' < '/' < letters), with a filter
        let (page, next) = s
            .list(Kind::Vacancy, None, None, 3, |r| r.key.id.ends_with('1'))
            .unwrap();
        assert_eq!(
            ids(&page),
            [
                "be.vdab-x/vacancy/V-1",
                "be.vdab/vacancy/V-1",
                "be.vdabx/vacancy/V-1"
            ]
        );
        assert_eq!(next, Some(key("be.vdabx/vacancy/V-1")));
        let (page, next) = s
            .list(Kind::Vacancy, None, next.as_ref(), 3, |r| {
                r.key.id.ends_with('1')
            })
            .unwrap();
        assert_eq!(ids(&page), ["tg.anpe/vacancy/T-1"]);
        assert_eq!(next, None);

        // an `after` outside the origin's range
        let (page, _) = s
            .list(
                Kind::Vacancy,
                Some(&vdab),
                Some(&key("aa.aaa/vacancy/Z")),
                1,
                |_| true,
            )
            .unwrap();
        assert_eq!(ids(&page), ["be.vdab/vacancy/V-1"]);
        let (page, next) = s
            .list(
                Kind::Vacancy,
                Some(&vdab),
                Some(&key("zz.zzz/vacancy/A")),
                1,
                |_| true,
            )
            .unwrap();
        assert!(page.is_empty() && next.is_none());
        // limit 0 is read as 1
        assert_eq!(
            s.list(Kind::Vacancy, None, None, 0, |_| true)
                .unwrap()
                .0
                .len(),
            1
        );

        assert_eq!(s.count(Kind::Vacancy).unwrap(), 9);
        assert_eq!(s.count(Kind::Shortage).unwrap(), 1);
        assert_eq!(s.count(Kind::Supply).unwrap(), 0);
        assert_eq!(s.iter(None).count(), 10);
        assert_eq!(s.iter(Some(Kind::Shortage)).count(), 1);
    }

    fn digest_follows_replicated_state(s: RecordStore<impl Engine>) {
        let empty = s.digest().unwrap();
        assert_eq!(empty.records, 0);
        put(&s, "be.vdab/vacancy/V-1", "a");
        put(&s, "be.vdab/vacancy/V-2", "b");
        let d1 = s.digest().unwrap();
        assert_eq!(d1.records, 2);
        assert_ne!(d1, empty);
        assert_eq!(d1.to_string().len(), 64);
        assert_eq!(s.digest().unwrap(), d1);

        // another node holding the same versions, received in another order, agrees
        let other = RecordStore::open(MemEngine::new()).unwrap();
        other
            .put_own(key("tg.anpe/supply/X"), b"x".to_vec(), None, 1, seal)
            .unwrap();
        let mut recs: Vec<Replica> = s.iter(None).map(|r| r.unwrap().into()).collect();
        recs.reverse();
        other.apply_replicas(recs);
        assert_ne!(other.digest().unwrap(), d1);
        // ... and the extra record it holds is what differs
        s.put_own(key("tg.anpe/supply/X"), b"x".to_vec(), None, 1, seal)
            .unwrap();
        assert_eq!(other.digest().unwrap(), s.digest().unwrap());

        put(&s, "be.vdab/vacancy/V-1", "a2");
        assert_ne!(s.digest().unwrap(), other.digest().unwrap());
    }

    macro_rules! for_both_engines {
        ($($name:ident),* $(,)?) => {
            mod mem {
                use super::*;
                $(#[test]
                fn $name() {
                    super::$name(RecordStore::open(MemEngine::new()).unwrap());
                })*
            }
            mod sled {
                use super::*;
                $(#[test]
                fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let engine = SledEngine::open(dir.path().join("db"), 8 << 20).unwrap();
                    super::$name(RecordStore::open(engine).unwrap());
                })*
            }
        };
    }

    for_both_engines!(
        first_put_gets_revision_1_and_seq_1,
        identical_put_is_a_no_op,
        changed_put_gets_next_revision,
        expected_revision_mismatch_writes_nothing,
        seal_is_not_compared,
        put_own_many_sees_earlier_items,
        replicas_apply_only_when_newer,
        list_pages_by_origin_without_leaks,
        digest_follows_replicated_state,
    );

    #[test]
    fn sled_store_reopens_with_data_and_head() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let digest = {
            let s = RecordStore::open(SledEngine::open(&path, 8 << 20).unwrap()).unwrap();
            put(&s, "be.vdab/vacancy/V-1", "a");
            put(&s, "be.vdab/vacancy/V-1", "b");
            s.apply_replica(replica("tg.anpe/supply/S-1", 4, "s"))
                .unwrap();
            s.flush().unwrap();
            s.digest().unwrap()
        };
        let s = RecordStore::open(SledEngine::open(&path, 8 << 20).unwrap()).unwrap();
        assert_eq!(s.head_seq(), 3);
        assert_eq!(s.digest().unwrap(), digest);
        assert_eq!(
            s.get(&key("be.vdab/vacancy/V-1"))
                .unwrap()
                .unwrap()
                .revision,
            2
        );
        assert_eq!(put(&s, "be.vdab/vacancy/V-2", "c").seq(), 4);
        assert_consistent(&s);
    }

    #[test]
    fn consistency_check_reports_damage() {
        let s = RecordStore::open(MemEngine::new()).unwrap();
        put(&s, "be.vdab/vacancy/V-1", "a");
        put(&s, "be.vdab/vacancy/V-2", "b");
        put(&s, "be.vdab/vacancy/V-3", "c");
        put(&s, "be.vdab/vacancy/V-1", "a2");
        assert_consistent(&s);

        // a hole in the log, a record whose log entry is gone, an undecodable value,
        // a stray key
        let mut b = WriteBatch::new();
        b.delete(codec::log_key(2).to_vec());
        b.put(
            codec::record_key(&key("be.vdab/vacancy/V-3")),
            vec![1, 0xff],
        );
        b.put(b"zzz".to_vec(), b"?".to_vec());
        s.engine().apply(b).unwrap();
        let report = s.check_consistency().unwrap();
        assert!(!report.is_ok());
        let text = report.to_string();
        assert!(text.contains("log hole: expected seq 2, found 3"), "{text}");
        assert!(
            text.contains("record be.vdab/vacancy/V-2 seq 2 has no log entry"),
            "{text}"
        );
        assert!(text.contains("rvbe.vdab/V-3"), "{text}");
        assert!(
            text.contains("1 keys outside the known key spaces"),
            "{text}"
        );
        assert_eq!(report.problems_total, report.problems.len() as u64);

        // a record older than its log says
        let s = RecordStore::open(MemEngine::new()).unwrap();
        put(&s, "be.vdab/vacancy/V-1", "a");
        let rk = codec::record_key(&key("be.vdab/vacancy/V-1"));
        let stale = s.engine().get(&rk).unwrap().unwrap();
        put(&s, "be.vdab/vacancy/V-1", "b");
        let mut b = WriteBatch::new();
        b.put(rk, stale);
        s.engine().apply(b).unwrap();
        let text = s.check_consistency().unwrap().to_string();
        assert!(
            text.contains("log seq 2: record be.vdab/vacancy/V-1 at revision 1 below logged 2"),
            "{text}"
        );
    }

    #[test]
    fn open_refuses_an_unknown_layout() {
        let engine = MemEngine::new();
        let mut b = WriteBatch::new();
        b.put(codec::META_LAYOUT, codec::encode(&MetaLayout { layout: 2 }));
        engine.apply(b).unwrap();
        assert!(RecordStore::open(engine).is_err());
        let engine = MemEngine::new();
        let mut b = WriteBatch::new();
        b.put(codec::META_LAYOUT, vec![9, 1]);
        engine.apply(b).unwrap();
        assert!(matches!(
            RecordStore::open(engine),
            Err(StoreError::UnsupportedFormat { version: 9, .. })
        ));
    }

    /// Fails every batch while `fail` is set, like a full disk.
    #[derive(Default)]
    struct FailingEngine {
        inner: MemEngine,
        fail: std::sync::atomic::AtomicBool,
    }

    impl Engine for FailingEngine {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
            self.inner.get(key)
        }
        fn scan(&self, prefix: &[u8], start: &[u8], limit: usize) -> Result<Vec<crate::KeyValue>> {
            self.inner.scan(prefix, start, limit)
        }
        fn last_with_prefix(&self, prefix: &[u8]) -> Result<Option<crate::KeyValue>> {
            self.inner.last_with_prefix(prefix)
        }
        fn apply(&self, batch: WriteBatch) -> Result<()> {
            if self.fail.load(Ordering::SeqCst) {
                let e = std::io::Error::other("no space left on device");
                return Err(StoreError::Engine(std::sync::Arc::new(e)));
            }
            self.inner.apply(batch)
        }
        fn flush(&self) -> Result<()> {
            self.inner.flush()
        }
        fn size_on_disk(&self) -> Result<u64> {
            self.inner.size_on_disk()
        }
    }

    #[test]
    fn a_failed_batch_fails_every_item_and_keeps_the_head() {
        let s = RecordStore::open(FailingEngine::default()).unwrap();
        put(&s, "be.vdab/vacancy/A", "a1");
        s.engine().fail.store(true, Ordering::SeqCst);
        let out = s.put_own_many(
            vec![
                (key("be.vdab/vacancy/A"), b"a1".to_vec(), None),
                (key("be.vdab/vacancy/B"), b"b1".to_vec(), None),
                (key("be.vdab/vacancy/C"), b"c1".to_vec(), Some(7)),
            ],
            1,
            seal,
        );
        assert!(matches!(out[0], Err(StoreError::Engine(_))));
        assert_eq!(
            out[1].as_ref().unwrap_err().to_string(),
            "storage engine: no space left on device"
        );
        assert!(matches!(out[2], Err(StoreError::RevisionMismatch { .. })));
        assert!(s
            .put_own(key("be.vdab/vacancy/B"), b"b".to_vec(), None, 1, seal)
            .is_err());
        assert!(s
            .apply_replica(replica("tg.anpe/supply/S", 1, "s"))
            .is_err());
        assert_eq!(s.head_seq(), 1);
        s.engine().fail.store(false, Ordering::SeqCst);
        assert_eq!(put(&s, "be.vdab/vacancy/B", "b").seq(), 2);
        assert_consistent(&s);
    }

    #[test]
    fn concurrent_writers_get_distinct_contiguous_seqs() {
        let s = std::sync::Arc::new(RecordStore::open(MemEngine::new()).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let k = key(&format!("be.vdab/vacancy/T{t}-{}", i % 10));
                        s.put_own(k, format!("{i}").into_bytes(), None, 1, seal)
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(s.head_seq(), 200);
        assert_consistent(&s);
    }
}
