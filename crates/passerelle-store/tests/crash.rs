//! Crash safety: a writer process is killed with SIGKILL mid-write, several times over
//! one sled directory, and every reopen must find a consistent store holding every
//! acknowledged (flushed) write, with the log continuing without a hole.
//!
//! The writer is this test binary re-executed with [`CHILD_DIR_ENV`] set, running only
//! the ignored `crash_child` test. SIGKILL ends the process but not the kernel, so this
//! covers process crashes, not power loss (that is what `flush`'s fsync is for).

#![cfg(unix)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use passerelle_store::{Engine, PutOutcome, RecordStore, SledEngine};

const CHILD_DIR_ENV: &str = "PASSERELLE_STORE_CRASH_DIR";
const CHILD_SEED_ENV: &str = "PASSERELLE_STORE_CRASH_CHILD_SEED";
const SEED_ENV: &str = "PASSERELLE_STORE_CRASH_SEED";
const ROUNDS: u64 = 5;
const KEYS: u64 = 300;
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

fn seal(k: &passerelle_model::RecordKey, revision: u64, _at: i64, _c: &[u8]) -> Vec<u8> {
    format!("{k}@{revision}").into_bytes()
}

/// The writer. Prints `ready <head>` once open, then `ack <seq> <key> <revision> <nonce>
/// <len> end` for each written version, only after the flush that made it durable.
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
    // libtest may have printed "test crash_child ... " without a newline
    println!();
    println!("ready {}", store.head_seq());
    // the parent kills us long before this; the bound only matters if it does not
    let deadline = Instant::now() + Duration::from_secs(60);
    for _ in 0..1_000_000 {
        if Instant::now() > deadline {
            break;
        }
        let mut acks = Vec::new();
        if rng.below(3) == 0 {
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
    key: passerelle_model::RecordKey,
    revision: u64,
    nonce: u64,
    len: usize,
}

fn parse_line(line: &str) -> Option<(u64, Option<Ack>)> {
    let mut w = line.split_whitespace();
    match w.next()? {
        "ready" => Some((w.next()?.parse().ok()?, None)),
        "ack" => {
            let seq = w.next()?.parse().ok()?;
            let ack = Ack {
                key: w.next()?.parse().ok()?,
                revision: w.next()?.parse().ok()?,
                nonce: w.next()?.parse().ok()?,
                len: w.next()?.parse().ok()?,
            };
            // a line cut short by the kill is not an acknowledgement
            (w.next()? == "end").then_some((seq, Some(ack)))
        }
        _ => None,
    }
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

    let mut acked: BTreeMap<u64, Ack> = BTreeMap::new();
    let mut recovered_head = 0u64;
    let mut total_killed_acks = 0usize;
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
                Some((head, None)) => ready = Some(head),
                Some((seq, Some(ack))) => {
                    assert!(seq > recovered_head, "round {round}: ack seq {seq} reused");
                    assert!(
                        acked.insert(seq, ack).is_none(),
                        "seq {seq} acknowledged twice"
                    );
                    round_acks += 1;
                }
                None => {}
            }
        }
        // the child continued exactly where the previous reopen found the head
        assert_eq!(
            ready,
            Some(recovered_head),
            "round {round}: head at child start"
        );
        total_killed_acks += round_acks;

        let store = RecordStore::open(SledEngine::open(&db, CACHE).unwrap()).unwrap();
        let report = store.check_consistency().unwrap();
        assert!(report.is_ok(), "round {round}: {report}");
        let max_acked = *acked.keys().next_back().unwrap();
        assert!(
            store.head_seq() >= max_acked,
            "round {round}: head {} below acknowledged seq {max_acked}",
            store.head_seq()
        );
        assert!(store.head_seq() >= recovered_head);
        // every acknowledged version of every round is still there
        let log = store.log_since(0, usize::MAX).unwrap();
        assert_eq!(log.len() as u64, store.head_seq());
        for (seq, ack) in &acked {
            let entry = &log[(*seq - 1) as usize];
            assert_eq!(
                (&entry.key, entry.revision),
                (&ack.key, ack.revision),
                "round {round}: log entry {seq}"
            );
            let rec = store.get(&ack.key).unwrap().unwrap();
            assert!(
                rec.revision >= ack.revision,
                "round {round}: {} went back",
                ack.key
            );
            if rec.revision == ack.revision {
                assert_eq!(rec.content, content(&ack.key, ack.nonce, ack.len));
                assert_eq!(rec.seq, *seq);
            }
        }
        eprintln!(
            "round {round}: {round_acks} acks, head {} (was {recovered_head}), {} records",
            store.head_seq(),
            store.engine().count_prefix(b"r").unwrap()
        );
        recovered_head = store.head_seq();
    }
    assert!(total_killed_acks > 0);
}
