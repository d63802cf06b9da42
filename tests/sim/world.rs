//! The simulated federation: real node cores on memory engines, links that carry pull
//! sessions the way the Federation service and the peer loop do, faults, a workload, and
//! the invariants of PRODUCT.md section 4, checked as the run goes and once it is quiet.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use passerelle_model::{AgencyId, Kind, Record, RecordKey, VacancyStatus};
use passerelle_node::sync::Snapshot;
use passerelle_node::{decode, Node, OutboundPolicy, SignedRecord};
use passerelle_store::{AnyEngine, MemEngine, RecordStore, StoredRecord};

use crate::pki::{Federation, Shape};
use crate::rng::Rng;

/// An invariant violation (or an unexpected error), as a sentence.
pub type Res<T = ()> = Result<T, String>;

macro_rules! bail {
    ($($t:tt)*) => { return Err(format!($($t)*)) };
}

#[path = "checks.rs"]
mod checks;
#[path = "workload.rs"]
mod workload;

/// Most steps a batch spends on a link.
const LATENCY_MAX: u64 = 4;
/// Ceiling of the reconnection backoff, in steps (the real loop's 30 s ceiling).
const BACKOFF_MAX: u64 = 16;
/// Delivered batches kept per link for replays.
const REPLAYABLE: usize = 4;
/// Vacancy, shortage and supply ids each origin draws from.
const VACANCY_IDS: u64 = 10;
const SHORTAGE_IDS: u64 = 4;
const SUPPLY_IDS: u64 = 4;

/// Ways to drive the run into what the default sweep steers around, because each triggers
/// a known product bug (see the ignored tests in sim.rs).
///
/// The default sweep purges a tombstone only "past the horizon" as 180 days make it in
/// practice: once every node allowed to receive it holds it and no batch in flight carries
/// it; and never the entry at the end of a log (that one is the bug of
/// `a_peer_catches_up_with_a_log_whose_last_entry_was_purged`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Quirks {
    /// Purge tombstones that a node allowed to receive them does not hold yet (a peer away
    /// for longer than the horizon).
    pub purge_undelivered: bool,
    /// Let an origin put again a key whose tombstone it has purged.
    pub reuse_purged_ids: bool,
    /// Fail when the end of a snapshot drops a record its origin still holds (a relay
    /// delivered it after the snapshot's last batch was cut); by default the run goes on
    /// and the origin delivers it again.
    pub strict_snapshot_drops: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Steps with workload and faults; then the links heal and the run must go quiet.
    pub fault_steps: u64,
    pub quirks: Quirks,
    /// Events kept for the failure report.
    pub history: usize,
}

/// What one run (or a sweep) did.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub runs: u64,
    pub steps: u64,
    pub heal_steps: u64,
    pub heal_steps_max: u64,
    pub heal_bound_min: u64,
    pub puts: u64,
    pub noops: u64,
    pub mismatches: u64,
    pub withdrawals: u64,
    pub expired: u64,
    pub purges: u64,
    pub purged: u64,
    pub crashes: u64,
    pub partitions: u64,
    pub resets: u64,
    pub from_start: u64,
    pub replays: u64,
    pub resyncs: u64,
    pub sessions: u64,
    pub batches: u64,
    pub dropped: u64,
    pub applied: u64,
    pub ignored: u64,
    pub spins: u64,
    pub dropped_unseen: u64,
    pub dropped_live: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        self.runs += o.runs;
        self.steps += o.steps;
        self.heal_steps += o.heal_steps;
        self.heal_steps_max = self.heal_steps_max.max(o.heal_steps_max);
        self.heal_bound_min = match (self.heal_bound_min, o.heal_bound_min) {
            (0, b) | (b, 0) => b,
            (a, b) => a.min(b),
        };
        self.puts += o.puts;
        self.noops += o.noops;
        self.mismatches += o.mismatches;
        self.withdrawals += o.withdrawals;
        self.expired += o.expired;
        self.purges += o.purges;
        self.purged += o.purged;
        self.crashes += o.crashes;
        self.partitions += o.partitions;
        self.resets += o.resets;
        self.from_start += o.from_start;
        self.replays += o.replays;
        self.resyncs += o.resyncs;
        self.sessions += o.sessions;
        self.batches += o.batches;
        self.dropped += o.dropped;
        self.applied += o.applied;
        self.ignored += o.ignored;
        self.spins += o.spins;
        self.dropped_unseen += o.dropped_unseen;
        self.dropped_live += o.dropped_live;
    }
}

struct SimNode {
    agency: AgencyId,
    engine: MemEngine,
    node: Option<Node>,
    restart_at: u64,
    /// Sum of `applied` over the reports since the node was (re)opened: its counter must agree.
    applied_since_open: u64,
    /// Every (key, revision) applied from a peer, forgotten when the key is purged here.
    applied: BTreeSet<(RecordKey, u64)>,
    /// The highest revision of each key this node has stored as a tombstone.
    tomb_at: BTreeMap<RecordKey, u64>,
    /// Keys purged here, at the revision purged.
    purged: BTreeMap<RecordKey, u64>,
    /// (origin, kind) this node may receive under the topology's policies (its own included).
    allowed: BTreeSet<(AgencyId, Kind)>,
}

/// A batch on its way from a server to a puller.
struct InFlight {
    records: Vec<SignedRecord>,
    cursor: u64,
    head_seq: u64,
    at: u64,
}

/// One Pull stream with `follow`: the server's loop state and the batches on the wire.
struct Session {
    id: u64,
    /// The server loop's cursor (ahead of the puller's persisted one while batches travel).
    cursor: u64,
    announced: bool,
    /// Caught up: waiting for the server's head to move past this value.
    waiting_on: Option<u64>,
    spinning: bool,
    inflight: VecDeque<InFlight>,
    window: usize,
    max_records: usize,
    max_bytes: usize,
}

/// The directed link `puller ← server`: the puller's peer loop and the server's policy for it.
struct Link {
    puller: usize,
    server: usize,
    policy: OutboundPolicy,
    refuse: Vec<AgencyId>,
    session: Option<Session>,
    /// The snapshot pull under way (a pull from 0 and the sessions that continue it), kept
    /// across sessions as the peer loop keeps it; lost when the puller crashes.
    snapshot: Option<Snapshot>,
    next_attempt: u64,
    failures: u32,
    /// Partitioned while `step < cut_until`.
    cut_until: u64,
    /// Records of the batches applied lately, for replays.
    recent: VecDeque<Vec<SignedRecord>>,
}

/// The latest acknowledged write of a key, as its origin answered.
#[derive(Debug, Clone, Copy)]
struct Acked {
    origin: usize,
    revision: u64,
    tombstone: bool,
    /// OPEN with `closes_on` before the sweep day: the next expiry sweep must expire it.
    expiring: bool,
}

pub struct World<'f> {
    fed: &'f Federation,
    params: Params,
    rng: Rng,
    step: u64,
    nodes: Vec<SimNode>,
    links: Vec<Link>,
    acked: BTreeMap<RecordKey, Acked>,
    /// Keys whose tombstone their origin purged: the workload never writes them again.
    retired: BTreeSet<RecordKey>,
    next_session: u64,
    any_purge: bool,
    pub history: VecDeque<String>,
    pub stats: Stats,
}

fn err<E: std::fmt::Display>(what: impl std::fmt::Display) -> impl FnOnce(E) -> String {
    move |e| format!("{what}: {e}")
}

fn open(fed: &Federation, i: usize, engine: &MemEngine) -> Res<Node> {
    Node::open_on(&fed.configs[i], AnyEngine::Mem(engine.clone()))
        .map_err(err(format!("cannot open {}", fed.agency(i))))
}

fn is_open_vacancy(s: &StoredRecord) -> Res<Option<bool>> {
    match decode(s).map_err(err(&s.key))? {
        Record::Vacancy(v) => Ok(Some(v.status == VacancyStatus::Open)),
        _ => Ok(None),
    }
}

impl<'f> World<'f> {
    pub fn new(fed: &'f Federation, seed: u64, params: Params) -> Res<World<'f>> {
        let n = fed.configs.len();
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let engine = MemEngine::new();
            let node = open(fed, i, &engine)?;
            nodes.push(SimNode {
                agency: fed.agency(i),
                engine,
                node: Some(node),
                restart_at: 0,
                applied_since_open: 0,
                applied: BTreeSet::new(),
                tomb_at: BTreeMap::new(),
                purged: BTreeMap::new(),
                allowed: Kind::ALL.iter().map(|k| (fed.agency(i), *k)).collect(),
            });
        }
        let index = |a: &AgencyId| (0..n).find(|&i| &fed.agency(i) == a);
        let mut links = Vec::new();
        for (puller, cfg) in fed.configs.iter().enumerate() {
            for peer in cfg.peers.iter().filter(|p| p.endpoint.is_some()) {
                let server = index(&peer.agency).ok_or("peer outside the federation")?;
                let entry = fed.configs[server]
                    .peers
                    .iter()
                    .find(|p| p.agency == cfg.agency)
                    .ok_or_else(|| format!("{} does not list {}", peer.agency, cfg.agency))?;
                let policy = OutboundPolicy::from(entry);
                if policy.open_to_international.is_some() || !policy.countries.is_empty() {
                    bail!("content filters are not modelled");
                }
                links.push(Link {
                    puller,
                    server,
                    policy,
                    refuse: peer.refuse_origins.clone(),
                    session: None,
                    snapshot: None,
                    next_attempt: 0,
                    failures: 0,
                    cut_until: 0,
                    recent: VecDeque::new(),
                });
            }
        }
        // what reaches whom: the fixpoint of "my server holds it and its policy lets it through"
        loop {
            let mut grew = false;
            for l in &links {
                let from: Vec<_> = nodes[l.server].allowed.iter().cloned().collect();
                for (origin, kind) in from {
                    let ok = l.policy.kinds.contains(&kind)
                        && (l.policy.relay || origin == nodes[l.server].agency);
                    if ok {
                        grew |= nodes[l.puller].allowed.insert((origin, kind));
                    }
                }
            }
            if !grew {
                break;
            }
        }
        Ok(World {
            fed,
            params,
            rng: Rng::new(seed),
            step: 0,
            nodes,
            links,
            acked: BTreeMap::new(),
            retired: BTreeSet::new(),
            next_session: 1,
            any_purge: false,
            history: VecDeque::new(),
            stats: Stats {
                runs: 1,
                ..Stats::default()
            },
        })
    }

    fn ev(&mut self, what: impl Into<String>) {
        if self.history.len() == self.params.history {
            self.history.pop_front();
        }
        self.history
            .push_back(format!("[{:>4}] {}", self.step, what.into()));
    }

    fn name(&self, i: usize) -> &str {
        self.nodes[i].agency.as_str()
    }

    fn link_name(&self, l: usize) -> String {
        format!(
            "{}<-{}",
            self.name(self.links[l].puller),
            self.name(self.links[l].server)
        )
    }

    fn up(&self, i: usize) -> bool {
        self.nodes[i].node.is_some()
    }

    fn node(&self, i: usize) -> &Node {
        self.nodes[i].node.as_ref().expect("node is up")
    }

    /// Runs `f` on node `i`'s store, opening it read-only for the occasion while the node is down.
    fn with_store<T>(&self, i: usize, f: impl FnOnce(&RecordStore<AnyEngine>) -> Res<T>) -> Res<T> {
        match &self.nodes[i].node {
            Some(n) => f(n.store()),
            None => {
                let store = RecordStore::open(AnyEngine::Mem(self.nodes[i].engine.clone()))
                    .map_err(err("open a stopped node's store"))?;
                f(&store)
            }
        }
    }

    fn stored(&self, i: usize, key: &RecordKey) -> Res<Option<StoredRecord>> {
        self.with_store(i, |s| s.get(key).map_err(err(key)))
    }

    fn backoff(&mut self, failures: u32) -> u64 {
        let base = (1u64 << failures.saturating_sub(1).min(10)).min(BACKOFF_MAX);
        // ±25 % jitter, as the peer loop does
        (base * self.rng.range(75, 125) / 100).clamp(1, BACKOFF_MAX)
    }

    /// Ends the session on link `l`, dropping what is in flight; `error` counts as a failed
    /// session for the peer loop's backoff.
    fn end_session(&mut self, l: usize, why: &str, error: bool) {
        let Some(s) = self.links[l].session.take() else {
            return;
        };
        self.stats.dropped += s.inflight.len() as u64;
        let name = self.link_name(l);
        self.ev(format!(
            "{name} session {} ends ({why}), {} batches dropped",
            s.id,
            s.inflight.len()
        ));
        if error {
            self.links[l].failures += 1;
            let f = self.links[l].failures;
            self.links[l].next_attempt = self.step + self.backoff(f);
        } else {
            self.links[l].next_attempt = self.step + 1;
        }
    }

    // ---- the run --------------------------------------------------------------------------

    pub fn run(&mut self) -> Res<Stats> {
        while self.step < self.params.fault_steps {
            self.restart_due()?;
            self.faults()?;
            self.workload()?;
            self.network(false)?;
            self.step += 1;
        }
        self.heal()?;
        let bound = self.heal_bound();
        let healed_at = self.step;
        loop {
            if self.quiescent()? {
                break;
            }
            if self.step - healed_at > bound {
                bail!(
                    "lag did not return to zero within {bound} steps after faults stopped:\n{}",
                    self.link_report()?
                );
            }
            self.network(true)?;
            self.step += 1;
        }
        let took = self.step - healed_at;
        self.ev(format!(
            "quiescent {took} steps after healing (bound {bound})"
        ));
        self.stats.heal_steps = took;
        self.stats.heal_steps_max = took;
        self.stats.heal_bound_min = bound;
        self.stats.steps = self.step;
        self.final_checks()?;
        Ok(self.stats.clone())
    }

    /// Steps within which every link must be caught up once faults stop: per hop of the
    /// topology, one backoff ceiling to reconnect, one snapshot resync and one full pass
    /// over a log, at one batch per step and at most `LATENCY_MAX` steps of latency. A log
    /// is compacted, so its length is bounded by the number of keys, not of changes.
    fn heal_bound(&self) -> u64 {
        let hops = match self.fed.shape {
            Shape::Mesh { .. } => 1,
            Shape::Chain | Shape::NarrowedMesh => 2,
        };
        let keys = self.acked.len() as u64;
        hops * (BACKOFF_MAX + 3 + (2 * keys + 4) * (LATENCY_MAX + 1))
    }

    fn heal(&mut self) -> Res {
        for i in 0..self.nodes.len() {
            if !self.up(i) {
                self.restart(i)?;
            }
        }
        for l in &mut self.links {
            l.cut_until = 0;
        }
        self.ev("faults stop, links heal");
        Ok(())
    }

    fn restart_due(&mut self) -> Res {
        for i in 0..self.nodes.len() {
            if !self.up(i) && self.nodes[i].restart_at <= self.step {
                self.restart(i)?;
            }
        }
        Ok(())
    }

    fn network(&mut self, eager: bool) -> Res {
        let mut order: Vec<usize> = (0..self.links.len()).collect();
        self.rng.shuffle(&mut order);
        for l in order {
            self.link_tick(l, eager)?;
        }
        Ok(())
    }

    fn link_tick(&mut self, l: usize, eager: bool) -> Res {
        let (p, s) = (self.links[l].puller, self.links[l].server);
        if !self.up(p) {
            return Ok(());
        }
        if self.links[l].session.is_none() {
            if self.step < self.links[l].next_attempt {
                return Ok(());
            }
            if self.step < self.links[l].cut_until || !self.up(s) {
                self.links[l].failures += 1;
                let f = self.links[l].failures;
                self.links[l].next_attempt = self.step + self.backoff(f);
                return Ok(());
            }
            return self.start_session(l);
        }
        if eager || self.rng.chance(700) {
            self.serve(l)?;
        }
        if eager || self.rng.chance(700) {
            self.deliver_due(l)?;
        }
        Ok(())
    }

    /// Hello and Pull: the puller starts from its cursor (`Node::pull_start`: a new snapshot
    /// from 0, or one a restart cut starting over), the server refuses a cursor below its purge
    /// horizon (FAILED_PRECONDITION) and the puller then pulls again from 0, as src/federation
    /// does.
    fn start_session(&mut self, l: usize) -> Res {
        let (p, s) = (self.links[l].puller, self.links[l].server);
        let server = self.nodes[s].agency.clone();
        let held = self.links[l].snapshot.is_some();
        let start = self
            .node(p)
            .pull_start(&server, held)
            .map_err(err("pull_start"))?;
        if start.new_snapshot {
            self.links[l].snapshot = Some(Snapshot::default());
        }
        let since = start.since;
        let purged = self.node(s).store().purged_through_seq();
        let name = self.link_name(l);
        if since > 0 && since < purged {
            self.node(p)
                .restart_snapshot(&server)
                .map_err(err("restart_snapshot"))?;
            self.stats.resyncs += 1;
            self.ev(format!(
                "{name} pull since {since} refused: FAILED_PRECONDITION (purged through {purged}), cursor reset to 0"
            ));
            self.links[l].next_attempt = self.step + 1;
            return Ok(());
        }
        let id = self.next_session;
        self.next_session += 1;
        let window = self.rng.range(1, 4) as usize;
        let max_records = *self.rng.pick(&[1usize, 2, 3, 5, 1000]);
        let max_bytes = *self.rng.pick(&[1usize, 2500, 1 << 20]);
        self.links[l].session = Some(Session {
            id,
            cursor: since,
            announced: false,
            waiting_on: None,
            spinning: false,
            inflight: VecDeque::new(),
            window,
            max_records,
            max_bytes,
        });
        self.stats.sessions += 1;
        let snapshot = match &self.links[l].snapshot {
            Some(s) => format!(", snapshot with {} keys seen", s.seen().len()),
            None => String::new(),
        };
        self.ev(format!(
            "{name} session {id} since {since} (window {window}, {max_records} records, {max_bytes} bytes{snapshot})"
        ));
        Ok(())
    }

    /// One turn of the Pull loop of src/federation/service.rs.
    fn serve(&mut self, l: usize) -> Res {
        let s = self.links[l].server;
        let head = self.node(s).store().head_seq();
        let sess = self.links[l].session.as_mut().expect("session");
        if sess.inflight.len() >= sess.window {
            return Ok(());
        }
        if let Some(h) = sess.waiting_on {
            if head == h {
                return Ok(());
            }
            sess.waiting_on = None;
        }
        let (cursor, max_records, max_bytes) = (sess.cursor, sess.max_records, sess.max_bytes);
        let batch = self.nodes[s]
            .node
            .as_ref()
            .expect("server up")
            .pull_batch(cursor, max_records, max_bytes, &self.links[l].policy)
            .map_err(err("pull_batch"))?;
        let latency = self.rng.below(LATENCY_MAX + 1);
        let step = self.step;
        let sess = self.links[l].session.as_mut().expect("session");
        let caught_up = batch.cursor >= batch.head_seq;
        let mut event = None;
        if batch.cursor > cursor || !batch.records.is_empty() || (caught_up && !sess.announced) {
            let at = sess
                .inflight
                .back()
                .map_or(step + latency, |b| b.at.max(step + latency));
            event = Some(format!(
                "cut ({cursor}, {}] head {}: {} records, arrives at {at}",
                batch.cursor,
                batch.head_seq,
                batch.records.len()
            ));
            sess.inflight.push_back(InFlight {
                records: batch.records,
                cursor: batch.cursor,
                head_seq: batch.head_seq,
                at,
            });
            sess.spinning = false;
        } else if !caught_up && !sess.spinning {
            // the real loop goes round again at once and finds nothing: it spins until the log grows
            sess.spinning = true;
            event = Some(format!(
                "server loop spins: cursor {cursor} below head {} and nothing after it",
                batch.head_seq
            ));
        }
        sess.cursor = batch.cursor;
        if caught_up {
            sess.announced = true;
            sess.waiting_on = Some(batch.head_seq);
        }
        if let Some(e) = event {
            if e.starts_with("server loop spins") {
                self.stats.spins += 1;
            }
            let name = self.link_name(l);
            self.ev(format!("{name} {e}"));
        }
        Ok(())
    }

    fn deliver_due(&mut self, l: usize) -> Res {
        let sess = self.links[l].session.as_mut().expect("session");
        if sess.inflight.front().is_none_or(|b| b.at > self.step) {
            return Ok(());
        }
        let b = sess.inflight.pop_front().expect("front");
        self.deliver(l, b)
    }

    /// The peer loop's handling of one batch: `apply_from_peer`, then the checks of what it did.
    fn deliver(&mut self, l: usize, b: InFlight) -> Res {
        let (p, s) = (self.links[l].puller, self.links[l].server);
        let server = self.nodes[s].agency.clone();
        let me = self.nodes[p].agency.clone();
        // what an exactly-once apply must do: versions newer than the stored one, in order
        let mut seen: BTreeMap<RecordKey, u64> = BTreeMap::new();
        let mut expect = Vec::new();
        let mut own = 0;
        for r in &b.records {
            let key: RecordKey = r.key.parse().map_err(err("served key"))?;
            if key.origin == me {
                own += 1;
                continue;
            }
            let stored = match seen.get(&key) {
                Some(&rev) => rev,
                None => self.stored(p, &key)?.map_or(0, |x| x.revision),
            };
            if r.revision > stored {
                seen.insert(key.clone(), r.revision);
                expect.push((key, r.revision));
            } else {
                seen.insert(key, stored);
            }
        }
        if let Some(snapshot) = self.links[l].snapshot.as_mut() {
            snapshot.note(&server, &b.records);
        }
        let node = self.nodes[p].node.as_ref().expect("puller up");
        let report = node
            .apply_from_peer(&server, &self.links[l].refuse, b.records.clone(), b.cursor)
            .map_err(err(format!("{me} apply_from_peer")))?;
        let name = self.link_name(l);
        if report.refused_total() > 0 {
            bail!("{name}: valid records refused: {:?}", report.examples);
        }
        if report.applied != expect.len() as u64 || report.own != own {
            bail!(
                "{name}: batch to ({}, {}] applied {} and skipped {} own, expected {} and {own}",
                b.cursor,
                b.head_seq,
                report.applied,
                report.own,
                expect.len()
            );
        }
        let cursor = node
            .store()
            .cursor(server.as_str())
            .map_err(err("cursor"))?;
        if cursor != Some(b.cursor) {
            bail!(
                "{name}: cursor is {cursor:?} after applying a batch up to {}",
                b.cursor
            );
        }
        self.nodes[p].applied_since_open += report.applied;
        self.check_counter(p)?;
        for (key, rev) in &expect {
            if !self.nodes[p].applied.insert((key.clone(), *rev)) {
                bail!("{me} applied {key} revision {rev} twice (no duplicate application)");
            }
            self.note_stored(p, key)?;
        }
        self.stats.batches += 1;
        self.stats.applied += report.applied;
        self.stats.ignored += report.ignored;
        let link = &mut self.links[l];
        if link.recent.len() == REPLAYABLE {
            link.recent.pop_front();
        }
        link.recent.push_back(b.records);
        self.ev(format!(
            "{name} applied batch to {} (head {}): {} applied, {} ignored, {own} own",
            b.cursor, b.head_seq, report.applied, report.ignored
        ));
        if b.cursor >= b.head_seq {
            if let Some(snapshot) = self.links[l].snapshot.take() {
                self.finish_snapshot(l, &snapshot)?;
            }
        }
        Ok(())
    }

    /// The end of a snapshot: the puller drops its copies of the server's own records that
    /// the snapshot lacked and clears its marker (`Node::finish_snapshot`); they count as
    /// purged there.
    fn finish_snapshot(&mut self, l: usize, snapshot: &Snapshot) -> Res {
        let (p, s) = (self.links[l].puller, self.links[l].server);
        let server = self.nodes[s].agency.clone();
        let mut gone = Vec::new();
        for r in self.node(p).store().iter(None) {
            let r = r.map_err(err("iter"))?;
            if r.key.origin == server && !snapshot.seen().contains(&r.key.to_string()) {
                gone.push((r.key, r.revision));
            }
        }
        let head = self.node(p).store().head_seq();
        let n = self
            .node(p)
            .finish_snapshot(&server, snapshot)
            .map_err(err("finish_snapshot"))?;
        if self
            .node(p)
            .snapshot_pending(&server)
            .map_err(err("snapshot_pending"))?
        {
            bail!("{}: a finished snapshot is still marked", self.link_name(l));
        }
        if n != gone.len() as u64 {
            bail!(
                "drop_unseen dropped {n} records, {} were unseen",
                gone.len()
            );
        }
        for (key, rev) in &gone {
            if self.stored(p, key)?.is_some() {
                bail!("drop_unseen left {key}");
            }
            if self.stored(s, key)?.is_some() {
                self.stats.dropped_live += 1;
                if self.params.quirks.strict_snapshot_drops {
                    bail!(
                        "{}: the end of a snapshot dropped {key} revision {rev}, which {server} still holds",
                        self.link_name(l)
                    );
                }
            }
            let sim = &mut self.nodes[p];
            sim.purged.insert(key.clone(), *rev);
            sim.applied.retain(|(k, _)| k != key);
        }
        if n > 0 {
            self.any_purge = true;
            for link in &mut self.links {
                if link.puller == p {
                    link.recent.clear();
                }
            }
            self.stats.dropped_unseen += n;
            let name = self.link_name(l);
            let keys: Vec<String> = gone.iter().map(|(k, r)| format!("{k}@{r}")).collect();
            self.ev(format!(
                "{name} snapshot complete: dropped {} (head {head}, purged through {})",
                keys.join(" "),
                self.node(p).store().purged_through_seq()
            ));
        }
        Ok(())
    }

    fn check_counter(&self, i: usize) -> Res {
        let counted = self
            .node(i)
            .counters
            .applied
            .load(std::sync::atomic::Ordering::Relaxed);
        if counted != self.nodes[i].applied_since_open {
            bail!(
                "{}: counters.applied is {counted}, the reports since opening sum to {}",
                self.name(i),
                self.nodes[i].applied_since_open
            );
        }
        Ok(())
    }

    /// Records what node `i` now stores for `key`, and fails on a resurrection: an OPEN
    /// version at or below a revision this node already stored as a tombstone.
    fn note_stored(&mut self, i: usize, key: &RecordKey) -> Res {
        let Some(s) = self.stored(i, key)? else {
            return Ok(());
        };
        match is_open_vacancy(&s)? {
            Some(true) => {
                if let Some(&t) = self.nodes[i].tomb_at.get(key) {
                    if s.revision <= t {
                        bail!(
                            "{} resurrected {key}: stores OPEN revision {} after a tombstone at revision {t}",
                            self.name(i),
                            s.revision
                        );
                    }
                }
            }
            Some(false) => {
                let t = self.nodes[i].tomb_at.entry(key.clone()).or_default();
                *t = (*t).max(s.revision);
            }
            None => {}
        }
        Ok(())
    }

    // ---- faults ---------------------------------------------------------------------------

    fn faults(&mut self) -> Res {
        if self.rng.chance(12) {
            let up: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.up(i)).collect();
            if !up.is_empty() {
                let i = *self.rng.pick(&up);
                self.crash(i)?;
            }
        }
        if self.rng.chance(30) {
            self.partition();
        }
        if self.rng.chance(20) {
            let live: Vec<usize> = (0..self.links.len())
                .filter(|&l| self.links[l].session.is_some())
                .collect();
            if !live.is_empty() {
                let l = *self.rng.pick(&live);
                self.stats.resets += 1;
                self.end_session(l, "connection reset", true);
            }
        }
        if self.rng.chance(30) {
            self.replay()?;
        }
        if self.rng.chance(25) {
            self.purge()?;
        }
        if self.rng.chance(8) {
            self.sync_from_start()?;
        }
        Ok(())
    }

    /// An operator's `passerelle sync --peer X --from-start`: the session ends, the cursor
    /// goes back to 0 and the loop connects again at once (src/federation/peer.rs).
    fn sync_from_start(&mut self) -> Res {
        let l = self.rng.index(self.links.len());
        let (p, s) = (self.links[l].puller, self.links[l].server);
        if !self.up(p) {
            return Ok(());
        }
        self.end_session(l, "operator: sync from the start", false);
        let server = self.nodes[s].agency.clone();
        self.node(p)
            .restart_snapshot(&server)
            .map_err(err("restart_snapshot"))?;
        self.links[l].failures = 0;
        self.links[l].next_attempt = self.step;
        self.stats.from_start += 1;
        let name = self.link_name(l);
        self.ev(format!("{name} operator asks for a sync from the start"));
        Ok(())
    }

    fn partition(&mut self) {
        let d = self.rng.range(2, 25);
        let cut: Vec<usize> = if self.rng.chance(300) {
            let n = self.rng.index(self.nodes.len());
            self.ev(format!("{} isolated for {d} steps", self.name(n)));
            (0..self.links.len())
                .filter(|&l| self.links[l].puller == n || self.links[l].server == n)
                .collect()
        } else {
            let l = self.rng.index(self.links.len());
            self.ev(format!("{} partitioned for {d} steps", self.link_name(l)));
            vec![l]
        };
        self.stats.partitions += 1;
        for l in cut {
            self.links[l].cut_until = self.links[l].cut_until.max(self.step + d);
            self.end_session(l, "partition", true);
        }
    }

    /// Drops node `i` (and every batch to or from it); it reopens on the same engine later.
    fn crash(&mut self, i: usize) -> Res {
        self.check_cursors(i)?;
        for l in 0..self.links.len() {
            if self.links[l].puller == i {
                // the peer loop dies with the node, and the snapshot it held with it
                self.end_session(l, "puller crashed", false);
                self.links[l].failures = 0;
                self.links[l].snapshot = None;
            } else if self.links[l].server == i {
                self.end_session(l, "server crashed", true);
            }
        }
        self.nodes[i].node = None;
        self.nodes[i].restart_at = self.step + self.rng.range(0, 8);
        self.stats.crashes += 1;
        let name = self.name(i).to_owned();
        self.ev(format!("{name} crashes"));
        Ok(())
    }

    fn restart(&mut self, i: usize) -> Res {
        let node = open(self.fed, i, &self.nodes[i].engine)?;
        self.nodes[i].node = Some(node);
        self.nodes[i].applied_since_open = 0;
        for l in &mut self.links {
            if l.puller == i {
                l.next_attempt = self.step;
                l.failures = 0;
            }
        }
        let name = self.name(i).to_owned();
        self.ev(format!("{name} restarts"));
        self.check_node(i)?;
        self.check_origin_acks(i)
    }

    fn replay(&mut self) -> Res {
        let candidates: Vec<usize> = (0..self.links.len())
            .filter(|&l| self.up(self.links[l].puller) && !self.links[l].recent.is_empty())
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let l = *self.rng.pick(&candidates);
        let k = self.rng.index(self.links[l].recent.len());
        let records = self.links[l].recent[k].clone();
        let (p, s) = (self.links[l].puller, self.links[l].server);
        let server = self.nodes[s].agency.clone();
        let node = self.node(p);
        // the store sets the cursor as given; a duplicate must not move it back (the peer loop
        // only ever hands batches over in order), so it comes with the cursor already held
        let cursor = node
            .store()
            .cursor(server.as_str())
            .map_err(err("cursor"))?
            .unwrap_or(0);
        let before = node.store().digest().map_err(err("digest"))?;
        let head = node.store().head_seq();
        let n = records.len();
        let report = node
            .apply_from_peer(&server, &self.links[l].refuse, records, cursor)
            .map_err(err("replay"))?;
        let after = node.store().digest().map_err(err("digest"))?;
        let name = self.link_name(l);
        if report.applied != 0 || report.refused_total() != 0 {
            bail!(
                "{name}: replaying a batch of {n} already applied records applied {} and refused {}",
                report.applied,
                report.refused_total()
            );
        }
        if after != before || node.store().head_seq() != head {
            bail!("{name}: replaying an applied batch changed the state digest");
        }
        self.stats.replays += 1;
        self.ev(format!(
            "{name} replay of a batch of {n} records (to {cursor}): nothing applied"
        ));
        Ok(())
    }

    /// Purges vacancy tombstones on one node whose horizon has passed (see `Quirks`): with
    /// the node's own sweep when that takes exactly them, else with `purge_at`.
    fn purge(&mut self) -> Res {
        let up: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.up(i)).collect();
        if up.is_empty() {
            return Ok(());
        }
        let i = *self.rng.pick(&up);
        let q = self.params.quirks;
        let store = self.node(i).store();
        let head = store.head_seq();
        let mut tombs = Vec::new();
        for s in store.iter(Some(Kind::Vacancy)) {
            let s = s.map_err(err("iter"))?;
            if is_open_vacancy(&s)? == Some(false) {
                tombs.push((s.key.clone(), s.revision, s.seq));
            }
        }
        let mut chosen = Vec::new();
        for (key, rev, seq) in &tombs {
            let at_tail = *seq == head;
            let ok = !at_tail && (q.purge_undelivered || self.delivered_everywhere(key, *rev)?);
            if ok {
                chosen.push((key.clone(), *rev));
            }
        }
        if chosen.is_empty() {
            return Ok(());
        }
        let node = self.node(i);
        let n = if chosen.len() == tombs.len() {
            // the node's own sweep, with a horizon every tombstone is past
            node.purge_tombstones(0, i64::MAX)
                .map_err(err("purge_tombstones"))?
        } else {
            let n = node.store().purge_at(&chosen).map_err(err("purge_at"))?;
            node.store().flush().map_err(err("flush"))?;
            n
        };
        if n != chosen.len() as u64 {
            bail!(
                "{} purged {n} tombstones, expected {}",
                self.name(i),
                chosen.len()
            );
        }
        for (key, rev) in &chosen {
            let sim = &mut self.nodes[i];
            sim.purged.insert(key.clone(), *rev);
            // a purged version may legitimately arrive again (from a peer that still holds it)
            sim.applied.retain(|(k, _)| k != key);
            if key.origin == sim.agency && !q.reuse_purged_ids {
                self.retired.insert(key.clone());
            }
        }
        for l in &mut self.links {
            if l.puller == i {
                // a replay from before a purge would come from beyond the horizon
                l.recent.clear();
            }
        }
        self.any_purge = true;
        self.stats.purges += 1;
        self.stats.purged += n;
        let purged_through = self.node(i).store().purged_through_seq();
        let name = self.name(i).to_owned();
        self.ev(format!(
            "{name} purges {n} tombstones (purged through {purged_through}, head {head})"
        ));
        Ok(())
    }

    /// Every node allowed to receive `key` holds it at `rev` or later (or purged it there),
    /// and no batch in flight carries it.
    fn delivered_everywhere(&self, key: &RecordKey, rev: u64) -> Res<bool> {
        for x in 0..self.nodes.len() {
            if !self.nodes[x]
                .allowed
                .contains(&(key.origin.clone(), key.kind))
            {
                continue;
            }
            if !self.up(x) {
                return Ok(false);
            }
            let held = self.stored(x, key)?.map_or(0, |s| s.revision);
            let purged = self.nodes[x].purged.get(key).copied().unwrap_or(0);
            if held.max(purged) < rev {
                return Ok(false);
            }
        }
        let wanted = key.to_string();
        let in_flight = self.links.iter().any(|l| {
            l.session.as_ref().is_some_and(|s| {
                s.inflight
                    .iter()
                    .any(|b| b.records.iter().any(|r| r.key == wanted))
            })
        });
        Ok(!in_flight)
    }
}
