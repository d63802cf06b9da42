//! Backup, restore and verify (PRODUCT.md section 6): a backup of a live node restores into a
//! fresh folder with the state digest of the snapshot; truncated, corrupt, foreign backups and
//! non-empty data folders are refused; verify finds a record altered in the store.
//!
//! Backups are taken over `Admin.Backup` (in-process client and the real `passerelle backup`);
//! restore and verify run as the real binary, as an operator would run them.

mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use passerelle::backup::{check_file, Header};
use passerelle::pb::v1 as pb;
use passerelle::pb::v1::admin_client::AdminClient;
use passerelle_store::{Engine, RecordStore, SledEngine, WriteBatch};
use tonic::transport::Channel;

const VDAB: &str = "be.vdab";
const BIN_TIMEOUT: Duration = Duration::from_secs(120);

async fn put(client: &mut VacanciesClient<Channel>, id: &str, title: &str) {
    let v = pb::Vacancy {
        title: title.into(),
        ..lasting_vacancy(id)
    };
    client
        .put(pb::PutVacancyRequest {
            vacancy: Some(v),
            expected_revision: None,
        })
        .await
        .unwrap_or_else(|s| panic!("put {id}: {s}"));
}

/// Runs the binary off the runtime's threads (the node under test serves on them).
async fn bin(args: Vec<OsString>) -> Run {
    tokio::task::spawn_blocking(move || run_bin(args, BIN_TIMEOUT))
        .await
        .expect("binary run")
}

fn args(a: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<OsString> {
    a.iter().map(|x| x.as_ref().to_owned()).collect()
}

/// Streams `Admin.Backup` as the operator into `out`; returns the checked header.
async fn backup_via_admin(node: &TestNode, out: &Path) -> Header {
    let mut client = AdminClient::new(node.channel("operator").await);
    let mut stream = client
        .backup(pb::BackupRequest {})
        .await
        .expect("backup call")
        .into_inner();
    let (mut bytes, mut total) = (Vec::new(), 0);
    while let Some(chunk) = stream.message().await.expect("backup chunk") {
        total = chunk.total_bytes;
        bytes.extend_from_slice(&chunk.data);
    }
    assert_eq!(total, bytes.len() as u64, "announced size");
    std::fs::write(out, &bytes).unwrap();
    check_file(out, &|_| {}).expect("a complete backup file")
}

/// Copies a node folder made by `init` without its store, as onto a new machine.
fn copy_node_folder(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_name() == "data" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_node_folder(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}

fn data_dir(node_dir: &Path) -> PathBuf {
    node_dir.join("data")
}

fn is_absent_or_empty(p: &Path) -> bool {
    std::fs::read_dir(p).map_or(true, |mut d| d.next().is_none())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_of_a_live_node_restores_to_the_same_state() {
    let node = TestNode::start(VDAB).await;
    let mut publisher = node.vacancies("publisher").await;
    for i in 0..40 {
        put(&mut publisher, &format!("V-{i}"), "Lasser TIG/MIG").await;
    }
    let before = node.head_seq();

    // a publisher keeps changing records while the backup is taken
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let mut publisher = node.vacancies("publisher").await;
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                put(
                    &mut publisher,
                    &format!("W-{}", n % 15),
                    &format!("Lasser {n}"),
                )
                .await;
                n += 1;
            }
            n
        })
    };
    wait_until_ok("writes under way", Duration::from_secs(30), || {
        if node.head_seq() >= before + 5 {
            Ok(())
        } else {
            Err(format!("head seq {}", node.head_seq()))
        }
    })
    .await;
    let live = node.dir.path().join("live.backup");
    let header = backup_via_admin(&node, &live).await;
    stop.store(true, Ordering::Relaxed);
    let writes = writer.await.unwrap();
    assert!(writes >= 5, "{writes} writes during the test");
    assert_eq!(header.agency, VDAB);
    assert!(
        header.head_seq >= before + 5 && header.head_seq <= node.head_seq(),
        "snapshot head {} between {} and {}",
        header.head_seq,
        before + 5,
        node.head_seq()
    );

    // restore on a "new machine": the node folder without its data, then verify it
    let target = tempfile::tempdir().unwrap();
    let dir = target.path().join(VDAB);
    copy_node_folder(&node.init.dir, &dir);
    let run = bin(args(&[&"restore", &"--from", &live, &"--dir", &dir])).await;
    assert!(run.ok(), "{run:#?}");
    assert!(
        run.stdout
            .contains(&format!("state digest {}", header.digest)),
        "{run:#?}"
    );
    let run = bin(args(&[&"verify", &"--config", &dir.join("node.toml")])).await;
    assert!(run.ok(), "{run:#?}");
    assert!(
        run.stdout
            .contains(&format!("state digest {}", header.digest)),
        "{run:#?}"
    );
    assert!(
        run.stdout.contains(&format!(
            "signatures: {} of {} records verify",
            header.records, header.records
        )),
        "{run:#?}"
    );

    // the restored store is the source at one moment: its head, and no version the
    // source did not have at that moment or later
    {
        let restored =
            RecordStore::open(SledEngine::open(data_dir(&dir), 8 << 20).unwrap()).unwrap();
        assert_eq!(restored.digest().unwrap().to_string(), header.digest);
        assert_eq!(restored.head_seq(), header.head_seq);
        assert!(restored.check_consistency().unwrap().is_ok());
        let mut n = 0;
        for r in restored.iter(None) {
            let r = r.unwrap();
            let now = node.node().store().get(&r.key).unwrap().expect("in source");
            assert!(now.revision >= r.revision, "{} ahead of the source", r.key);
            if now.seq <= header.head_seq {
                assert_eq!(now, r, "{} unchanged since the snapshot", r.key);
            }
            n += 1;
        }
        assert_eq!(n, header.records);
    }

    // with writes stopped, `passerelle backup` holds exactly the source's state
    let quiet = node.dir.path().join("quiet.backup");
    let run = bin(args(&[
        &"backup",
        &"--out",
        &quiet,
        &"--profile",
        &node.profile_path("operator"),
    ]))
    .await;
    assert!(run.ok(), "{run:#?}");
    let h2 = check_file(&quiet, &|_| {}).unwrap();
    let source = state_digest(&node);
    assert_eq!(h2.digest, source.to_string());
    assert_eq!(h2.records, source.records);
    assert_eq!(h2.head_seq, node.head_seq());
    assert!(run.stdout.contains(&h2.digest), "{run:#?}");

    let dir2 = target.path().join("second").join(VDAB);
    copy_node_folder(&node.init.dir, &dir2);
    let run = bin(args(&[&"restore", &"--from", &quiet, &"--dir", &dir2])).await;
    assert!(run.ok(), "{run:#?}");
    let run = bin(args(&[
        &"verify",
        &"--config",
        &node.init.config,
        &"--from",
        &quiet,
    ]))
    .await;
    assert!(run.ok(), "{run:#?}");
    assert!(
        run.stdout.contains(&format!("state digest {source}")),
        "{run:#?}"
    );
    let restored = RecordStore::open(SledEngine::open(data_dir(&dir2), 8 << 20).unwrap()).unwrap();
    assert_eq!(restored.digest().unwrap(), source);
    // cursors and metadata travel too: the whole store, not only the records
    assert_eq!(
        restored.cursors().unwrap(),
        node.node().store().cursors().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_corrupt_and_foreign_backups_are_refused() {
    let node = TestNode::start(VDAB).await;
    let mut publisher = node.vacancies("publisher").await;
    for i in 0..10 {
        put(&mut publisher, &format!("V-{i}"), "Lasser TIG/MIG").await;
    }
    // only operators may take backups
    let refused = AdminClient::new(node.channel("publisher").await)
        .backup(pb::BackupRequest {})
        .await;
    match refused {
        Err(s) => assert_eq!(s.code(), tonic::Code::PermissionDenied, "{s}"),
        Ok(_) => panic!("a publisher took a backup"),
    }

    let good = node.dir.path().join("good.backup");
    backup_via_admin(&node, &good).await;
    let bytes = std::fs::read(&good).unwrap();
    let work = tempfile::tempdir().unwrap();
    let truncated = work.path().join("truncated.backup");
    std::fs::write(&truncated, &bytes[..bytes.len() - 100]).unwrap();
    let corrupt = work.path().join("corrupt.backup");
    let mut flipped = bytes.clone();
    // inside the value of the last record, before the 41-byte trailer
    let at = flipped.len() - 41 - 10;
    flipped[at] ^= 0x20;
    std::fs::write(&corrupt, &flipped).unwrap();
    let not_backup = work.path().join("notes.txt");
    std::fs::write(&not_backup, "hello").unwrap();

    let cases: [(&str, &Path, &str); 3] = [
        ("truncated", &truncated, "the backup file is truncated"),
        ("corrupt", &corrupt, "SHA-256 does not match"),
        ("not a backup", &not_backup, "not a passerelle backup file"),
    ];
    for (what, file, expected) in cases {
        let dir = work.path().join(what.replace(' ', "-")).join(VDAB);
        copy_node_folder(&node.init.dir, &dir);
        let run = bin(args(&[&"restore", &"--from", &file, &"--dir", &dir])).await;
        assert!(!run.ok(), "{what} restored: {run:#?}");
        assert!(run.stderr.contains(expected), "{what}: {run:#?}");
        assert!(
            is_absent_or_empty(&data_dir(&dir)),
            "{what}: the refused restore wrote into the data folder"
        );
        // verify --from refuses it alike
        let run = bin(args(&[
            &"verify",
            &"--config",
            &dir.join("node.toml"),
            &"--from",
            &file,
        ]))
        .await;
        assert!(
            !run.ok() && run.stderr.contains(expected),
            "{what}: {run:#?}"
        );
    }

    // a data folder that holds anything is never overwritten
    let dir = work.path().join("twice").join(VDAB);
    copy_node_folder(&node.init.dir, &dir);
    let run = bin(args(&[&"restore", &"--from", &good, &"--dir", &dir])).await;
    assert!(run.ok(), "{run:#?}");
    let run = bin(args(&[&"restore", &"--from", &good, &"--dir", &dir])).await;
    assert!(!run.ok(), "{run:#?}");
    assert!(run.stderr.contains("is not empty"), "{run:#?}");

    // another agency's node refuses the backup
    let other = PendingNode::init("tg.anpe").await;
    let run = bin(args(&[
        &"restore",
        &"--from",
        &good,
        &"--dir",
        &other.node.init.dir,
    ]))
    .await;
    assert!(!run.ok(), "{run:#?}");
    assert!(run.stderr.contains("is a backup of be.vdab"), "{run:#?}");
    assert!(is_absent_or_empty(&data_dir(&other.node.init.dir)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_a_record_altered_in_the_store() {
    let mut node = TestNode::start(VDAB).await;
    let mut publisher = node.vacancies("publisher").await;
    for i in 0..5 {
        put(&mut publisher, &format!("V-{i}"), "Lasser TIG/MIG").await;
    }
    drop(publisher);
    let config = node.init.config.clone();

    // the running node holds its store: verify says so instead of waiting or corrupting it
    let run = bin(args(&[&"verify", &"--config", &config])).await;
    assert!(!run.ok(), "{run:#?}");
    assert!(run.stderr.contains("stop it first"), "{run:#?}");

    node.stop().await;
    let run = bin(args(&[&"verify", &"--config", &config])).await;
    assert!(run.ok(), "{run:#?}");
    assert!(
        run.stdout.contains("signatures: 5 of 5 records verify"),
        "{run:#?}"
    );

    // change one byte of a stored record's content behind the node's back: the record
    // still decodes and validates, only its origin's signature tells
    let altered_key = {
        let engine = SledEngine::open(data_dir(&node.init.dir), 8 << 20).unwrap();
        let (k, v) = engine
            .scan(b"r", b"r", 10)
            .unwrap()
            .into_iter()
            .find(|(_, v)| v.windows(3).any(|w| w == b"MIG"))
            .expect("a stored vacancy");
        let pos = v.windows(3).position(|w| w == b"MIG").unwrap();
        let mut v = v;
        v[pos + 1] = b'A';
        let mut b = WriteBatch::new();
        b.put(k.clone(), v);
        engine.apply(b).unwrap();
        engine.flush().unwrap();
        // raw key: `r`, kind tag, origin/id
        String::from_utf8_lossy(&k[2..]).into_owned()
    };
    let id = altered_key.rsplit('/').next().unwrap().to_owned();
    let run = bin(args(&[&"verify", &"--config", &config])).await;
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(
        run.stderr.contains(&format!(
            "be.vdab/vacancy/{id} revision 1: signature does not verify"
        )),
        "{run:#?}"
    );
    assert!(
        run.stdout.contains("signatures: 4 of 5 records verify"),
        "{run:#?}"
    );
}
