//! The node core: own-record operations (put, get, list, withdraw, import) over the store, without wire types.
//!
//! Every write goes validate → encode canonically → compare with the stored
//! version → new revision and log entry in one atomic batch → flush, so an
//! acknowledged write is durable and the store never sees invalid records.

pub mod config;
mod par;
pub mod sync;

use std::time::{SystemTime, UNIX_EPOCH};

use passerelle_model::codec::{decode_content, encode_content, CodecError};
use passerelle_model::{AgencyId, Date, Kind, Record, RecordKey, Rules, VacancyStatus, Violations};
use passerelle_store::{AnyEngine, PutOutcome, RecordStore, SledEngine, StoreError, StoredRecord};

pub use config::{ConfigError, NodeConfig, PeerConfig};
pub use sync::{ApplyReport, CheckedBatch, OutBatch, OutboundPolicy, Refusal, SignedRecord};

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use passerelle_pki::{SigningKey, TrustStore};

/// Why a node operation failed; the wire layer maps each case to one gRPC code.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("invalid record: {0}")]
    Invalid(Violations),
    #[error("revision mismatch on {key}: expected {expected}, stored {actual}")]
    RevisionMismatch {
        key: RecordKey,
        expected: u64,
        actual: u64,
    },
    #[error("{0} not found")]
    NotFound(RecordKey),
    #[error("stored record {key} does not decode: {source}")]
    Corrupt { key: RecordKey, source: CodecError },
    #[error("store: {0}")]
    Store(StoreError),
    #[error("{0}")]
    Setup(String),
}

impl From<StoreError> for NodeError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::RevisionMismatch {
                key,
                expected,
                actual,
            } => NodeError::RevisionMismatch {
                key,
                expected,
                actual,
            },
            other => NodeError::Store(other),
        }
    }
}

/// A batch of own puts validated, encoded and (most likely) signed, not yet written
/// ([`Node::prepare_puts`], [`Node::commit_puts`]).
pub struct PreparedPuts {
    results: Vec<Option<Result<PutResult, NodeError>>>,
    batch: Vec<(RecordKey, Vec<u8>, Option<u64>)>,
    slots: Vec<usize>,
    kept: Vec<Record>,
    presealed: std::collections::HashMap<RecordKey, (u64, Vec<u8>, Vec<u8>)>,
    now: i64,
}

/// Result of an accepted write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PutResult {
    pub revision: u64,
    /// False for a no-op (content equal to the stored version).
    pub changed: bool,
}

/// Filters of the List RPCs, already parsed.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub origins: Vec<AgencyId>,
    pub statuses: Vec<VacancyStatus>,
    pub countries: Vec<String>,
    pub isco_prefix: String,
    pub open_to_international: Option<bool>,
    /// Shortages: list name.
    pub list: String,
    /// Shortages: list year (0 = any).
    pub year: u32,
    /// Supply: period.
    pub period: String,
}

impl ListFilter {
    fn matches(&self, r: &Record) -> bool {
        let (country, isco) = match r {
            Record::Vacancy(v) => {
                if !self.statuses.is_empty() && !self.statuses.contains(&v.status) {
                    return false;
                }
                if self
                    .open_to_international
                    .is_some_and(|b| b != v.open_to_international)
                {
                    return false;
                }
                (&v.location.country, &v.occupation.isco08)
            }
            Record::Shortage(s) => {
                if !self.list.is_empty() && self.list != s.list {
                    return false;
                }
                if self.year != 0 && self.year != s.year {
                    return false;
                }
                (&s.country, &s.occupation.isco08)
            }
            Record::Supply(c) => {
                if !self.period.is_empty() && self.period != c.period {
                    return false;
                }
                (&c.country, &c.occupation.isco08)
            }
        };
        (self.countries.is_empty() || self.countries.iter().any(|c| c == country))
            && isco.starts_with(self.isco_prefix.as_str())
    }
}

/// Field path of a record in its Put or Import request.
pub fn request_prefix(kind: Kind) -> &'static str {
    match kind {
        Kind::Vacancy => "vacancy",
        Kind::Shortage => "shortage",
        Kind::Supply => "cell",
    }
}

pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Counts of what peers delivered, for status and metrics.
#[derive(Debug, Default)]
pub struct Counters {
    pub applied: AtomicU64,
    pub ignored: AtomicU64,
    refused: Mutex<BTreeMap<Refusal, u64>>,
}

impl Counters {
    fn record_apply(&self, r: &ApplyReport) {
        self.applied.fetch_add(r.applied, Ordering::Relaxed);
        self.ignored.fetch_add(r.ignored, Ordering::Relaxed);
        let mut m = self.refused.lock().expect("lock");
        for (k, v) in &r.refused {
            *m.entry(*k).or_default() += v;
        }
    }

    /// Refused records so far, by reason.
    pub fn refused(&self) -> BTreeMap<Refusal, u64> {
        self.refused.lock().expect("lock").clone()
    }
}

/// Records decoded together while the analytics index is built at start.
const START_CHUNK: usize = 8192;

/// One agency's node: its identity, rules, keys, trust and store.
pub struct Node {
    agency: AgencyId,
    rules: Rules,
    store: RecordStore<AnyEngine>,
    signing: SigningKey,
    trust: RwLock<Arc<TrustStore>>,
    head: tokio::sync::watch::Sender<u64>,
    /// The log head as of the last successful flush: peers are served entries up to it only,
    /// so a crash never takes back an entry a peer already holds.
    durable: AtomicU64,
    pub counters: Counters,
    analytics: Arc<passerelle_analytics::Analytics>,
    /// Orders store writes and index updates alike, so the index never sees versions out of
    /// commit order (flushes happen outside it).
    write: Mutex<()>,
    /// What the expiry sweep must look at ([`Node::expire_due`]).
    expiry: Mutex<Expiry>,
}

/// The expiry sweep scans every own vacancy once per day (when the date it is given changes);
/// in between, only own vacancies written already due can become due, and they are noted here.
#[derive(Debug, Default)]
struct Expiry {
    /// The day of the last complete scan.
    scanned: Option<Date>,
    /// Own vacancies written OPEN with `closes_on` on or before the later of today and the
    /// scanned day, since the last sweep.
    candidates: Vec<RecordKey>,
}

fn read(cfg: &NodeConfig, p: &std::path::Path, what: &str) -> Result<String, NodeError> {
    let path = cfg.path(p);
    std::fs::read_to_string(&path)
        .map_err(|e| NodeError::Setup(format!("cannot read {what} {}: {e}", path.display())))
}

/// Loads the node's trust store (own CA, partners' CAs and signing keys) as configured.
pub fn load_trust(cfg: &NodeConfig, signing: &SigningKey) -> Result<TrustStore, NodeError> {
    let ca = read(cfg, &cfg.tls.ca, "CA certificate")?;
    let trust_path = cfg.tls.trust.as_ref().map(|p| cfg.path(p));
    let trust = TrustStore::load(&cfg.agency, &ca, trust_path.as_deref())
        .map_err(|e| NodeError::Setup(format!("trust: {e}")))?;
    Ok(trust.with_own_signing_key(signing.public_key()))
}

impl Node {
    /// Opens (or creates) the node's sled store as configured.
    pub fn open(cfg: &NodeConfig) -> Result<Node, NodeError> {
        let dir = cfg.path(&cfg.data_dir);
        let engine = SledEngine::open(&dir, cfg.store.cache_capacity_mb * 1024 * 1024)?;
        Self::open_on(cfg, AnyEngine::Sled(engine))
    }

    /// Opens the node on a given engine (memory engines in simulations).
    pub fn open_on(cfg: &NodeConfig, engine: AnyEngine) -> Result<Node, NodeError> {
        let key_pem = read(cfg, &cfg.signing.key, "signing key")?;
        let signing = SigningKey::from_pem(&key_pem)
            .map_err(|e| NodeError::Setup(format!("signing key: {e}")))?;
        let trust = load_trust(cfg, &signing)?;
        let store = RecordStore::open(engine)?;
        let analytics = Arc::new(passerelle_analytics::Analytics::new());
        let started = std::time::Instant::now();
        let mut loaded = 0u64;
        // a scanning thread reads the store in chunks while the previous chunk is decoded (over
        // every core) and applied in store order
        std::thread::scope(|scope| -> Result<(), NodeError> {
            let (tx, rx) = std::sync::mpsc::sync_channel(2);
            let store = &store;
            scope.spawn(move || {
                let mut rows = store.iter(None);
                loop {
                    let chunk: Result<Vec<_>, _> = rows.by_ref().take(START_CHUNK).collect();
                    if matches!(&chunk, Ok(c) if c.is_empty()) {
                        return; // the end
                    }
                    let failed = chunk.is_err();
                    if tx.send(chunk).is_err() || failed {
                        return;
                    }
                }
            });
            for chunk in rx {
                let decoded = par::map(chunk?, |s| decode(&s).map(|r| (s.key, r)));
                for d in decoded {
                    let (key, r) = d?;
                    analytics.apply(&key, Some(&r));
                    loaded += 1;
                }
            }
            Ok(())
        })?;
        tracing::info!(
            records = loaded,
            ms = started.elapsed().as_millis() as u64,
            "analytics index built"
        );
        let (head, _) = tokio::sync::watch::channel(store.head_seq());
        // what was there at open is on disk (or was recovered from it)
        store.flush()?;
        let durable = AtomicU64::new(store.head_seq());
        Ok(Node {
            agency: cfg.agency.clone(),
            rules: Rules {
                min_cell_size: cfg.records.min_cell_size,
            },
            store,
            signing,
            trust: RwLock::new(Arc::new(trust)),
            head,
            durable,
            counters: Counters::default(),
            analytics,
            write: Mutex::new(()),
            expiry: Mutex::new(Expiry::default()),
        })
    }

    /// The analytics index over every record this node holds.
    pub fn analytics(&self) -> &passerelle_analytics::Analytics {
        &self.analytics
    }

    /// The trust store in force (replaced on reload).
    pub fn trust(&self) -> Arc<TrustStore> {
        self.trust.read().expect("lock").clone()
    }

    pub fn set_trust(&self, trust: TrustStore) {
        *self.trust.write().expect("lock") = Arc::new(trust);
    }

    /// Watches the sync-log head: changes after every commit.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.head.subscribe()
    }

    fn notify(&self) {
        self.head.send_replace(self.durable_head());
    }

    /// Flushes the store and publishes the head it covers as durable.
    pub(crate) fn flush(&self) -> Result<(), StoreError> {
        let head = self.store.head_seq();
        self.store.flush()?;
        self.durable.fetch_max(head, Ordering::SeqCst);
        Ok(())
    }

    /// Why the store refuses writes right now (a full or read-only data folder), if it does.
    pub fn write_failure(&self) -> Option<String> {
        self.store.engine().write_failure().map(|e| e.to_string())
    }

    /// The last sync-log position known to be on disk: what peers may be served.
    pub fn durable_head(&self) -> u64 {
        self.durable.load(Ordering::SeqCst)
    }

    pub fn signing_key_id(&self) -> String {
        self.signing.key_id()
    }

    pub fn signing_public_key(&self) -> [u8; 32] {
        self.signing.public_key()
    }

    pub fn agency(&self) -> &AgencyId {
        &self.agency
    }

    pub fn store(&self) -> &RecordStore<AnyEngine> {
        &self.store
    }

    /// Checks origin and every rule, and returns the record's key.
    /// `pre` carries what the wire layer already found (unknown enum values).
    fn check(&self, record: &mut Record, pre: Violations) -> Result<RecordKey, Violations> {
        let prefix = request_prefix(record.kind());
        let mut v = pre;
        if record.origin().is_empty() {
            record.set_origin(&self.agency);
        } else if record.origin() != self.agency.as_str() {
            v.push(
                format!("{prefix}.origin"),
                format!(
                    "must be empty or {} (this node only publishes its own agency's records)",
                    self.agency
                ),
            );
            return Err(v);
        }
        // revision and updated_at are assigned here, whatever the client sent
        record.set_version(0, 0);
        if let Err(e) = record.validate(prefix, &self.rules) {
            // one violation per field: what conversion found (an unknown enum value) wins
            let pre: std::collections::HashSet<String> =
                v.iter().map(|x| x.field.clone()).collect();
            for x in e.into_vec() {
                if !pre.contains(&x.field) {
                    v.push(x.field, x.description);
                }
            }
        }
        if !v.is_empty() {
            return Err(v);
        }
        Ok(record.key().expect("validated id and origin form a key"))
    }

    /// Creates or updates an own record.
    pub fn put(&self, record: Record, expected: Option<u64>) -> Result<PutResult, NodeError> {
        self.put_checked(record, expected, Violations::new())
    }

    /// Like [`Node::put`], with violations the wire layer found while converting.
    pub fn put_checked(
        &self,
        mut record: Record,
        expected: Option<u64>,
        pre: Violations,
    ) -> Result<PutResult, NodeError> {
        let key = self.check(&mut record, pre).map_err(NodeError::Invalid)?;
        let content = encode_content(&record);
        let guard = self.write.lock().expect("lock");
        let outcome = self.store.put_own(
            key.clone(),
            content,
            expected,
            now_micros(),
            |k, r, t, c| self.seal(k, r, t, c),
        )?;
        let result = to_result(outcome);
        if result.changed {
            record.set_version(result.revision, 0);
            self.analytics.apply(&key, Some(&record));
            self.note_written(&key, &record);
        }
        drop(guard);
        if result.changed {
            self.flush()?;
            self.notify();
        }
        Ok(result)
    }

    /// Notes an own vacancy just written OPEN and already due, for the next expiry sweep.
    fn note_written(&self, key: &RecordKey, record: &Record) {
        let Record::Vacancy(v) = record else { return };
        if v.status != VacancyStatus::Open {
            return;
        }
        let Some(closes) = Date::parse(&v.closes_on) else {
            return;
        };
        let today = Date::today();
        let mut e = self.expiry.lock().expect("lock");
        let horizon = e.scanned.map_or(today, |d| d.max(today));
        if closes <= horizon {
            e.candidates.push(key.clone());
        }
    }

    /// Validates and writes many own records in one atomic batch; one result per item, in order.
    pub fn put_many(
        &self,
        items: Vec<(Record, Option<u64>, Violations)>,
    ) -> Vec<Result<PutResult, NodeError>> {
        self.commit_puts(self.prepare_puts(items))
    }

    /// The CPU-bound part of [`Node::put_many`], without the writer lock: validation and
    /// encoding over every core, and the likely signatures ([`Node::preseal`]). An importer
    /// prepares the next chunk while [`Node::commit_puts`] writes the previous one.
    pub fn prepare_puts(&self, items: Vec<(Record, Option<u64>, Violations)>) -> PreparedPuts {
        let checked = par::map(items, |(mut record, expected, pre)| {
            match self.check(&mut record, pre) {
                Ok(key) => {
                    let content = encode_content(&record);
                    Ok((key, content, expected, record))
                }
                Err(v) => Err(NodeError::Invalid(v)),
            }
        });
        let mut results = Vec::with_capacity(checked.len());
        let mut batch = Vec::with_capacity(checked.len());
        let mut slots = Vec::with_capacity(checked.len());
        let mut kept = Vec::with_capacity(checked.len());
        for (i, c) in checked.into_iter().enumerate() {
            match c {
                Ok((key, content, expected, record)) => {
                    batch.push((key, content, expected));
                    slots.push(i);
                    kept.push(record);
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        let now = now_micros();
        let presealed = if batch.is_empty() {
            Default::default()
        } else {
            self.preseal(&batch, now)
        };
        PreparedPuts {
            results,
            batch,
            slots,
            kept,
            presealed,
            now,
        }
    }

    /// Writes what [`Node::prepare_puts`] accepted in one atomic batch and flushes; one result
    /// per item, in order.
    pub fn commit_puts(&self, prepared: PreparedPuts) -> Vec<Result<PutResult, NodeError>> {
        let PreparedPuts {
            mut results,
            batch,
            slots,
            kept,
            presealed,
            now,
        } = prepared;
        if !batch.is_empty() {
            let keys: Vec<RecordKey> = batch.iter().map(|b| b.0.clone()).collect();
            let guard = self.write.lock().expect("lock");
            let outcomes =
                self.store
                    .put_own_many(batch, now, |k, r, t, c| match presealed.get(k) {
                        Some((revision, content, seal))
                            if *revision == r && content == c && t == now =>
                        {
                            seal.clone()
                        }
                        _ => self.seal(k, r, t, c),
                    });
            let mut any_written = false;
            for (((slot, outcome), key), mut record) in
                slots.into_iter().zip(outcomes).zip(keys).zip(kept)
            {
                let r = outcome.map(to_result).map_err(NodeError::from);
                if let Ok(PutResult {
                    changed: true,
                    revision,
                }) = r
                {
                    any_written = true;
                    record.set_version(revision, 0);
                    self.analytics.apply(&key, Some(&record));
                    self.note_written(&key, &record);
                }
                results[slot] = Some(r);
            }
            drop(guard);
            if any_written {
                let flushed = self.flush();
                self.notify();
                if let Err(e) = flushed {
                    // the batch is applied but not known durable: report every write as failed
                    for r in results.iter_mut() {
                        if matches!(r, Some(Ok(PutResult { changed: true, .. }))) {
                            *r = Some(Err(NodeError::Store(e.clone())));
                        }
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.expect("every slot filled"))
            .collect()
    }

    /// Signs, outside the writer lock and over every core, the versions a batch of puts will most
    /// likely write (stored revision + 1 at `now`); the store asks for a seal under the lock, and
    /// gets one of these when the guess was right, or a fresh signature when it was not (another
    /// writer came first, a purged id, the same key twice). Unchanged records are not signed.
    fn preseal(
        &self,
        batch: &[(RecordKey, Vec<u8>, Option<u64>)],
        now: i64,
    ) -> std::collections::HashMap<RecordKey, (u64, Vec<u8>, Vec<u8>)> {
        let guesses: Vec<(RecordKey, u64, Vec<u8>)> = batch
            .iter()
            .filter_map(|(key, content, _)| match self.store.get(key) {
                Ok(Some(s)) if s.content == *content => None,
                Ok(Some(s)) => Some((key.clone(), s.revision.checked_add(1)?, content.clone())),
                Ok(None) => Some((key.clone(), 1, content.clone())),
                // the write itself will report the store error
                Err(_) => None,
            })
            .collect();
        par::map(guesses, |(key, revision, content)| {
            let seal = self.seal(&key, revision, now, &content);
            (key, (revision, content, seal))
        })
        .into_iter()
        .collect()
    }

    /// Reads one record of any origin, tombstones included.
    pub fn get(&self, key: &RecordKey) -> Result<Record, NodeError> {
        match self.store.get(key)? {
            Some(s) => decode(&s),
            None => Err(NodeError::NotFound(key.clone())),
        }
    }

    /// Lists records of a kind in key order; `after` is the previous page's last key.
    pub fn list(
        &self,
        kind: Kind,
        filter: &ListFilter,
        after: Option<&RecordKey>,
        limit: usize,
    ) -> Result<(Vec<Record>, Option<RecordKey>), NodeError> {
        let origin = match filter.origins.as_slice() {
            [one] => Some(one),
            _ => None,
        };
        let mut decode_error = None;
        let (stored, next) = self.store.list(kind, origin, after, limit, |s| {
            if !filter.origins.is_empty() && !filter.origins.contains(&s.key.origin) {
                return false;
            }
            match decode(s) {
                Ok(r) => filter.matches(&r),
                Err(e) => {
                    decode_error.get_or_insert(e);
                    false
                }
            }
        })?;
        if let Some(e) = decode_error {
            return Err(e);
        }
        let records = stored.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        Ok((records, next))
    }

    /// Marks an own vacancy WITHDRAWN; withdrawing a tombstone again is a no-op.
    pub fn withdraw(&self, id: &str, expected: Option<u64>) -> Result<PutResult, NodeError> {
        let key = RecordKey::new(self.agency.clone(), Kind::Vacancy, id).map_err(|e| {
            let mut v = Violations::new();
            v.push("id", e.to_string());
            NodeError::Invalid(v)
        })?;
        let Record::Vacancy(mut vacancy) = self.get(&key)? else {
            unreachable!("a vacancy key decodes as a vacancy")
        };
        if vacancy.status != VacancyStatus::Open {
            return Ok(PutResult {
                revision: vacancy.revision,
                changed: false,
            });
        }
        vacancy.status = VacancyStatus::Withdrawn;
        self.put(Record::Vacancy(vacancy), expected)
    }

    /// Today (UTC), for rules that depend on the date.
    pub fn today(&self) -> Date {
        Date::today()
    }
}

fn to_result(o: PutOutcome) -> PutResult {
    match o {
        PutOutcome::Unchanged { revision, .. } => PutResult {
            revision,
            changed: false,
        },
        PutOutcome::Written { revision, .. } => PutResult {
            revision,
            changed: true,
        },
    }
}

/// Decodes a stored record and restores the fields its origin assigned.
pub fn decode(s: &StoredRecord) -> Result<Record, NodeError> {
    let mut r = decode_content(s.key.kind, &s.content).map_err(|source| NodeError::Corrupt {
        key: s.key.clone(),
        source,
    })?;
    r.set_version(s.revision, s.updated_at_micros);
    Ok(r)
}
