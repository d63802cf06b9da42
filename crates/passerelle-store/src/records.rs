//! Records of every origin, their revisions, and the node's compacted sync log.
//!
//! One writer at a time (a mutex), any number of readers. Each accepted change writes the
//! record, its log entry and the new head seq in one atomic engine batch, and deletes the
//! log entry of the version it supersedes (each record knows the seq of its entry). So
//! the log holds exactly one entry per stored record, at that record's seq, and
//! `log_since(0, ..)` is a snapshot of the current state. Seqs are never reused: the
//! head is persisted as metadata, because the newest entry may be compacted or purged.
//! A change is durable once [`RecordStore::flush`] has returned.
//!
//! Tombstones are purged by the caller's choice ([`RecordStore::purge`]), which raises
//! a persisted purge horizon; peers' sync cursors are written in the same batch as the
//! replicas they cover ([`RecordStore::apply_replicas_with_cursor`]), so a flushed
//! cursor never runs ahead of the state it stands for.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use passerelle_model::{AgencyId, Kind, RecordKey};
use tracing::{debug, warn};

use crate::codec::{self, LogValue, MetaBytes, MetaLayout, MetaSeq, RecordValue};
use crate::engine::{successor, Engine, KeyValue, WriteBatch};
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
    pub purged_through_seq: u64,
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
            "head seq {}, purged through seq {}, {} records, {} log entries, {} problems",
            self.head_seq,
            self.purged_through_seq,
            self.records,
            self.log_entries,
            self.problems_total
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

/// What only writers change, guarded by the writer lock.
#[derive(Debug, Clone, Copy)]
struct Heads {
    head: u64,
    purged_through: u64,
}

/// The record store of one node.
pub struct RecordStore<E: Engine> {
    engine: E,
    /// The single writer lock. Metadata writes take it too, so that
    /// [`RecordStore::check_consistency`] and [`RecordStore::digest`] see one state.
    writer: Mutex<Heads>,
    /// The head seq for readers, published after each successful batch.
    head: AtomicU64,
    /// The purge horizon for readers, published after each successful purge.
    purged_through: AtomicU64,
}

impl<E: Engine> RecordStore<E> {
    /// Opens the store: writes the layout marker and head seq into an empty engine, and
    /// recovers the head seq and purge horizon from metadata. A store that has no
    /// persisted head yet takes it from its last log entry.
    pub fn open(engine: E) -> Result<Self> {
        let mut init = WriteBatch::new();
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
            None => init.put(
                codec::META_LAYOUT,
                codec::encode(&MetaLayout {
                    layout: codec::LAYOUT,
                }),
            ),
        }
        let last_logged = match engine.last_with_prefix(&[codec::LOG])? {
            Some((k, _)) => codec::decode_log_key(&k)?,
            None => 0,
        };
        let head = match read_seq(&engine, codec::META_HEAD)? {
            Some(head) if head >= last_logged => head,
            Some(head) => {
                // Only damage gets here; going on from the persisted head would reuse
                // seqs and overwrite entries. check_consistency reports the damage.
                warn!(
                    head_seq = head,
                    last_log_seq = last_logged,
                    "log runs past the persisted head seq"
                );
                last_logged
            }
            None => {
                init.put(
                    codec::META_HEAD,
                    codec::encode(&MetaSeq { seq: last_logged }),
                );
                last_logged
            }
        };
        let purged_through = read_seq(&engine, codec::META_PURGED)?.unwrap_or(0);
        if !init.is_empty() {
            engine.apply(init)?;
        }
        debug!(
            head_seq = head,
            purged_through_seq = purged_through,
            "record store opened"
        );
        Ok(RecordStore {
            engine,
            writer: Mutex::new(Heads {
                head,
                purged_through,
            }),
            head: AtomicU64::new(head),
            purged_through: AtomicU64::new(purged_through),
        })
    }

    /// The engine underneath, for whole-store operations (backup). Writing to it
    /// directly bypasses every invariant of this store.
    pub fn engine(&self) -> &E {
        &self.engine
    }

    fn lock_writer(&self) -> MutexGuard<'_, Heads> {
        // The guarded heads only change after a batch applied, so a panic while holding
        // the lock cannot leave them out of step with the engine.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies the transaction's batch, persisting the head seq with it when the batch
    /// allocated seqs.
    fn commit(&self, heads: &mut Heads, mut txn: Txn<'_, E>) -> Result<()> {
        if txn.head != heads.head {
            txn.batch
                .put(codec::META_HEAD, codec::encode(&MetaSeq { seq: txn.head }));
        }
        if txn.batch.is_empty() {
            return Ok(());
        }
        self.engine.apply(txn.batch)?;
        heads.head = txn.head;
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
        let mut heads = self.lock_writer();
        let mut txn = Txn::new(&self.engine, heads.head);
        let outcome = txn.put_own(key, content, expected_revision, now_micros, seal)?;
        self.commit(&mut heads, txn)?;
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
        let mut heads = self.lock_writer();
        let mut txn = Txn::new(&self.engine, heads.head);
        let results: Vec<Result<PutOutcome>> = items
            .into_iter()
            .map(|(key, content, expected)| txn.put_own(key, content, expected, now_micros, &seal))
            .collect();
        match self.commit(&mut heads, txn) {
            Ok(()) => results,
            Err(e) => fail_all(results, e),
        }
    }

    /// Stores a replica if its revision is newer than the stored one. It keeps the
    /// origin's revision, timestamp, content and seal, and gets a new local seq.
    pub fn apply_replica(&self, replica: Replica) -> Result<ReplicaOutcome> {
        let mut heads = self.lock_writer();
        let mut txn = Txn::new(&self.engine, heads.head);
        let outcome = txn.apply_replica(replica)?;
        self.commit(&mut heads, txn)?;
        Ok(outcome)
    }

    /// [`RecordStore::apply_replica`] for many replicas, in order, in one atomic batch,
    /// with the same error rule as [`RecordStore::put_own_many`].
    pub fn apply_replicas(&self, replicas: Vec<Replica>) -> Vec<Result<ReplicaOutcome>> {
        let (results, committed) = self.apply_replicas_inner(replicas, None);
        match committed {
            Ok(()) => results,
            Err(e) => fail_all(results, e),
        }
    }

    /// [`RecordStore::apply_replicas`] that also sets the sync cursor of `peer` to `seq`
    /// in the same atomic batch, so once flushed the cursor never runs ahead of the
    /// state it covers. The cursor is written even when every replica is ignored (or
    /// there are none), but only when every replica succeeded: a replica that failed
    /// (say, a stored value that does not decode) is not covered, so the cursor stays
    /// where it was and the next pull fetches it again. The cursor is set as given,
    /// not raised to the larger value: keeping it monotonic is the caller's business.
    ///
    /// `Err` when the batch could not be written: then nothing was stored, cursor
    /// included. Otherwise one result per replica.
    pub fn apply_replicas_with_cursor(
        &self,
        replicas: Vec<Replica>,
        cursor: Option<(&str, u64)>,
    ) -> Result<Vec<Result<ReplicaOutcome>>> {
        let (results, committed) = self.apply_replicas_inner(replicas, cursor);
        committed.map(|()| results)
    }

    fn apply_replicas_inner(
        &self,
        replicas: Vec<Replica>,
        cursor: Option<(&str, u64)>,
    ) -> (Vec<Result<ReplicaOutcome>>, Result<()>) {
        let mut heads = self.lock_writer();
        let mut txn = Txn::new(&self.engine, heads.head);
        let results: Vec<Result<ReplicaOutcome>> =
            replicas.into_iter().map(|r| txn.apply_replica(r)).collect();
        if let Some((peer, seq)) = cursor {
            if results.iter().all(Result::is_ok) {
                txn.batch.put(
                    codec::meta_name_key(codec::META_CURSOR, peer),
                    codec::encode(&MetaSeq { seq }),
                );
            }
        }
        let committed = self.commit(&mut heads, txn);
        (results, committed)
    }

    /// The sync cursor of `peer` (the last seq of theirs this node holds), if any.
    pub fn cursor(&self, peer: &str) -> Result<Option<u64>> {
        read_seq(
            &self.engine,
            &codec::meta_name_key(codec::META_CURSOR, peer),
        )
    }

    /// Sets the sync cursor of `peer`, e.g. back to 0 to pull everything again.
    pub fn set_cursor(&self, peer: &str, seq: u64) -> Result<()> {
        let _writer = self.lock_writer();
        let mut b = WriteBatch::new();
        b.put(
            codec::meta_name_key(codec::META_CURSOR, peer),
            codec::encode(&MetaSeq { seq }),
        );
        self.engine.apply(b)
    }

    /// Every peer's sync cursor, ordered by peer name (as bytes).
    pub fn cursors(&self) -> Result<Vec<(String, u64)>> {
        self.engine
            .iter_prefix(codec::META_CURSOR, codec::META_CURSOR)
            .map(|item| {
                let (k, v) = item?;
                let peer = codec::decode_meta_name(codec::META_CURSOR, &k)?;
                let m: MetaSeq = codec::decode(&k, &v)?;
                Ok((peer, m.seq))
            })
            .collect()
    }

    /// A value of the caller's metadata map (flags such as blocked peers). The map is
    /// its own key family: no name can touch the store's own metadata.
    pub fn meta_get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let k = codec::meta_name_key(codec::META_USER, name);
        match self.engine.get(&k)? {
            Some(bytes) => Ok(Some(codec::decode::<MetaBytes>(&k, &bytes)?.value)),
            None => Ok(None),
        }
    }

    /// Sets a value of the caller's metadata map, in its own atomic batch.
    pub fn meta_put(&self, name: &str, value: &[u8]) -> Result<()> {
        let _writer = self.lock_writer();
        let mut b = WriteBatch::new();
        b.put(
            codec::meta_name_key(codec::META_USER, name),
            codec::encode(&MetaBytes {
                value: value.to_vec(),
            }),
        );
        self.engine.apply(b)
    }

    /// Removes a value of the caller's metadata map; absent names are fine.
    pub fn meta_delete(&self, name: &str) -> Result<()> {
        let _writer = self.lock_writer();
        let mut b = WriteBatch::new();
        b.delete(codec::meta_name_key(codec::META_USER, name));
        self.engine.apply(b)
    }

    /// Every entry of the caller's metadata map whose name starts with `prefix`,
    /// ordered by name (as bytes).
    pub fn meta_list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let p = codec::meta_name_key(codec::META_USER, prefix);
        self.engine
            .iter_prefix(&p, &p)
            .map(|item| {
                let (k, v) = item?;
                let name = codec::decode_meta_name(codec::META_USER, &k)?;
                Ok((name, codec::decode::<MetaBytes>(&k, &v)?.value))
            })
            .collect()
    }

    /// Deletes these records and their log entries in one atomic batch, and raises the
    /// purge horizon to the highest seq purged. Absent keys (and repeats) are skipped;
    /// returns how many records went. Which records may go (tombstones past the
    /// retention horizon) is the caller's decision.
    ///
    /// A newer version may arrive between the caller's choice and this call; use
    /// [`RecordStore::purge_at`] to purge only the versions that were chosen.
    pub fn purge(&self, keys: &[RecordKey]) -> Result<u64> {
        self.purge_where(keys.iter().map(|k| (k, None)))
    }

    /// [`RecordStore::purge`] of each key only while it is still at the given revision.
    pub fn purge_at(&self, items: &[(RecordKey, u64)]) -> Result<u64> {
        self.purge_where(items.iter().map(|(k, r)| (k, Some(*r))))
    }

    fn purge_where<'k>(
        &self,
        items: impl Iterator<Item = (&'k RecordKey, Option<u64>)>,
    ) -> Result<u64> {
        let mut heads = self.lock_writer();
        let mut batch = WriteBatch::new();
        let mut seen = HashSet::new();
        let mut purged = 0u64;
        let mut through = heads.purged_through;
        for (key, revision) in items {
            let skey = codec::record_key(key);
            if !seen.insert(skey.clone()) {
                continue;
            }
            let Some(bytes) = self.engine.get(&skey)? else {
                continue;
            };
            let v: RecordValue = codec::decode(&skey, &bytes)?;
            if revision.is_some_and(|r| r != v.revision) {
                continue;
            }
            batch.delete(codec::log_key(v.seq).to_vec());
            batch.delete(skey);
            // remember the last revision: an id posted again must go on from it, or peers
            // still holding the tombstone would ignore the new version
            batch.put(
                revision_floor_key(key),
                codec::encode(&MetaBytes {
                    value: v.revision.to_be_bytes().to_vec(),
                }),
            );
            purged += 1;
            through = through.max(v.seq);
        }
        if purged == 0 {
            return Ok(0);
        }
        batch.put(codec::META_PURGED, codec::encode(&MetaSeq { seq: through }));
        self.engine.apply(batch)?;
        heads.purged_through = through;
        self.purged_through.store(through, Ordering::Release);
        debug!(purged, purged_through_seq = through, "records purged");
        Ok(purged)
    }

    /// The highest seq of any record purged so far (0 when none): a peer whose cursor
    /// is below it may have missed a purged tombstone and must re-sync from a snapshot.
    pub fn purged_through_seq(&self) -> u64 {
        self.purged_through.load(Ordering::Acquire)
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

    /// Whether any record of this kind and origin is held; reads at most one key.
    pub fn holds_origin(&self, kind: Kind, origin: &AgencyId) -> Result<bool> {
        let prefix = codec::record_prefix(Some(kind), Some(origin));
        Ok(!self.engine.scan(&prefix, &prefix, 1)?.is_empty())
    }

    /// Records of `kind` whose origin is `origin`, counted on keys alone (for status).
    pub fn count_origin(&self, kind: Kind, origin: &AgencyId) -> Result<u64> {
        self.engine
            .count_prefix(&codec::record_prefix(Some(kind), Some(origin)))
    }

    /// The seq of the last accepted change (0 when none).
    pub fn head_seq(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    /// Up to `limit` log entries with seq > `since`, ascending. There is one entry per
    /// stored record, so from 0 this is a snapshot of the current state; seqs have gaps
    /// where versions were superseded or purged.
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

    /// Checks the invariants tying records, log and metadata together: log entries and
    /// records are in one-to-one correspondence (each entry names an existing record
    /// whose seq and revision are the entry's, each record's seq has such an entry), no
    /// seq is 0 or above the persisted head, the purge horizon is not above the head,
    /// every value decodes, no unknown keys. Seqs need not be contiguous: compaction and
    /// purge leave gaps. Writers wait while it runs; engine errors are returned as
    /// errors, everything else as problems in the report.
    pub fn check_consistency(&self) -> Result<ConsistencyReport> {
        let heads = self.lock_writer();
        let mut report = ConsistencyReport {
            head_seq: heads.head,
            purged_through_seq: heads.purged_through,
            records: 0,
            log_entries: 0,
            problems: Vec::new(),
            problems_total: 0,
        };

        let mut meta_keys = 0u64;
        let mut layout_seen = false;
        let mut persisted_head = None;
        let mut persisted_purged = 0u64;
        let decode_seq = |report: &mut ConsistencyReport, k: &[u8], v: &[u8]| {
            codec::decode::<MetaSeq>(k, v)
                .map_err(|e| report.problem(e.to_string()))
                .ok()
                .map(|m| m.seq)
        };
        for item in self.engine.iter_prefix(&[codec::META], &[codec::META]) {
            let (k, v) = item?;
            meta_keys += 1;
            if k == codec::META_LAYOUT {
                layout_seen = true;
                match codec::decode::<MetaLayout>(&k, &v) {
                    Ok(m) if m.layout == codec::LAYOUT => {}
                    Ok(m) => report.problem(format!("unsupported layout {}", m.layout)),
                    Err(e) => report.problem(e.to_string()),
                }
            } else if k == codec::META_HEAD {
                persisted_head = decode_seq(&mut report, &k, &v);
            } else if k == codec::META_PURGED {
                persisted_purged = decode_seq(&mut report, &k, &v).unwrap_or(0);
            } else if k.starts_with(codec::META_CURSOR) {
                if let Err(e) = codec::decode_meta_name(codec::META_CURSOR, &k) {
                    report.problem(e.to_string());
                }
                decode_seq(&mut report, &k, &v);
            } else if k.starts_with(codec::META_USER) {
                if let Err(e) = codec::decode_meta_name(codec::META_USER, &k)
                    .and_then(|_| codec::decode::<MetaBytes>(&k, &v))
                {
                    report.problem(e.to_string());
                }
            } else {
                report.problem(format!("unknown metadata key {}", k.escape_ascii()));
            }
        }
        if !layout_seen {
            report.problem("layout marker missing".into());
        }
        // Seqs are checked against the persisted head: it is what a restart continues
        // from, so an entry above it would have its seq handed out again.
        let head = match persisted_head {
            None => {
                report.problem("head seq not persisted".into());
                heads.head
            }
            Some(p) => {
                if p != heads.head {
                    report.problem(format!(
                        "head seq {} in memory but {p} persisted",
                        heads.head
                    ));
                }
                p
            }
        };
        if persisted_purged != heads.purged_through {
            report.problem(format!(
                "purged through seq {} in memory but {persisted_purged} persisted",
                heads.purged_through
            ));
        }
        if persisted_purged > head {
            report.problem(format!(
                "purged through seq {persisted_purged} above head seq {head}"
            ));
        }

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
            if seq == 0 || seq > head {
                report.problem(format!("log seq {seq} outside 1..={head}"));
            }
            match self.get(&entry.key) {
                Ok(None) => report.problem(format!("log seq {seq}: record {} missing", entry.key)),
                Ok(Some(rec)) if rec.seq == seq && rec.revision == entry.revision => {}
                Ok(Some(rec)) => report.problem(format!(
                    "log seq {seq}: record {} is at seq {} revision {}, entry says revision {}",
                    entry.key, rec.seq, rec.revision, entry.revision
                )),
                Err(StoreError::Engine(e)) => return Err(StoreError::Engine(e)),
                Err(e) => report.problem(format!("log seq {seq}: {e}")),
            }
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
        drop(heads);
        Ok(report)
    }

    /// The [`StateDigest`] of all records. Writers wait while it runs, so the digest is
    /// of one state.
    pub fn digest(&self) -> Result<StateDigest> {
        let _writer = self.lock_writer();
        let mut digester = Digester::new();
        let prefix = codec::record_prefix(None, None);
        for item in self.engine.iter_prefix(&prefix, &prefix) {
            let (k, v) = item?;
            digester.add(&decode_stored(&k, &v)?);
        }
        Ok(digester.finish())
    }

    /// Hands every key and value of the engine, in key order, to `sink`: records, log and
    /// metadata (cursors included), so that [`RecordStore::import_raw`] of the pairs into
    /// an empty engine is this store. Writers wait while it runs, so the pairs, the heads
    /// and the digest it returns are of one state: keep `sink` fast (a local file), never
    /// a network peer.
    pub fn export_raw<X: From<StoreError>>(
        &self,
        mut sink: impl FnMut(&[u8], &[u8]) -> Result<(), X>,
    ) -> Result<ExportSummary, X> {
        let heads = self.lock_writer();
        let mut digester = Digester::new();
        let (mut keys, mut log_entries) = (0u64, 0u64);
        for item in self.engine.iter_prefix(&[], &[]).with_chunk(1024) {
            let (k, v) = item?;
            match k.first() {
                Some(&codec::RECORD) => digester.add(&decode_stored(&k, &v)?),
                Some(&codec::LOG) => log_entries += 1,
                _ => {}
            }
            sink(&k, &v)?;
            keys += 1;
        }
        let digest = digester.finish();
        Ok(ExportSummary {
            head_seq: heads.head,
            purged_through_seq: heads.purged_through,
            records: digest.records,
            log_entries,
            keys,
            digest,
        })
    }

    /// Writes the pairs of an [`RecordStore::export_raw`] into `engine`, which must be
    /// empty, in batches, then flushes; returns how many pairs were written. The pairs
    /// must come in strictly ascending key order (as exported). Open the result with
    /// [`RecordStore::open`] and check it with [`RecordStore::check_consistency`]: a
    /// failure half-way leaves a partial engine that only deserves deleting.
    pub fn import_raw<X: From<StoreError>>(
        engine: &E,
        pairs: impl IntoIterator<Item = Result<KeyValue, X>>,
    ) -> Result<u64, X> {
        let existing = engine.count_prefix(&[])?;
        if existing > 0 {
            return Err(StoreError::NotEmpty { keys: existing }.into());
        }
        const BATCH_BYTES: usize = 4 << 20;
        let mut batch = WriteBatch::new();
        let mut batch_bytes = 0usize;
        let mut last: Option<Vec<u8>> = None;
        let mut n = 0u64;
        for pair in pairs {
            let (k, v) = pair?;
            if last.as_ref().is_some_and(|l| *l >= k) {
                return Err(StoreError::corrupt(&k, "keys out of order in the import").into());
            }
            batch_bytes += k.len() + v.len();
            last = Some(k.clone());
            batch.put(k, v);
            n += 1;
            if batch.len() >= 1024 || batch_bytes >= BATCH_BYTES {
                engine.apply(std::mem::take(&mut batch))?;
                batch_bytes = 0;
            }
        }
        if !batch.is_empty() {
            engine.apply(batch)?;
        }
        engine.flush()?;
        Ok(n)
    }
}

/// What [`RecordStore::export_raw`] exported: one state of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportSummary {
    pub head_seq: u64,
    pub purged_through_seq: u64,
    pub records: u64,
    pub log_entries: u64,
    /// Every key exported (records, log entries and metadata).
    pub keys: u64,
    /// The [`StateDigest`] of the exported records.
    pub digest: StateDigest,
}

/// Builds a [`StateDigest`] from records fed in storage order.
struct Digester {
    ctx: ring::digest::Context,
    records: u64,
}

impl Digester {
    fn new() -> Self {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"passerelle-store state digest v1\0");
        Digester { ctx, records: 0 }
    }

    fn add(&mut self, rec: &StoredRecord) {
        self.records += 1;
        let key = rec.key.to_string();
        for field in [
            key.as_bytes(),
            &rec.revision.to_be_bytes(),
            &rec.content,
            &rec.seal,
        ] {
            self.ctx.update(&(field.len() as u64).to_be_bytes());
            self.ctx.update(field);
        }
    }

    fn finish(self) -> StateDigest {
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(self.ctx.finish().as_ref());
        StateDigest {
            records: self.records,
            sha256,
        }
    }
}

/// Where the last revision of a purged record is kept (in the caller-metadata family, which
/// the consistency check accepts).
fn revision_floor_key(key: &RecordKey) -> Vec<u8> {
    codec::meta_name_key(codec::META_USER, &format!("purged-rev/{key}"))
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
        let (stored_revision, stored_seq, same, exists) = self.with_stored(&skey, |v| match v {
            Some(v) => (v.revision, v.seq, v.content == content, true),
            None => (0, 0, false, false),
        })?;
        // an id whose record was purged goes on from its last revision
        let base_revision = if exists {
            stored_revision
        } else {
            let k = revision_floor_key(&key);
            match self.engine.get(&k)? {
                Some(bytes) => {
                    let m: MetaBytes = codec::decode(&k, &bytes)?;
                    let mut b = [0u8; 8];
                    if m.value.len() == 8 {
                        b.copy_from_slice(&m.value);
                    }
                    u64::from_be_bytes(b)
                }
                None => 0,
            }
        };
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
        let Some(revision) = base_revision.checked_add(1) else {
            return Err(StoreError::RevisionOverflow { key });
        };
        let seal = seal(&key, revision, now_micros, &content);
        let seq = self.append(
            &key,
            skey,
            stored_seq,
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
        let (stored_revision, stored_seq) =
            self.with_stored(&skey, |v| v.map_or((0, 0), |v| (v.revision, v.seq)))?;
        if r.revision <= stored_revision {
            return Ok(ReplicaOutcome::Ignored { stored_revision });
        }
        let seq = self.append(
            &r.key,
            skey,
            stored_seq,
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

    /// Adds the version and its log entry to the batch under the next seq, and deletes
    /// the entry of the version it supersedes (seq `previous_seq`, 0 when none). When
    /// that entry was put earlier in this batch, the later delete wins.
    fn append(
        &mut self,
        key: &RecordKey,
        skey: Vec<u8>,
        previous_seq: u64,
        mut value: RecordValue,
    ) -> u64 {
        if previous_seq != 0 {
            self.batch.delete(codec::log_key(previous_seq).to_vec());
        }
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

/// A [`MetaSeq`] stored under `key`, if any.
fn read_seq(engine: &impl Engine, key: &[u8]) -> Result<Option<u64>> {
    match engine.get(key)? {
        Some(bytes) => Ok(Some(codec::decode::<MetaSeq>(key, &bytes)?.seq)),
        None => Ok(None),
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
    use crate::engine::{AnyEngine, MemEngine, SledEngine};

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
        // entries 1 and 3 were superseded by 4 and compacted away
        let log = s.log_since(0, 10).unwrap();
        assert_eq!(
            log.iter()
                .map(|e| (e.seq, e.key.id.as_str(), e.revision))
                .collect::<Vec<_>>(),
            vec![(2, "V-9", 1), (4, "V-1", 3)]
        );
        assert_eq!(s.log_since(2, 10).unwrap().len(), 1);
        assert_eq!(s.log_since(1, 1).unwrap()[0].seq, 2);
        assert_eq!(s.log_since(2, 1).unwrap()[0].seq, 4);
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
            // B's first version (seq 2) was superseded within the same batch
            vec![(3, "B", 2), (4, "A", 2)]
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
        // an origin's count is not fooled by origins it is a prefix of
        assert_eq!(s.count_origin(Kind::Vacancy, &vdab).unwrap(), 5);
        assert_eq!(s.count_origin(Kind::Vacancy, &x).unwrap(), 2);
        assert_eq!(s.count_origin(Kind::Shortage, &vdab).unwrap(), 1);
        assert_eq!(s.count_origin(Kind::Supply, &vdab).unwrap(), 0);
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

    /// (seq, key, revision) of a log entry or a record.
    type Row = (u64, String, u64);

    /// Every log entry, as (seq, key, revision), and every record, as (seq, key,
    /// revision): equal when the log is exactly one entry per record.
    fn log_and_records(s: &RecordStore<impl Engine>) -> (Vec<Row>, Vec<Row>) {
        let log = s
            .log_since(0, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|e| (e.seq, e.key.to_string(), e.revision))
            .collect();
        let mut recs: Vec<_> = s
            .iter(None)
            .map(|r| {
                let r = r.unwrap();
                (r.seq, r.key.to_string(), r.revision)
            })
            .collect();
        recs.sort();
        (log, recs)
    }

    fn compaction_keeps_one_entry_per_record(s: RecordStore<impl Engine>) {
        put(&s, "be.vdab/vacancy/A", "a1"); // 1
        put(&s, "be.vdab/vacancy/B", "b1"); // 2
        put(&s, "be.vdab/vacancy/A", "a2"); // 3, drops 1
        s.apply_replica(replica("tg.anpe/supply/C", 1, "c1"))
            .unwrap(); // 4
        s.apply_replica(replica("tg.anpe/supply/C", 3, "c3"))
            .unwrap(); // 5, drops 4
                       // superseded twice within one batch: only the last version's entry stays
        let out = s.put_own_many(
            vec![
                (key("be.vdab/vacancy/B"), b"b2".to_vec(), None), // 6, drops 2
                (key("be.vdab/vacancy/D"), b"d1".to_vec(), None), // 7
                (key("be.vdab/vacancy/B"), b"b3".to_vec(), None), // 8, drops 6
            ],
            1,
            seal,
        );
        assert!(out.iter().all(|r| r.as_ref().unwrap().is_written()));
        let out = s
            .apply_replicas(vec![
                replica("tg.anpe/supply/C", 4, "c4"), // 9, drops 5
                replica("tg.anpe/supply/C", 6, "c6"), // 10, drops 9
                replica("tg.anpe/supply/C", 5, "c5"), // ignored
            ])
            .into_iter()
            .map(|r| r.unwrap())
            .collect::<Vec<_>>();
        assert_eq!(out[2], ReplicaOutcome::Ignored { stored_revision: 6 });
        // neither an unchanged put nor an ignored replica touches the log
        put(&s, "be.vdab/vacancy/D", "d1");
        s.apply_replica(replica("tg.anpe/supply/C", 2, "c2"))
            .unwrap();
        assert_eq!(s.head_seq(), 10);

        let (log, recs) = log_and_records(&s);
        assert_eq!(
            log,
            vec![
                (3, "be.vdab/vacancy/A".to_string(), 2),
                (7, "be.vdab/vacancy/D".to_string(), 1),
                (8, "be.vdab/vacancy/B".to_string(), 3),
                (10, "tg.anpe/supply/C".to_string(), 6),
            ]
        );
        assert_eq!(
            log, recs,
            "log_since(0) is a snapshot: one entry per record"
        );
        for gone in [1, 2, 4, 5, 6, 9] {
            assert_eq!(
                s.engine().get(&codec::log_key(gone)).unwrap(),
                None,
                "seq {gone}"
            );
        }
        assert_eq!(s.engine().count_prefix(&[codec::LOG]).unwrap(), 4);
        // a page boundary inside the gaps
        assert_eq!(s.log_since(3, 1).unwrap()[0].seq, 7);
        assert_eq!(s.log_since(8, 10).unwrap().len(), 1);
        assert_consistent(&s);
    }

    fn purge_removes_record_entry_and_raises_horizon(s: RecordStore<impl Engine>) {
        assert_eq!(s.purged_through_seq(), 0);
        put(&s, "be.vdab/vacancy/A", "a"); // 1
        put(&s, "be.vdab/vacancy/B", "b"); // 2
        s.apply_replica(replica("tg.anpe/vacancy/C", 3, "c"))
            .unwrap(); // 3
        put(&s, "be.vdab/vacancy/D", "d"); // 4
        put(&s, "be.vdab/vacancy/A", "a2"); // 5
        assert_eq!(s.purge(&[]).unwrap(), 0);
        assert_eq!(s.purge(&[key("be.vdab/vacancy/none")]).unwrap(), 0);
        assert_eq!(s.purged_through_seq(), 0);
        assert_eq!(s.engine().get(codec::META_PURGED).unwrap(), None);

        // repeats and absent keys are skipped
        let n = s
            .purge(&[
                key("tg.anpe/vacancy/C"),
                key("be.vdab/vacancy/none"),
                key("be.vdab/vacancy/A"),
                key("tg.anpe/vacancy/C"),
            ])
            .unwrap();
        assert_eq!(n, 2);
        assert_eq!(s.get(&key("be.vdab/vacancy/A")).unwrap(), None);
        assert_eq!(s.get(&key("tg.anpe/vacancy/C")).unwrap(), None);
        assert_eq!(s.engine().get(&codec::log_key(3)).unwrap(), None);
        assert_eq!(s.engine().get(&codec::log_key(5)).unwrap(), None);
        assert_eq!(s.purged_through_seq(), 5);
        // purging changes no seq: the head stays, the next change goes on from it
        assert_eq!(s.head_seq(), 5);
        let (log, recs) = log_and_records(&s);
        assert_eq!(log.iter().map(|e| e.0).collect::<Vec<_>>(), vec![2, 4]);
        assert_eq!(log, recs);
        assert_consistent(&s);

        // purge_at only takes the version that was chosen
        put(&s, "be.vdab/vacancy/B", "b2"); // 6, revision 2
        assert_eq!(s.purge_at(&[(key("be.vdab/vacancy/B"), 1)]).unwrap(), 0);
        assert!(s.get(&key("be.vdab/vacancy/B")).unwrap().is_some());
        assert_eq!(s.purged_through_seq(), 5);
        assert_eq!(s.purge_at(&[(key("be.vdab/vacancy/B"), 2)]).unwrap(), 1);
        assert_eq!(s.purged_through_seq(), 6);
        // a lower seq purged later does not lower the horizon
        assert_eq!(s.purge(&[key("be.vdab/vacancy/D")]).unwrap(), 1);
        assert_eq!(s.purged_through_seq(), 6);
        assert!(s.log_since(0, 10).unwrap().is_empty());
        assert_eq!(s.count(Kind::Vacancy).unwrap(), 0);
        // a purged key goes on from its last revision (peers may still hold the tombstone),
        // under a new seq
        let again = put(&s, "be.vdab/vacancy/A", "again");
        assert!(
            matches!(again, PutOutcome::Written { seq: 7, .. }),
            "{again:?}"
        );
        assert!(again.revision() >= 2, "{again:?}");
        assert_consistent(&s);
    }

    fn cursor_moves_with_its_replicas(s: RecordStore<impl Engine>) {
        assert_eq!(s.cursor("tg.anpe").unwrap(), None);
        assert!(s.cursors().unwrap().is_empty());
        let out = s
            .apply_replicas_with_cursor(
                vec![
                    replica("tg.anpe/vacancy/T-1", 1, "a"),
                    replica("tg.anpe/vacancy/T-2", 2, "b"),
                ],
                Some(("tg.anpe", 10)),
            )
            .unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[1].as_ref().unwrap(),
            &ReplicaOutcome::Applied { seq: 2 }
        );
        assert_eq!(s.cursor("tg.anpe").unwrap(), Some(10));
        // every replica ignored (a replay): the cursor still moves, no seq is used
        let out = s
            .apply_replicas_with_cursor(
                vec![replica("tg.anpe/vacancy/T-1", 1, "a")],
                Some(("tg.anpe", 12)),
            )
            .unwrap();
        assert_eq!(
            out[0].as_ref().unwrap(),
            &ReplicaOutcome::Ignored { stored_revision: 1 }
        );
        assert_eq!(s.cursor("tg.anpe").unwrap(), Some(12));
        assert_eq!(s.head_seq(), 2);
        // no replicas at all
        assert!(s
            .apply_replicas_with_cursor(Vec::new(), Some(("tg.anpe", 15)))
            .unwrap()
            .is_empty());
        assert_eq!(s.cursor("tg.anpe").unwrap(), Some(15));
        // without a cursor, like apply_replicas
        let out = s
            .apply_replicas_with_cursor(vec![replica("tg.anpe/vacancy/T-3", 1, "c")], None)
            .unwrap();
        assert_eq!(
            out[0].as_ref().unwrap(),
            &ReplicaOutcome::Applied { seq: 3 }
        );
        assert_eq!(s.cursor("tg.anpe").unwrap(), Some(15));
        // set as given, also backwards (sync --from-start)
        s.set_cursor("be.vdab", 7).unwrap();
        s.set_cursor("tg.anpe", 0).unwrap();
        assert_eq!(s.cursor("tg.anpe").unwrap(), Some(0));
        assert_eq!(
            s.cursors().unwrap(),
            vec![("be.vdab".to_string(), 7), ("tg.anpe".to_string(), 0)]
        );
        // cursors are not records and not in the log or the digest
        assert_eq!(s.iter(None).count(), 3);
        assert_eq!(s.log_since(0, 10).unwrap().len(), 3);
        assert_consistent(&s);
    }

    fn cursor_stays_when_a_replica_fails(s: RecordStore<impl Engine>) {
        s.set_cursor("tg.anpe", 5).unwrap();
        // a stored value that does not decode makes its replica fail
        let mut b = WriteBatch::new();
        b.put(
            codec::record_key(&key("tg.anpe/vacancy/BAD")),
            vec![1, 0xff],
        );
        s.engine().apply(b).unwrap();
        let out = s
            .apply_replicas_with_cursor(
                vec![
                    replica("tg.anpe/vacancy/OK", 1, "a"),
                    replica("tg.anpe/vacancy/BAD", 9, "b"),
                ],
                Some(("tg.anpe", 9)),
            )
            .unwrap();
        assert_eq!(
            out[0].as_ref().unwrap(),
            &ReplicaOutcome::Applied { seq: 1 }
        );
        assert!(matches!(out[1], Err(StoreError::Corrupt { .. })));
        // the good one is stored (idempotent on the next pull), the cursor did not move
        assert!(s.get(&key("tg.anpe/vacancy/OK")).unwrap().is_some());
        assert_eq!(s.cursor("tg.anpe").unwrap(), Some(5));
    }

    fn meta_map_round_trips(s: RecordStore<impl Engine>) {
        assert_eq!(s.meta_get("blocked/tg.anpe").unwrap(), None);
        s.meta_put("blocked/tg.anpe", b"since 2026-01-01").unwrap();
        s.meta_put("blocked/be.vdab", b"").unwrap();
        s.meta_put("other", &[0, 0xff, 1]).unwrap();
        assert_eq!(
            s.meta_get("blocked/tg.anpe").unwrap(),
            Some(b"since 2026-01-01".to_vec())
        );
        assert_eq!(s.meta_get("blocked/be.vdab").unwrap(), Some(Vec::new()));
        s.meta_put("other", b"x").unwrap();
        assert_eq!(s.meta_get("other").unwrap(), Some(b"x".to_vec()));
        assert_eq!(
            s.meta_list("blocked/").unwrap(),
            vec![
                ("blocked/be.vdab".to_string(), Vec::new()),
                ("blocked/tg.anpe".to_string(), b"since 2026-01-01".to_vec()),
            ]
        );
        assert_eq!(s.meta_list("").unwrap().len(), 3);
        s.meta_delete("blocked/be.vdab").unwrap();
        s.meta_delete("never-there").unwrap();
        assert_eq!(s.meta_get("blocked/be.vdab").unwrap(), None);
        assert_eq!(s.meta_list("blocked/").unwrap().len(), 1);

        // names spelling the store's own metadata keys stay in the caller's family
        put(&s, "be.vdab/vacancy/A", "a");
        s.set_cursor("tg.anpe", 3).unwrap();
        for name in ["layout", "head", "purged", "ctg.anpe", "mhead", ""] {
            s.meta_put(name, b"\xff\xff").unwrap();
        }
        assert_eq!(s.cursor("tg.anpe").unwrap(), Some(3));
        assert_eq!(s.cursors().unwrap(), vec![("tg.anpe".to_string(), 3)]);
        assert_eq!(s.meta_get("").unwrap(), Some(b"\xff\xff".to_vec()));
        assert_consistent(&s);
    }

    fn consistency_check_finds_broken_bijection(s: RecordStore<impl Engine>) {
        put(&s, "be.vdab/vacancy/V-1", "a"); // 1
        put(&s, "be.vdab/vacancy/V-2", "b"); // 2
        put(&s, "be.vdab/vacancy/V-3", "c"); // 3
        put(&s, "be.vdab/vacancy/V-1", "a2"); // 4, drops 1
        put(&s, "be.vdab/vacancy/V-4", "d"); // 5
        s.set_cursor("tg.anpe", 1).unwrap();
        s.meta_put("flag", b"1").unwrap();
        assert_consistent(&s);
        let entry = |k: &str, revision: u64| codec::encode(&LogValue::new(&key(k), revision));

        let mut b = WriteBatch::new();
        // a record without its entry
        b.delete(codec::log_key(2).to_vec());
        // a dangling entry: its record is gone
        b.delete(codec::record_key(&key("be.vdab/vacancy/V-3")));
        // a superseded entry that was not compacted
        b.put(codec::log_key(1).to_vec(), entry("be.vdab/vacancy/V-1", 1));
        // an entry for a record that exists but sits at another seq, above the head
        b.put(codec::log_key(9).to_vec(), entry("be.vdab/vacancy/V-4", 1));
        // an undecodable value, a stray key
        b.put(codec::log_key(7).to_vec(), vec![1]);
        b.put(b"zzz".to_vec(), b"?".to_vec());
        s.engine().apply(b).unwrap();
        let report = s.check_consistency().unwrap();
        assert!(!report.is_ok());
        let text = report.to_string();
        for expected in [
            "record be.vdab/vacancy/V-2 seq 2 has no log entry",
            "log seq 3: record be.vdab/vacancy/V-3 missing",
            "log seq 1: record be.vdab/vacancy/V-1 is at seq 4 revision 2, entry says revision 1",
            "log seq 9 outside 1..=5",
            "log seq 9: record be.vdab/vacancy/V-4 is at seq 5 revision 1, entry says revision 1",
            "corrupt value at l\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x07",
            "1 keys outside the known key spaces",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in {text}");
        }
        assert_eq!(report.log_entries, 6);
        assert_eq!(report.records, 3);
        assert_eq!(report.problems_total, 7, "{text}");
        assert_eq!(report.problems_total, report.problems.len() as u64);
    }

    fn consistency_check_finds_bad_metadata(s: RecordStore<impl Engine>) {
        put(&s, "be.vdab/vacancy/V-1", "a"); // 1
        put(&s, "be.vdab/vacancy/V-2", "b"); // 2
        let stale = s
            .engine()
            .get(&codec::record_key(&key("be.vdab/vacancy/V-2")))
            .unwrap()
            .unwrap();
        put(&s, "be.vdab/vacancy/V-2", "b2"); // 3
        assert_consistent(&s);
        let mut b = WriteBatch::new();
        // a record older than its entry: the record's seq has no matching entry
        b.put(codec::record_key(&key("be.vdab/vacancy/V-2")), stale);
        // horizon above the head, a cursor that does not decode, an unknown meta key
        b.put(codec::META_PURGED, codec::encode(&MetaSeq { seq: 4 }));
        b.put(codec::meta_name_key(codec::META_CURSOR, "tg.anpe"), vec![1]);
        b.put(b"mx".to_vec(), b"?".to_vec());
        s.engine().apply(b).unwrap();
        let text = s.check_consistency().unwrap().to_string();
        for expected in [
            "record be.vdab/vacancy/V-2 seq 2 has no log entry",
            "log seq 3: record be.vdab/vacancy/V-2 is at seq 2 revision 1, entry says revision 2",
            "purged through seq 0 in memory but 4 persisted",
            "purged through seq 4 above head seq 3",
            "corrupt value at mctg.anpe",
            "unknown metadata key mx",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in {text}");
        }

        // a head that is missing or behind
        let mut b = WriteBatch::new();
        b.delete(codec::META_HEAD.to_vec());
        s.engine().apply(b).unwrap();
        let text = s.check_consistency().unwrap().to_string();
        assert!(text.contains("head seq not persisted"), "{text}");
        let mut b = WriteBatch::new();
        b.put(codec::META_HEAD, codec::encode(&MetaSeq { seq: 2 }));
        s.engine().apply(b).unwrap();
        let text = s.check_consistency().unwrap().to_string();
        assert!(
            text.contains("head seq 3 in memory but 2 persisted"),
            "{text}"
        );
        assert!(text.contains("log seq 3 outside 1..=2"), "{text}");
    }

    /// Reopens on another handle of the same engine, as after a restart.
    fn head_survives_reopen_when_newest_entries_go<E: Engine + Clone>(engine: E) {
        let s = RecordStore::open(engine.clone()).unwrap();
        assert_eq!(
            s.engine().get(codec::META_HEAD).unwrap(),
            Some(codec::encode(&MetaSeq { seq: 0 })),
            "open persists the head of an empty store"
        );
        put(&s, "be.vdab/vacancy/A", "a1"); // 1
        put(&s, "be.vdab/vacancy/A", "a2"); // 2, drops 1
        put(&s, "be.vdab/vacancy/B", "b"); // 3
        s.apply_replica(replica("tg.anpe/supply/C", 4, "c"))
            .unwrap(); // 4
                       // the newest entries go: the log now ends at 2
        assert_eq!(
            s.purge(&[key("tg.anpe/supply/C"), key("be.vdab/vacancy/B")])
                .unwrap(),
            2
        );
        assert_eq!(s.log_since(0, 10).unwrap().last().unwrap().seq, 2);
        s.set_cursor("tg.anpe", 40).unwrap();
        s.flush().unwrap();
        drop(s);

        let s = RecordStore::open(engine.clone()).unwrap();
        assert_eq!(s.head_seq(), 4);
        assert_eq!(s.purged_through_seq(), 4);
        assert_eq!(s.cursor("tg.anpe").unwrap(), Some(40));
        assert_consistent(&s);
        assert_eq!(put(&s, "be.vdab/vacancy/B", "b").seq(), 5);
        // every record purged: an empty log still keeps the head
        assert_eq!(
            s.purge(&[key("be.vdab/vacancy/A"), key("be.vdab/vacancy/B")])
                .unwrap(),
            2
        );
        assert_eq!(s.engine().count_prefix(&[codec::LOG]).unwrap(), 0);
        s.flush().unwrap();
        drop(s);

        let s = RecordStore::open(engine).unwrap();
        assert_eq!((s.head_seq(), s.purged_through_seq()), (5, 5));
        assert_consistent(&s);
        assert_eq!(put(&s, "be.vdab/vacancy/C", "c").seq(), 6);
    }

    /// A store written before the head was persisted takes it from its last entry, and
    /// a persisted head behind the log is not trusted (seqs are never handed out twice).
    fn head_falls_back_to_the_last_entry<E: Engine + Clone>(engine: E) {
        let s = RecordStore::open(engine.clone()).unwrap();
        put(&s, "be.vdab/vacancy/A", "a"); // 1
        put(&s, "be.vdab/vacancy/B", "b"); // 2
        put(&s, "be.vdab/vacancy/C", "c"); // 3
        drop(s);
        let mut b = WriteBatch::new();
        b.delete(codec::META_HEAD.to_vec());
        engine.apply(b).unwrap();
        let s = RecordStore::open(engine.clone()).unwrap();
        assert_eq!(s.head_seq(), 3);
        assert_eq!(
            read_seq(s.engine(), codec::META_HEAD).unwrap(),
            Some(3),
            "open writes the head it recovered"
        );
        assert_consistent(&s);
        drop(s);

        let mut b = WriteBatch::new();
        b.put(codec::META_HEAD, codec::encode(&MetaSeq { seq: 1 }));
        engine.apply(b).unwrap();
        let s = RecordStore::open(engine).unwrap();
        assert_eq!(s.head_seq(), 3);
        let text = s.check_consistency().unwrap().to_string();
        assert!(
            text.contains("head seq 3 in memory but 1 persisted"),
            "{text}"
        );
        assert_eq!(put(&s, "be.vdab/vacancy/D", "d").seq(), 4);
        assert_consistent(&s);
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
        compaction_keeps_one_entry_per_record,
        purge_removes_record_entry_and_raises_horizon,
        cursor_moves_with_its_replicas,
        cursor_stays_when_a_replica_fails,
        meta_map_round_trips,
        consistency_check_finds_broken_bijection,
        consistency_check_finds_bad_metadata,
    );

    /// Like `for_both_engines`, for tests that reopen a store on the same engine.
    macro_rules! for_both_engine_handles {
        ($($name:ident),* $(,)?) => {
            mod mem_handle {
                use super::*;
                $(#[test]
                fn $name() {
                    super::$name(MemEngine::new());
                })*
            }
            mod sled_handle {
                use super::*;
                $(#[test]
                fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    super::$name(SledEngine::open(dir.path().join("db"), 8 << 20).unwrap());
                })*
            }
        };
    }

    for_both_engine_handles!(
        head_survives_reopen_when_newest_entries_go,
        head_falls_back_to_the_last_entry,
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
            s.apply_replica(replica("tg.anpe/supply/S-2", 1, "t"))
                .unwrap();
            // the newest entry goes, so the log alone would say the head is 3
            assert_eq!(s.purge(&[key("tg.anpe/supply/S-2")]).unwrap(), 1);
            s.set_cursor("tg.anpe", 17).unwrap();
            s.meta_put("blocked/xx.yyy", b"1").unwrap();
            s.flush().unwrap();
            s.digest().unwrap()
        };
        let s = RecordStore::open(SledEngine::open(&path, 8 << 20).unwrap()).unwrap();
        assert_eq!(s.head_seq(), 4);
        assert_eq!(s.purged_through_seq(), 4);
        assert_eq!(s.cursor("tg.anpe").unwrap(), Some(17));
        assert_eq!(s.meta_get("blocked/xx.yyy").unwrap(), Some(b"1".to_vec()));
        assert_eq!(s.log_since(0, 10).unwrap().len(), 2);
        assert_eq!(s.digest().unwrap(), digest);
        assert_eq!(
            s.get(&key("be.vdab/vacancy/V-1"))
                .unwrap()
                .unwrap()
                .revision,
            2
        );
        assert_eq!(put(&s, "be.vdab/vacancy/V-2", "c").seq(), 5);
        assert_consistent(&s);
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

    /// Fails every batch while `fail` is set, like a full disk, and only batches that
    /// write records while `fail_records` is set, to tell one batch from several.
    #[derive(Default)]
    struct FailingEngine {
        inner: MemEngine,
        fail: std::sync::atomic::AtomicBool,
        fail_records: std::sync::atomic::AtomicBool,
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
            let writes_records = || {
                batch.ops().iter().any(|op| match op {
                    crate::BatchOp::Put { key, .. } | crate::BatchOp::Delete { key } => {
                        key.first() == Some(&codec::RECORD)
                    }
                })
            };
            if self.fail.load(Ordering::SeqCst)
                || (self.fail_records.load(Ordering::SeqCst) && writes_records())
            {
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
    fn a_failed_batch_moves_no_cursor_and_purges_nothing() {
        let s = RecordStore::open(FailingEngine::default()).unwrap();
        s.apply_replicas_with_cursor(
            vec![replica("tg.anpe/vacancy/T-1", 1, "a")],
            Some(("tg.anpe", 3)),
        )
        .unwrap();
        s.engine().fail.store(true, Ordering::SeqCst);
        let err = s
            .apply_replicas_with_cursor(
                vec![
                    replica("tg.anpe/vacancy/T-1", 2, "a2"),
                    replica("tg.anpe/vacancy/T-2", 1, "b"),
                ],
                Some(("tg.anpe", 9)),
            )
            .unwrap_err();
        assert_eq!(err.to_string(), "storage engine: no space left on device");
        // all ignored: the batch holds only the cursor, and still fails as a whole
        assert!(s
            .apply_replicas_with_cursor(
                vec![replica("tg.anpe/vacancy/T-1", 1, "a")],
                Some(("tg.anpe", 9))
            )
            .is_err());
        assert!(s.set_cursor("tg.anpe", 9).is_err());
        assert!(s.purge(&[key("tg.anpe/vacancy/T-1")]).is_err());
        assert!(s.meta_put("x", b"1").is_err());
        s.engine().fail.store(false, Ordering::SeqCst);
        // the cursor shares the records' batch: when that one fails, it stays put
        s.engine().fail_records.store(true, Ordering::SeqCst);
        assert!(s
            .apply_replicas_with_cursor(
                vec![replica("tg.anpe/vacancy/T-2", 1, "b")],
                Some(("tg.anpe", 9))
            )
            .is_err());
        s.set_cursor("be.vdab", 1).unwrap();
        s.engine().fail_records.store(false, Ordering::SeqCst);

        assert_eq!(s.cursor("tg.anpe").unwrap(), Some(3));
        assert_eq!(s.cursor("be.vdab").unwrap(), Some(1));
        assert_eq!(s.head_seq(), 1);
        assert_eq!(s.purged_through_seq(), 0);
        assert_eq!(
            s.get(&key("tg.anpe/vacancy/T-1"))
                .unwrap()
                .unwrap()
                .revision,
            1
        );
        assert_eq!(s.get(&key("tg.anpe/vacancy/T-2")).unwrap(), None);
        assert_eq!(s.meta_get("x").unwrap(), None);
        assert_consistent(&s);
        // and the same calls go through once the engine writes again
        let out = s
            .apply_replicas_with_cursor(
                vec![replica("tg.anpe/vacancy/T-2", 1, "b")],
                Some(("tg.anpe", 9)),
            )
            .unwrap();
        assert_eq!(
            out[0].as_ref().unwrap(),
            &ReplicaOutcome::Applied { seq: 2 }
        );
        assert_eq!(s.cursor("tg.anpe").unwrap(), Some(9));
        assert_consistent(&s);
    }

    #[test]
    fn any_engine_store_restarts_on_a_shared_mem_engine() {
        let mem = MemEngine::new();
        let s = RecordStore::open(AnyEngine::from(mem.clone())).unwrap();
        put(&s, "be.vdab/vacancy/A", "a");
        s.apply_replicas_with_cursor(
            vec![replica("tg.anpe/vacancy/T", 2, "t")],
            Some(("tg.anpe", 8)),
        )
        .unwrap();
        let digest = s.digest().unwrap();
        drop(s); // the simulated crash
        let s = RecordStore::open(AnyEngine::Mem(mem)).unwrap();
        assert_eq!(s.head_seq(), 2);
        assert_eq!(s.cursor("tg.anpe").unwrap(), Some(8));
        assert_eq!(s.digest().unwrap(), digest);
        assert_consistent(&s);

        let dir = tempfile::tempdir().unwrap();
        let sled = SledEngine::open(dir.path().join("db"), 8 << 20).unwrap();
        let s = RecordStore::open(AnyEngine::from(sled)).unwrap();
        put(&s, "be.vdab/vacancy/A", "a");
        assert_eq!(s.head_seq(), 1);
        assert_consistent(&s);
    }

    #[test]
    fn export_then_import_is_the_same_store() {
        let src = RecordStore::open(MemEngine::new()).unwrap();
        put(&src, "be.vdab/vacancy/V-1", "a");
        put(&src, "be.vdab/vacancy/V-1", "b");
        src.apply_replica(replica("tg.anpe/supply/S-1", 4, "s"))
            .unwrap();
        src.apply_replica(replica("tg.anpe/supply/S-2", 1, "t"))
            .unwrap();
        src.purge(&[key("tg.anpe/supply/S-2")]).unwrap();
        src.set_cursor("tg.anpe", 17).unwrap();
        src.meta_put("blocked/xx.yyy", b"1").unwrap();
        let mut pairs = Vec::new();
        let summary = src
            .export_raw(|k, v| {
                pairs.push((k.to_vec(), v.to_vec()));
                Ok::<_, StoreError>(())
            })
            .unwrap();
        assert_eq!(summary.digest, src.digest().unwrap());
        assert_eq!((summary.head_seq, summary.purged_through_seq), (4, 4));
        assert_eq!((summary.records, summary.log_entries), (2, 2));
        assert_eq!(summary.keys, pairs.len() as u64);
        assert!(pairs.windows(2).all(|w| w[0].0 < w[1].0), "key order");

        let dir = tempfile::tempdir().unwrap();
        let engine = SledEngine::open(dir.path().join("db"), 8 << 20).unwrap();
        let n = RecordStore::import_raw(&engine, pairs.iter().cloned().map(Ok::<_, StoreError>))
            .unwrap();
        assert_eq!(n, summary.keys);
        let dst = RecordStore::open(engine.clone()).unwrap();
        assert_consistent(&dst);
        assert_eq!(dst.digest().unwrap(), summary.digest);
        assert_eq!(dst.head_seq(), 4);
        assert_eq!(dst.purged_through_seq(), 4);
        assert_eq!(dst.cursor("tg.anpe").unwrap(), Some(17));
        assert_eq!(dst.meta_get("blocked/xx.yyy").unwrap(), Some(b"1".to_vec()));
        // never over an existing store
        let again = RecordStore::import_raw(&engine, pairs.into_iter().map(Ok::<_, StoreError>));
        assert!(
            matches!(again, Err(StoreError::NotEmpty { .. })),
            "{again:?}"
        );
    }

    #[test]
    fn import_refuses_keys_out_of_order() {
        let pairs = vec![
            Ok::<_, StoreError>((b"mb".to_vec(), vec![1])),
            Ok((b"ma".to_vec(), vec![1])),
        ];
        let err = RecordStore::import_raw(&MemEngine::new(), pairs).unwrap_err();
        assert!(err.to_string().contains("out of order"), "{err}");
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
