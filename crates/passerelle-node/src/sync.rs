//! Federation in the node core: signing own versions, serving the sync log to peers under their
//! outbound policy, verifying and applying what peers deliver, and the snapshot pulls that drop
//! what a peer purged.
//!
//! Nothing a peer sends reaches the store before its origin's signature has
//! been verified against the trust file, its payload decoded, and its
//! content validated like a local put.

use std::collections::{BTreeMap, HashSet};

use passerelle_model::codec::decode_content;
use passerelle_model::envelope::{decode_payload, encode_payload, Seal};
use passerelle_model::{AgencyId, Kind, Record, RecordKey, Rules, VacancyStatus};
use passerelle_store::{Replica, ReplicaOutcome, StoredRecord};

use crate::config::PeerConfig;
use crate::{decode, Node, NodeError};

/// One record version exactly as its origin signed it, as the wire carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRecord {
    pub key: String,
    pub revision: u64,
    pub payload: Vec<u8>,
    pub key_id: String,
    pub signature: Vec<u8>,
}

/// What a peer may receive from this node (a `[[peers]]` entry's outbound side).
#[derive(Debug, Clone)]
pub struct OutboundPolicy {
    pub kinds: Vec<Kind>,
    pub relay: bool,
    pub open_to_international: Option<bool>,
    pub countries: Vec<String>,
}

impl From<&PeerConfig> for OutboundPolicy {
    fn from(p: &PeerConfig) -> Self {
        OutboundPolicy {
            kinds: p.share.clone(),
            relay: p.relay,
            open_to_international: p.filter.open_to_international,
            countries: p.filter.countries.clone(),
        }
    }
}

impl OutboundPolicy {
    /// Whether the key alone already excludes the record (no need to decode it).
    fn excludes_key(&self, own: &AgencyId, key: &RecordKey) -> bool {
        !self.kinds.contains(&key.kind) || (!self.relay && &key.origin != own)
    }

    fn needs_content(&self) -> bool {
        self.open_to_international.is_some() || !self.countries.is_empty()
    }

    fn allows(&self, record: &Record) -> bool {
        let country = match record {
            Record::Vacancy(v) => {
                if self
                    .open_to_international
                    .is_some_and(|want| want != v.open_to_international)
                {
                    return false;
                }
                &v.location.country
            }
            Record::Shortage(s) => &s.country,
            Record::Supply(c) => &c.country,
        };
        self.countries.is_empty() || self.countries.iter().any(|c| c == country)
    }
}

/// A batch cut from the sync log for one peer.
#[derive(Debug, Default)]
pub struct OutBatch {
    pub records: Vec<SignedRecord>,
    /// The log position this batch brings the peer's cursor to (filtered entries included).
    pub cursor: u64,
    pub head_seq: u64,
}

/// Why a delivered record was refused; the label is used in logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Refusal {
    BadKey,
    UnknownOrigin,
    OriginNotAllowed,
    UnknownKey,
    BadSignature,
    BadPayload,
    Mismatch,
    Invalid,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Refusal::BadKey => "bad_key",
            Refusal::UnknownOrigin => "unknown_origin",
            Refusal::OriginNotAllowed => "origin_not_allowed",
            Refusal::UnknownKey => "unknown_signing_key",
            Refusal::BadSignature => "bad_signature",
            Refusal::BadPayload => "bad_payload",
            Refusal::Mismatch => "payload_mismatch",
            Refusal::Invalid => "invalid_record",
        }
    }
}

/// A delivered batch, checked: one verdict per record ([`Node::check_from_peer`]).
pub struct CheckedBatch {
    verdicts: Vec<Delivered>,
}

/// The verdict on one delivered record.
enum Delivered {
    /// Our own record coming back through a loop.
    Own,
    Refused {
        why: Refusal,
        key: String,
        detail: String,
    },
    /// Boxed: a decoded record is much larger than a refusal.
    Valid(Box<(Record, Replica)>),
}

/// What applying one delivered batch did.
#[derive(Debug, Default, Clone)]
pub struct ApplyReport {
    pub applied: u64,
    pub ignored: u64,
    /// Our own records coming back through a loop: never applied.
    pub own: u64,
    pub refused: BTreeMap<Refusal, u64>,
    /// The first refusals in detail, for the log.
    pub examples: Vec<String>,
}

impl ApplyReport {
    pub fn refused_total(&self) -> u64 {
        self.refused.values().sum()
    }
}

/// Where a snapshot pull from a peer in progress is marked in the store's metadata map: the
/// marker is set before the cursor goes back to 0 and cleared once the snapshot's stale copies
/// are dropped, so it outlives a restart in between.
const SNAPSHOT_PREFIX: &str = "snapshot/";
/// Format byte of a snapshot marker (nothing follows it yet).
const SNAPSHOT_FORMAT_V1: u8 = 1;

fn snapshot_marker(peer: &AgencyId) -> String {
    format!("{SNAPSHOT_PREFIX}{peer}")
}

/// A snapshot pull (a pull from 0) from one peer on its way: the keys of the peer's own records
/// it has delivered so far. The peer loop keeps it across sessions, so that a snapshot cut in
/// its middle resumes from its cursor and still drops what the peer purged once it reaches the
/// head; it lives in memory only (a restart starts the snapshot over, see [`Node::pull_start`]).
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    seen: HashSet<String>,
}

/// Where a pull from a peer starts ([`Node::pull_start`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullStart {
    pub since: u64,
    /// The pull is a new snapshot (from 0): the caller starts a new [`Snapshot`] and drops
    /// the one it held, if any.
    pub new_snapshot: bool,
}

impl Snapshot {
    /// Notes the records of a delivered batch that are `origin`'s own; relayed ones are not
    /// `origin`'s to drop. Call it before applying the batch: what is applied is then noted.
    pub fn note(&mut self, origin: &AgencyId, records: &[SignedRecord]) {
        self.note_keys(origin, records.iter().map(|r| r.key.clone()));
    }

    /// [`Snapshot::note`] given the delivered records' keys.
    pub fn note_keys(&mut self, origin: &AgencyId, keys: impl IntoIterator<Item = String>) {
        let own = format!("{origin}/");
        self.seen
            .extend(keys.into_iter().filter(|k| k.starts_with(&own)));
    }

    /// The keys of `origin`'s own records delivered so far.
    pub fn seen(&self) -> &HashSet<String> {
        &self.seen
    }
}

impl Node {
    /// The seal of an own version: the node's Ed25519 signature over the payload.
    pub(crate) fn seal(
        &self,
        key: &RecordKey,
        revision: u64,
        updated_at: i64,
        content: &[u8],
    ) -> Vec<u8> {
        let payload = encode_payload(key, revision, updated_at, content);
        Seal {
            key_id: self.signing.key_id(),
            signature: self.signing.sign(&payload).to_vec(),
        }
        .encode()
    }

    /// The signed form of a stored version, rebuilt from the stored fields.
    pub fn signed(&self, s: &StoredRecord) -> Result<SignedRecord, NodeError> {
        let seal = Seal::decode(&s.seal).map_err(|source| NodeError::Corrupt {
            key: s.key.clone(),
            source,
        })?;
        Ok(SignedRecord {
            key: s.key.to_string(),
            revision: s.revision,
            payload: encode_payload(&s.key, s.revision, s.updated_at_micros, &s.content),
            key_id: seal.key_id,
            signature: seal.signature,
        })
    }

    /// Cuts the next batch after `since` for a peer: at most `max_records` and about `max_bytes`.
    pub fn pull_batch(
        &self,
        since: u64,
        max_records: usize,
        max_bytes: usize,
        policy: &OutboundPolicy,
    ) -> Result<OutBatch, NodeError> {
        // only what is on disk: an entry served before its flush could be lost by a crash here
        // after the peer stored it, and its seq reused for another version
        let head_seq = self.durable_head();
        let mut out = OutBatch {
            records: Vec::new(),
            cursor: since,
            head_seq,
        };
        let mut bytes = 0usize;
        // read more entries than we send: filtered ones advance the cursor for free
        let read_limit = max_records.max(1) * 4;
        let entries = self.store.log_since(since, read_limit)?;
        let read = entries.len();
        let mut cut_short = false;
        let mut past_durable = false;
        for e in entries {
            if e.seq > head_seq {
                // every entry up to the durable head was read (sent or filtered)
                past_durable = true;
                break;
            }
            if out.records.len() >= max_records || bytes >= max_bytes {
                cut_short = true;
                break;
            }
            out.cursor = e.seq;
            if policy.excludes_key(&self.agency, &e.key) {
                continue;
            }
            let Some(s) = self.store.get(&e.key)? else {
                continue;
            };
            if s.seq != e.seq {
                // superseded by a later entry, which the peer will get in turn
                continue;
            }
            if policy.needs_content() {
                let record = decode(&s)?;
                // a tombstone must reach a peer that got the vacancy under the filter, even if the
                // vacancy no longer matches it (else the peer keeps it open forever)
                let tombstone = matches!(&record, Record::Vacancy(v) if v.status.is_tombstone());
                if !tombstone && !policy.allows(&record) {
                    continue;
                }
            }
            let signed = self.signed(&s)?;
            bytes += signed.payload.len() + signed.signature.len() + signed.key.len() + 16;
            out.records.push(signed);
        }
        if past_durable || (!cut_short && read < read_limit) {
            // the end of the log: purged entries may leave nothing at the head's seq, so move
            // the cursor to the head itself (every entry up to it was committed before we read)
            out.cursor = out.cursor.max(head_seq);
        }
        Ok(out)
    }

    /// What decides, short of the signature, whether one delivered record may be stored:
    /// its key, its origin, the origin's key. `Ok` carries the parsed key and the public key
    /// its signature must verify under.
    fn precheck_delivered(
        &self,
        trust: &passerelle_pki::TrustStore,
        refused_origins: &[AgencyId],
        peer: &AgencyId,
        r: &SignedRecord,
    ) -> Result<(RecordKey, [u8; 32]), Delivered> {
        let refuse = |why: Refusal, detail: String| Delivered::Refused {
            why,
            key: r.key.clone(),
            detail,
        };
        let key: RecordKey = match r.key.parse() {
            Ok(k) => k,
            Err(e) => return Err(refuse(Refusal::BadKey, e.to_string())),
        };
        if key.origin == self.agency {
            return Err(Delivered::Own);
        }
        if refused_origins.contains(&key.origin) {
            return Err(refuse(Refusal::OriginNotAllowed, format!("from {peer}")));
        }
        if trust.get(&key.origin).is_none() {
            return Err(refuse(
                Refusal::UnknownOrigin,
                "not in the trust file".into(),
            ));
        }
        let Some(public) = trust.signing_key(&key.origin, &r.key_id) else {
            return Err(refuse(Refusal::UnknownKey, format!("key id {}", r.key_id)));
        };
        Ok((key, public))
    }

    /// The rest, once the signature is known to be good: payload, validation.
    fn finish_delivered(key: RecordKey, r: SignedRecord) -> Delivered {
        let refuse = |why: Refusal, detail: String| Delivered::Refused {
            why,
            key: r.key.clone(),
            detail,
        };
        let payload = match decode_payload(&r.payload) {
            Ok(p) => p,
            Err(e) => return refuse(Refusal::BadPayload, e.to_string()),
        };
        if payload.key != key || payload.revision != r.revision || payload.revision == 0 {
            return refuse(Refusal::Mismatch, "payload names another version".into());
        }
        // a signature proves who wrote it, not that it is well-formed: validate like a put
        let valid = decode_content(key.kind, &payload.content)
            .map_err(|e| e.to_string())
            .and_then(|rec| {
                if rec.id() != key.id || rec.origin() != key.origin.as_str() {
                    return Err("content names another key".to_string());
                }
                let prefix = crate::request_prefix(key.kind);
                rec.validate(prefix, &Rules::default())
                    .map_err(|v| v.to_string())?;
                Ok(rec)
            });
        let mut record = match valid {
            Ok(rec) => rec,
            Err(e) => return refuse(Refusal::Invalid, e),
        };
        record.set_version(payload.revision, payload.updated_at_micros);
        Delivered::Valid(Box::new((
            record,
            Replica {
                key,
                revision: payload.revision,
                updated_at_micros: payload.updated_at_micros,
                content: payload.content,
                seal: Seal {
                    key_id: r.key_id,
                    signature: r.signature,
                }
                .encode(),
            },
        )))
    }

    /// Everything that decides whether each delivered record of `records` may be stored, short
    /// of comparing it with the stored version: origin, signature (checked as one batch),
    /// payload, validation. One verdict per record, in order.
    fn check_delivered(
        &self,
        trust: &passerelle_pki::TrustStore,
        refused_origins: &[AgencyId],
        peer: &AgencyId,
        records: Vec<SignedRecord>,
    ) -> Vec<Delivered> {
        let prechecked: Vec<_> = records
            .into_iter()
            .map(|r| {
                let pre = self.precheck_delivered(trust, refused_origins, peer, &r);
                (r, pre)
            })
            .collect();
        let checks: Vec<passerelle_pki::SignatureCheck<'_>> = prechecked
            .iter()
            .filter_map(|(r, pre)| {
                let (_, public) = pre.as_ref().ok()?;
                Some(passerelle_pki::SignatureCheck {
                    public_key: public,
                    msg: &r.payload,
                    sig: &r.signature,
                })
            })
            .collect();
        let mut good = passerelle_pki::verify_signatures(&checks).into_iter();
        prechecked
            .into_iter()
            .map(|(r, pre)| match pre {
                Err(verdict) => verdict,
                Ok((key, _)) if good.next() == Some(true) => Self::finish_delivered(key, r),
                Ok(_) => Delivered::Refused {
                    why: Refusal::BadSignature,
                    detail: format!("key id {}", r.key_id),
                    key: r.key,
                },
            })
            .collect()
    }

    /// The checks of a batch delivered by `peer` ([`Node::commit_from_peer`] writes it). Pure
    /// CPU work over every core, no store access: a puller checks the next batch while the
    /// previous one is written.
    pub fn check_from_peer(
        &self,
        peer: &AgencyId,
        refused_origins: &[AgencyId],
        records: Vec<SignedRecord>,
    ) -> CheckedBatch {
        let trust = self.trust();
        CheckedBatch {
            verdicts: crate::par::map_chunks(records, |chunk| {
                self.check_delivered(&trust, refused_origins, peer, chunk)
            }),
        }
    }

    /// Verifies and applies a batch delivered by `peer`, and moves that peer's cursor to
    /// `cursor` in the same atomic write; flushes before returning.
    pub fn apply_from_peer(
        &self,
        peer: &AgencyId,
        refused_origins: &[AgencyId],
        records: Vec<SignedRecord>,
        cursor: u64,
    ) -> Result<ApplyReport, NodeError> {
        let checked = self.check_from_peer(peer, refused_origins, records);
        self.commit_from_peer(peer, checked, cursor)
    }

    /// Writes what [`Node::check_from_peer`] accepted and moves `peer`'s cursor to `cursor` in
    /// the same atomic write; flushes before returning.
    pub fn commit_from_peer(
        &self,
        peer: &AgencyId,
        checked: CheckedBatch,
        cursor: u64,
    ) -> Result<ApplyReport, NodeError> {
        let mut report = ApplyReport::default();
        let mut replicas = Vec::with_capacity(checked.verdicts.len());
        let mut decoded = Vec::with_capacity(checked.verdicts.len());
        for verdict in checked.verdicts {
            match verdict {
                Delivered::Own => report.own += 1,
                Delivered::Refused { why, key, detail } => {
                    *report.refused.entry(why).or_default() += 1;
                    if report.examples.len() < 5 {
                        report
                            .examples
                            .push(format!("{key}: {} ({detail})", why.label()));
                    }
                }
                Delivered::Valid(valid) => {
                    let (record, replica) = *valid;
                    decoded.push(record);
                    replicas.push(replica);
                }
            }
        }
        let keys: Vec<RecordKey> = replicas.iter().map(|r| r.key.clone()).collect();
        let guard = self.write.lock().expect("lock");
        let outcomes = self
            .store
            .apply_replicas_with_cursor(replicas, Some((peer.as_str(), cursor)))?;
        for ((o, key), record) in outcomes.into_iter().zip(keys).zip(decoded) {
            match o? {
                ReplicaOutcome::Applied { .. } => {
                    report.applied += 1;
                    self.analytics.apply(&key, Some(&record));
                }
                ReplicaOutcome::Ignored { .. } => report.ignored += 1,
            }
        }
        drop(guard);
        self.flush()?;
        if report.applied > 0 {
            self.notify();
        }
        self.counters.record_apply(&report);
        Ok(report)
    }

    /// After a complete snapshot from `origin`'s own node, drops the copies of its records the
    /// snapshot did not contain (purged at the origin while we were away); returns how many.
    pub fn drop_unseen(&self, origin: &AgencyId, seen: &HashSet<String>) -> Result<u64, NodeError> {
        let mut gone = Vec::new();
        for kind in Kind::ALL {
            let mut after: Option<RecordKey> = None;
            loop {
                let (page, next) =
                    self.store
                        .list(kind, Some(origin), after.as_ref(), 1000, |_| true)?;
                for s in page {
                    if !seen.contains(&s.key.to_string()) {
                        gone.push((s.key, s.revision));
                    }
                }
                match next {
                    Some(k) => after = Some(k),
                    None => break,
                }
            }
        }
        if gone.is_empty() {
            return Ok(0);
        }
        let n = self.purge_versions(&gone)?;
        self.flush()?;
        self.notify();
        Ok(n)
    }

    /// Starts a snapshot pull from `peer` over: marks it in progress, then sets the cursor back
    /// to 0 (in that order, so a cursor at 0 after a crash always comes with its marker), and
    /// flushes. For a resync below the peer's purge horizon and an operator's sync from the start.
    pub fn restart_snapshot(&self, peer: &AgencyId) -> Result<(), NodeError> {
        self.store
            .meta_put(&snapshot_marker(peer), &[SNAPSHOT_FORMAT_V1])?;
        self.store.set_cursor(peer.as_str(), 0)?;
        self.flush()?;
        Ok(())
    }

    /// Where the next pull from `peer` starts; `snapshot_held` tells whether the caller holds
    /// a [`Snapshot`] of `peer` under way (kept across sessions). A pull from 0 is a new
    /// snapshot, and is marked unless this node holds nothing of the peer's yet. A snapshot marked in the store but not held was cut by a
    /// restart: the keys it had delivered are lost, so it starts over from 0. Otherwise the
    /// pull, and the snapshot held if any, resumes from the cursor.
    pub fn pull_start(&self, peer: &AgencyId, snapshot_held: bool) -> Result<PullStart, NodeError> {
        let since = self.store.cursor(peer.as_str())?.unwrap_or(0);
        let marked = self.snapshot_pending(peer)?;
        if since == 0 {
            // a first sync has nothing of the peer's to drop at its end: it is no snapshot
            // (no set of delivered keys, 100 MB at a million records), and left unmarked, a
            // restart resumes it from its cursor instead of starting over. What it holds of the
            // peer's at its end came from it, or newer through a relay.
            if !marked {
                if !self.holds_records_of(peer)? {
                    return Ok(PullStart {
                        since: 0,
                        new_snapshot: false,
                    });
                }
                self.store
                    .meta_put(&snapshot_marker(peer), &[SNAPSHOT_FORMAT_V1])?;
                self.flush()?;
            }
        } else if marked && !snapshot_held {
            self.restart_snapshot(peer)?;
        } else {
            return Ok(PullStart {
                since,
                new_snapshot: false,
            });
        }
        Ok(PullStart {
            since: 0,
            new_snapshot: true,
        })
    }

    /// Whether this node holds any record whose origin is `origin`.
    fn holds_records_of(&self, origin: &AgencyId) -> Result<bool, NodeError> {
        for kind in Kind::ALL {
            if self.store.holds_origin(kind, origin)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether a snapshot pull from `peer` is marked in progress.
    pub fn snapshot_pending(&self, peer: &AgencyId) -> Result<bool, NodeError> {
        Ok(self.store.meta_get(&snapshot_marker(peer))?.is_some())
    }

    /// Ends a snapshot pull from `peer` that reached the peer's head: drops the copies of its
    /// records the snapshot did not deliver ([`Node::drop_unseen`]), then clears the marker.
    /// Returns how many records were dropped. On an error the snapshot can be finished again.
    pub fn finish_snapshot(&self, peer: &AgencyId, snapshot: &Snapshot) -> Result<u64, NodeError> {
        let dropped = self.drop_unseen(peer, &snapshot.seen)?;
        self.store.meta_delete(&snapshot_marker(peer))?;
        self.flush()?;
        Ok(dropped)
    }

    /// Purges records still at the given revisions and drops them from the analytics index.
    fn purge_versions(&self, items: &[(RecordKey, u64)]) -> Result<u64, NodeError> {
        let _guard = self.write.lock().expect("lock");
        let n = self.store.purge_at(items)?;
        for (key, _) in items {
            if self.store.get(key)?.is_none() {
                self.analytics.apply(key, None);
            }
        }
        Ok(n)
    }

    /// Marks own OPEN vacancies whose `closes_on` is before `today` as EXPIRED; returns how many.
    /// The first call for a given `today` decodes every own vacancy (a few seconds at a million);
    /// later calls that day look only at the own vacancies written meanwhile already due, the
    /// only ones that can have become due since.
    pub fn expire_due(&self, today: passerelle_model::Date) -> Result<u64, NodeError> {
        // a complete scan once per day; in between, only the vacancies noted when written
        let (full, candidates) = {
            let mut e = self.expiry.lock().expect("lock");
            (e.scanned != Some(today), std::mem::take(&mut e.candidates))
        };
        let due = if full {
            self.scan_due(today)
        } else {
            self.candidates_due(&candidates, today)
        };
        let due = match due {
            Ok(d) => d,
            Err(e) => {
                // seen again at the next sweep
                self.expiry
                    .lock()
                    .expect("lock")
                    .candidates
                    .extend(candidates);
                return Err(e);
            }
        };
        let mut n = 0;
        for mut v in due {
            v.status = VacancyStatus::Expired;
            if self.put(Record::Vacancy(v), None)?.changed {
                n += 1;
            }
        }
        if full {
            self.expiry.lock().expect("lock").scanned = Some(today);
        }
        Ok(n)
    }

    /// A due own vacancy: OPEN, `closes_on` before `today`.
    fn is_due(v: &passerelle_model::Vacancy, today: passerelle_model::Date) -> bool {
        v.status == VacancyStatus::Open
            && passerelle_model::Date::parse(&v.closes_on).is_some_and(|c| c < today)
    }

    /// Every due own vacancy: decodes them all.
    fn scan_due(
        &self,
        today: passerelle_model::Date,
    ) -> Result<Vec<passerelle_model::Vacancy>, NodeError> {
        let mut due = Vec::new();
        let mut after: Option<RecordKey> = None;
        loop {
            let (page, next) = self.store.list(
                Kind::Vacancy,
                Some(&self.agency),
                after.as_ref(),
                1000,
                |_| true,
            )?;
            for s in &page {
                if let Record::Vacancy(v) = decode(s)? {
                    if Self::is_due(&v, today) {
                        due.push(v);
                    }
                }
            }
            match next {
                Some(k) => after = Some(k),
                None => break,
            }
        }
        Ok(due)
    }

    /// The due vacancies among `keys`, as stored now.
    fn candidates_due(
        &self,
        keys: &[RecordKey],
        today: passerelle_model::Date,
    ) -> Result<Vec<passerelle_model::Vacancy>, NodeError> {
        let mut due = Vec::new();
        let mut seen = HashSet::new();
        for key in keys {
            if !seen.insert(key) {
                continue;
            }
            if let Some(s) = self.store.get(key)? {
                if let Record::Vacancy(v) = decode(&s)? {
                    if Self::is_due(&v, today) {
                        due.push(v);
                    }
                }
            }
        }
        Ok(due)
    }

    /// Purges vacancy tombstones (any origin) whose last change is older than `horizon_days`.
    pub fn purge_tombstones(&self, horizon_days: u64, now_micros: i64) -> Result<u64, NodeError> {
        let limit = now_micros - (horizon_days as i64) * 86_400_000_000;
        let mut old = Vec::new();
        for s in self.store.iter(Some(Kind::Vacancy)) {
            let s = s?;
            if s.updated_at_micros >= limit {
                continue;
            }
            if let Record::Vacancy(v) = decode(&s)? {
                if v.status.is_tombstone() {
                    old.push((s.key, s.revision));
                }
            }
        }
        if old.is_empty() {
            return Ok(0);
        }
        // only if still at the revision seen: a newer version may have arrived meanwhile
        let n = self.purge_versions(&old)?;
        self.flush()?;
        Ok(n)
    }
}
