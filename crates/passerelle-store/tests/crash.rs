//! Crash safety: a writer process is killed with SIGKILL mid-write, several times over
//! one sled directory, and every reopen must find a consistent store (one log entry per
//! record), holding every acknowledged (flushed) write, with a head seq that never goes
//! back (so no seq is handed out twice, even after the newest entries were compacted or
//! purged), and a peer cursor that covers exactly the replicas stored.
//!
//! The writer is this test binary re-executed with [`CHILD_DIR_ENV`] set, running only
//! the ignored `crash_child` test. SIGKILL ends the process but not the kernel, so this
//! covers process crashes, not power loss (that is what `flush`'s fsync is for).

#![cfg(unix)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use passerelle_store::{PutOutcome, RecordStore, Replica, SledEngine};

const CHILD_DIR_ENV: &str = "PASSERELLE_STORE_CRASH_DIR";
const CHILD_SEED_ENV: &str = "PASSERELLE_STORE_CRASH_CHILD_SEED";
const SEED_ENV: &str = "PASSERELLE_STORE_CRASH_SEED";
const ROUNDS: u64 = 5;
const KEYS: u64 = 300;
const PEER: &str = "tg.anpe";
const PEER_KEYS: u64 = 50;
const CACHE: u64 = 8 << 20;

/// xorshift64*: enough randomness for timings and workloads, and reproducible by seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn key(i: u64) -> passerelle_model::RecordKey {
    let kind = ["vacancy", "shortage", "supply"][(i % 3) as usize];
    format!("be.vdab/{kind}/K-{i:05}").parse().unwrap()
}

/// Content is a function of (key, nonce, len), so the parent can check acknowledged
/// content without the child sending it.
fn content(key: &passerelle_model::RecordKey, nonce: u64, len: usize) -> Vec<u8> {
    let mut c = format!("{key}#{nonce}#").into_bytes();
    let mut rng = Rng::new(nonce);
    while c.len() < len {
        c.push(b'a' + (rng.below(26) as u8));
    }
    c
}

/// The peer's change number `p`: which of its keys it touched. The peer's revision of
/// that key is `p` itself, so revisions grow along the peer's log.
fn peer_key(p: u64) -> passerelle_model::RecordKey {
    let i = p.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
    format!("{PEER}/vacancy/P-{:03}", i % PEER_KEYS)
        .parse()
        .unwrap()
}

fn peer_replica(p: u64) -> Replica {
    let key = peer_key(p);
    Replica {
        content: content(&key, p, 200),
        seal: format!("{key}@{p}").into_bytes(),
        key,
        revision: p,
        updated_at_micros: 0,
    }
}

fn seal(k: &passerelle_model::RecordKey, revision: u64, _at: i64, _c: &[u8]) -> Vec<u8> {
    format!("{k}@{revision}").into_bytes()
}

/// The writer. Prints `ready <head> <cursor>` once open, then, each only after the flush
/// that made it durable: `ack <seq> <key> <revision> <nonce> <len> end` for each written
/// version and `cursor <seq> end` for each cursor moved with the peer's replicas. Before
/// a purge it prints `purging <key>... end`, so the parent knows those keys may be gone.
/// (Pipe writes this small are atomic and happen before the purge starts, so a purge
/// whose announcement is not complete never ran.)
#[test]
#[ignore = "run by sigkill_keeps_acknowledged_writes as a child process"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        eprintln!("crash_child only runs as the child of sigkill_keeps_acknowledged_writes");
        return;
    };
    let seed: u64 = std::env::var(CHILD_SEED_ENV).unwrap().parse().unwrap();
    let mut rng = Rng::new(seed);
    let store = RecordStore::open(SledEngine::open(&dir, CACHE).unwrap()).unwrap();
    let mut cursor = store.cursor(PEER).unwrap().unwrap_or(0);
    // libtest may have printed "test crash_child ... " without a newline
    println!();
    println!("ready {} {cursor}", store.head_seq());
    // the parent kills us long before this; the bound only matters if it does not
    let deadline = Instant::now() + Duration::from_secs(60);
    for _ in 0..1_000_000 {
        if Instant::now() > deadline {
            break;
        }
        let mut acks = Vec::new();
        let op = rng.below(12);
        if op == 0 {
            // write a version, then purge it with a few others: the newest entry is gone,
            // so the log alone would give a head that hands out its seq again. Lingering
            // here makes it likely that some kill finds the store in this state.
            let k = key(rng.below(KEYS));
            let (nonce, len) = (rng.next(), 100 + rng.below(1500) as usize);
            let out = store
                .put_own(k.clone(), content(&k, nonce, len), None, 0, seal)
                .unwrap();
            store.flush().unwrap();
            if let PutOutcome::Written { revision, seq } = out {
                println!("ack {seq} {k} {revision} {nonce} {len} end");
            }
            let mut keys = vec![k];
            for _ in 0..rng.below(3) {
                keys.push(key(rng.below(KEYS)));
            }
            let names: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
            println!("purging {} end", names.join(" "));
            store.purge(&keys).unwrap();
            store.flush().unwrap();
            std::thread::sleep(Duration::from_millis(20));
            continue;
        } else if op <= 4 {
            // the next changes of the peer, sometimes after a replay of older ones
            let replay = if rng.below(4) == 0 { rng.below(20) } else { 0 };
            let first = cursor.saturating_sub(replay) + 1;
            let last = cursor + 1 + rng.below(32);
            let replicas = (first..=last).map(peer_replica).collect();
            let out = store
                .apply_replicas_with_cursor(replicas, Some((PEER, last)))
                .unwrap();
            assert!(out.iter().all(Result::is_ok));
            cursor = last;
            store.flush().unwrap();
            println!("cursor {cursor} end");
            continue;
        } else if rng.below(3) == 0 {
            let k = key(rng.below(KEYS));
            let current = store.get(&k).unwrap();
            if rng.below(4) == 0 {
                if let Some(cur) = &current {
                    // a re-put of the stored content writes nothing
                    let out = store
                        .put_own(k.clone(), cur.content.clone(), Some(cur.revision), 0, seal)
                        .unwrap();
                    assert_eq!(
                        out,
                        PutOutcome::Unchanged {
                            revision: cur.revision,
                            seq: cur.seq
                        }
                    );
                    continue;
                }
            }
            let (nonce, len) = (rng.next(), 100 + rng.below(1500) as usize);
            let expected = Some(current.map_or(0, |c| c.revision));
            let out = store
                .put_own(k.clone(), content(&k, nonce, len), expected, 0, seal)
                .unwrap();
            acks.push((out, k, nonce, len));
        } else {
            let n = 1 + rng.below(64);
            let mut items = Vec::new();
            let mut meta = Vec::new();
            for _ in 0..n {
                // duplicates within a batch happen on purpose
                let k = key(rng.below(KEYS));
                let (nonce, len) = (rng.next(), 100 + rng.below(1500) as usize);
                items.push((k.clone(), content(&k, nonce, len), None));
                meta.push((k, nonce, len));
            }
            for (out, (k, nonce, len)) in store.put_own_many(items, 0, seal).into_iter().zip(meta) {
                acks.push((out.unwrap(), k, nonce, len));
            }
        }
        store.flush().unwrap();
        for (out, k, nonce, len) in acks {
            if let PutOutcome::Written { revision, seq } = out {
                println!("ack {seq} {k} {revision} {nonce} {len} end");
            }
        }
    }
}

struct Ack {
    seq: u64,
    key: passerelle_model::RecordKey,
    revision: u64,
    nonce: u64,
    len: usize,
}

enum Line {
    Ready { head: u64, cursor: u64 },
    Ack(Ack),
    Cursor(u64),
    Purging(Vec<passerelle_model::RecordKey>),
}

/// A line cut short by the kill (no `end`) acknowledges nothing; a purge whose
/// announcement was cut short never started.
fn parse_line(line: &str) -> Option<Line> {
    let mut w = line.split_whitespace();
    let parsed = match w.next()? {
        "ready" => {
            let head = w.next()?.parse().ok()?;
            let cursor = w.next()?.parse().ok()?;
            return Some(Line::Ready { head, cursor });
        }
        "ack" => Line::Ack(Ack {
            seq: w.next()?.parse().ok()?,
            key: w.next()?.parse().ok()?,
            revision: w.next()?.parse().ok()?,
            nonce: w.next()?.parse().ok()?,
            len: w.next()?.parse().ok()?,
        }),
        "cursor" => Line::Cursor(w.next()?.parse().ok()?),
        "purging" => {
            let words: Vec<&str> = w.by_ref().collect();
            let (last, keys) = words.split_last()?;
            if *last != "end" {
                return None;
            }
            let keys = keys.iter().map(|k| k.parse().ok()).collect::<Option<_>>()?;
            return Some(Line::Purging(keys));
        }
        _ => return None,
    };
    (w.next()? == "end").then_some(parsed)
}

/// What the parent knows of an own key, from the lines so far.
enum Known {
    /// Its latest acknowledged version; nothing may have removed it since.
    Written(Ack),
    /// A purge was announced after the last acknowledged version.
    MaybePurged,
}

#[test]
fn sigkill_keeps_acknowledged_writes() {
    let seed = match std::env::var(SEED_ENV) {
        Ok(s) => s.parse().unwrap(),
        Err(_) => {
            let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
            t.as_nanos() as u64 ^ u64::from(std::process::id())
        }
    };
    eprintln!("crash test seed {seed} (set {SEED_ENV} to replay the timings)");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let exe = std::env::current_exe().unwrap();

    let mut acked_seqs: BTreeMap<u64, u64> = BTreeMap::new(); // seq -> round
    let mut known: HashMap<passerelle_model::RecordKey, Known> = HashMap::new();
    let mut acked_cursor = 0u64;
    let mut recovered_head = 0u64;
    let mut recovered_cursor = 0u64;
    let mut recovered_purged = 0u64;
    let mut total_killed_acks = 0usize;
    let mut total_purges = 0usize;
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--ignored", "--nocapture"])
            .args(["--test-threads=1"])
            .env(CHILD_DIR_ENV, &db)
            .env(CHILD_SEED_ENV, rng.next().to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });

        // let the child get going (first ack), then kill it after a random delay
        let mut lines = Vec::new();
        let started = Instant::now();
        let got_ack = loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    let is_ack = line.starts_with("ack ");
                    lines.push(line);
                    if is_ack {
                        break true;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break false,
            }
            if started.elapsed() > Duration::from_secs(60) {
                break false;
            }
        };
        std::thread::sleep(Duration::from_millis(10 + rng.below(400)));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        reader.join().unwrap();
        lines.extend(rx.try_iter());
        assert!(got_ack, "round {round}: child gave no ack within 60 s");
        assert_eq!(
            status.signal(),
            Some(9),
            "round {round}: child ended on its own ({status}) instead of by SIGKILL"
        );

        let mut ready = None;
        let mut round_acks = 0usize;
        for line in &lines {
            match parse_line(line) {
                Some(Line::Ready { head, cursor }) => ready = Some((head, cursor)),
                Some(Line::Ack(ack)) => {
                    assert!(
                        ack.seq > recovered_head,
                        "round {round}: ack seq {} reused",
                        ack.seq
                    );
                    if let Some(first) = acked_seqs.insert(ack.seq, round) {
                        panic!("seq {} acknowledged in round {first} and {round}", ack.seq);
                    }
                    round_acks += 1;
                    known.insert(ack.key.clone(), Known::Written(ack));
                }
                Some(Line::Cursor(c)) => {
                    assert!(c > acked_cursor, "round {round}: cursor {c} went back");
                    acked_cursor = c;
                }
                Some(Line::Purging(keys)) => {
                    total_purges += 1;
                    for k in keys {
                        known.insert(k, Known::MaybePurged);
                    }
                }
                None => {}
            }
        }
        // the child continued exactly where the previous reopen found head and cursor
        assert_eq!(
            ready,
            Some((recovered_head, recovered_cursor)),
            "round {round}: head and cursor at child start"
        );
        total_killed_acks += round_acks;

        let store = RecordStore::open(SledEngine::open(&db, CACHE).unwrap()).unwrap();
        let report = store.check_consistency().unwrap();
        assert!(report.is_ok(), "round {round}: {report}");
        let head = store.head_seq();
        let max_acked = *acked_seqs.keys().next_back().unwrap();
        assert!(
            head >= max_acked,
            "round {round}: head {head} below acknowledged seq {max_acked}"
        );
        assert!(
            head >= recovered_head,
            "round {round}: head went back from {recovered_head} to {head}"
        );
        let purged = store.purged_through_seq();
        assert!(
            purged >= recovered_purged && purged <= head,
            "round {round}: purged {purged}"
        );

        // the log is a snapshot: one entry per record (the bijection itself is checked
        // by check_consistency)
        let log = store.log_since(0, usize::MAX).unwrap();
        assert_eq!(log.len() as u64, report.records, "round {round}");

        // each own key's latest acknowledged version, or a newer one, is there
        for (k, state) in &known {
            let Known::Written(ack) = state else { continue };
            let rec = store
                .get(k)
                .unwrap()
                .unwrap_or_else(|| panic!("round {round}: acknowledged {k} missing"));
            assert!(
                rec.revision >= ack.revision,
                "round {round}: {k} went back from revision {} to {}",
                ack.revision,
                rec.revision
            );
            if rec.revision == ack.revision {
                assert_eq!(
                    rec.content,
                    content(k, ack.nonce, ack.len),
                    "round {round}: {k}"
                );
                assert_eq!(rec.seq, ack.seq, "round {round}: {k}");
            }
        }

        // the cursor covers exactly what is stored of the peer: every change up to it,
        // none after it
        let cursor = store.cursor(PEER).unwrap().unwrap_or(0);
        assert!(
            cursor >= acked_cursor,
            "round {round}: cursor {cursor} below acknowledged {acked_cursor}"
        );
        let mut expected: BTreeMap<passerelle_model::RecordKey, u64> = BTreeMap::new();
        for p in 1..=cursor {
            expected.insert(peer_key(p), p);
        }
        let prefix = format!("{PEER}/");
        let held: BTreeMap<passerelle_model::RecordKey, u64> = store
            .iter(None)
            .map(Result::unwrap)
            .filter(|r| r.key.to_string().starts_with(&prefix))
            .map(|r| {
                assert_eq!(r.content, content(&r.key, r.revision, 200));
                (r.key, r.revision)
            })
            .collect();
        assert_eq!(
            held, expected,
            "round {round}: peer records vs cursor {cursor}"
        );

        eprintln!(
            "round {round}: {round_acks} acks, head {head} (was {recovered_head}), \
             cursor {cursor}, purged through {purged}, {} records, {} log entries",
            report.records, report.log_entries
        );
        recovered_head = head;
        recovered_cursor = cursor;
        recovered_purged = purged;
    }
    assert!(total_killed_acks > 0);
    assert!(total_purges > 0, "no purge was exercised");
}
