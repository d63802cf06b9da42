//! The record store on a data folder that fills up: a small tmpfs mounted for the test
//! (needs root; set PASSERELLE_SKIP_MOUNT_TESTS=1 to skip where mounting is not allowed).
//! Writes fail with `StoreError::Unwritable` naming the folder, nothing is half-written,
//! reads go on, and writes resume once space is back, without reopening the store.

#![cfg(target_os = "linux")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use passerelle_model::RecordKey;
use passerelle_store::{
    DiskProblem, Engine, RecordStore, SledEngine, SledOptions, StoreError, RESERVE_FILE,
};

const RESERVE: u64 = 2 << 20;

/// A tmpfs mounted on a fresh folder, unmounted (lazily if still busy) when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// None when PASSERELLE_SKIP_MOUNT_TESTS=1; panics when mounting is not permitted.
    fn mount(size: &str) -> Option<Tmpfs> {
        if std::env::var("PASSERELLE_SKIP_MOUNT_TESTS").is_ok_and(|v| v == "1") {
            eprintln!("PASSERELLE_SKIP_MOUNT_TESTS=1: skipped");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a tmpfs and needs root (or CAP_SYS_ADMIN): mount failed: {}\n\
             set PASSERELLE_SKIP_MOUNT_TESTS=1 to skip it",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, options: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(self.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "remount,{options}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(self.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(self.path()).status();
        }
    }
}

fn key(i: usize) -> RecordKey {
    format!("be.vdab/vacancy/V-{i:06}").parse().unwrap()
}

/// Content that tells which write it came from.
fn content(i: usize, round: u32) -> Vec<u8> {
    let mut c = format!("{i}#{round}#").into_bytes();
    c.resize(1500, b'a' + (i % 26) as u8);
    c
}

fn open(dir: &Path) -> RecordStore<SledEngine> {
    let engine = SledEngine::open_with(
        dir,
        SledOptions {
            cache_capacity_bytes: 8 << 20,
            reserve_bytes: RESERVE,
        },
    )
    .expect("open sled");
    RecordStore::open(engine).expect("open store")
}

fn assert_unwritable_full(e: &StoreError, dir: &Path) {
    match e {
        StoreError::Unwritable {
            folder, problem, ..
        } => {
            assert_eq!(folder, dir, "{e}");
            assert_eq!(*problem, DiskProblem::Full, "{e}");
        }
        other => panic!("expected Unwritable, got {other:?}"),
    }
    let text = e.to_string();
    assert!(
        text.contains("is full") && text.contains(&dir.display().to_string()),
        "{text}"
    );
}

/// Writes batches of `batch` records (each flushed) until one fails; returns what was
/// acknowledged (key index → round) and the error.
fn fill(
    store: &RecordStore<SledEngine>,
    acked: &mut BTreeMap<usize, u32>,
    from: usize,
    batch: usize,
    round: u32,
) -> (usize, StoreError) {
    let started = Instant::now();
    let mut i = from;
    for _ in 0..100_000 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the disk never filled"
        );
        let items: Vec<_> = (i..i + batch)
            .map(|k| (key(k), content(k, round), None))
            .collect();
        let results = store.put_own_many(items, 1, |_, _, _, _| b"seal".to_vec());
        if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
            assert!(
                results.iter().all(|r| r.is_err()),
                "a batch failed half-way"
            );
            return (i, e.clone());
        }
        if let Err(e) = store.flush() {
            // applied but maybe not durable: not acknowledged, and not counted
            return (i + batch, e);
        }
        for k in i..i + batch {
            acked.insert(k, round);
        }
        i += batch;
    }
    panic!("the disk never filled");
}

/// Every acknowledged write is there with its content; the store checks out; every
/// record there is complete (an unacknowledged batch is there whole or not at all).
fn check(store: &RecordStore<SledEngine>, acked: &BTreeMap<usize, u32>) {
    let report = store.check_consistency().expect("consistency check runs");
    assert!(report.is_ok(), "{report}");
    for (&i, &round) in acked {
        let r = store
            .get(&key(i))
            .expect("read")
            .unwrap_or_else(|| panic!("acknowledged {} missing", key(i)));
        assert_eq!(r.content, content(i, round), "{}", key(i));
    }
    let mut n = 0;
    for r in store.iter(None) {
        let r = r.expect("scan");
        assert_eq!(r.content.len(), 1500, "{}", r.key);
        n += 1;
    }
    assert!(n >= acked.len());
}

fn fill_recover_reopen(batch: usize) {
    let Some(fs) = Tmpfs::mount("16m") else {
        return;
    };
    let dir: PathBuf = fs.path().join("data");
    let mut acked = BTreeMap::new();
    {
        let store = open(&dir);
        assert!(dir.join(RESERVE_FILE).exists(), "no reserve file");
        let (next, e) = fill(&store, &mut acked, 0, batch, 1);
        println!(
            "batch {batch}: full after {} acknowledged records: {e}",
            acked.len()
        );
        assert_unwritable_full(&e, &dir);
        assert!(acked.len() > 100, "{} records only", acked.len());
        check(&store, &acked);

        // refused quickly and cleanly while full, reads go on
        for _ in 0..3 {
            let r = store.put_own(key(next), content(next, 1), None, 1, |_, _, _, _| {
                b"seal".to_vec()
            });
            assert_unwritable_full(&r.unwrap_err(), &dir);
        }
        check(&store, &acked);
        assert!(store.engine().write_failure().is_some());

        // more space: the very next write goes through, same store, no reopen
        fs.remount("size=64m");
        let r = store
            .put_own(key(next), content(next, 2), None, 1, |_, _, _, _| {
                b"seal".to_vec()
            })
            .expect("write after space came back");
        assert!(r.is_written());
        store.flush().expect("flush after space came back");
        acked.insert(next, 2);
        assert!(store.engine().write_failure().is_none());
        assert!(dir.join(RESERVE_FILE).exists(), "reserve not rewritten");
        // and overwrites of old records
        for i in 0..10 {
            store
                .put_own(key(i), content(i, 3), None, 2, |_, _, _, _| {
                    b"seal".to_vec()
                })
                .unwrap();
            acked.insert(i, 3);
        }
        store.flush().unwrap();
        check(&store, &acked);
    }
    let store = open(&dir);
    check(&store, &acked);
}

#[test]
fn single_record_writes_fill_the_disk_and_resume() {
    fill_recover_reopen(1);
}

#[test]
fn large_batches_fill_the_disk_and_resume() {
    fill_recover_reopen(500);
}

#[test]
fn a_store_reopened_on_a_full_disk_serves_reads_and_refuses_writes() {
    let Some(fs) = Tmpfs::mount("16m") else {
        return;
    };
    let dir = fs.path().join("data");
    let mut acked = BTreeMap::new();
    {
        let store = open(&dir);
        let (_, e) = fill(&store, &mut acked, 0, 50, 1);
        assert_unwritable_full(&e, &dir);
    }
    // a restart while the disk is still full: reads work, writes are refused
    let store = open(&dir);
    check(&store, &acked);
    let e = store
        .put_own(key(999_999), content(0, 9), None, 1, |_, _, _, _| {
            b"seal".to_vec()
        })
        .unwrap_err();
    assert_unwritable_full(&e, &dir);
    fs.remount("size=64m");
    store
        .put_own(key(999_999), content(999_999, 9), None, 1, |_, _, _, _| {
            b"seal".to_vec()
        })
        .expect("write once space is back");
    store.flush().unwrap();
    acked.insert(999_999, 9);
    check(&store, &acked);
    assert!(store.engine().size_on_disk().unwrap() > 0);
}
