//! A node whose data folder fills up or turns read-only (GitHub issue "Hardening", item 6).
//!
//! The data folder is a small tmpfs mounted for the test, so these tests need root (CI
//! runs as root); where mounting is not allowed they fail, unless
//! PASSERELLE_SKIP_MOUNT_TESTS=1. Required: writes refused with a clear status naming
//! the folder (never a panic or a hang), nothing half-written, reads served meanwhile,
//! writes back without a restart once space returns, every acknowledged write kept
//! across a restart.

#![cfg(target_os = "linux")]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use passerelle::pb::v1 as pb;
use passerelle_model::Kind;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// A tmpfs mounted on a fresh folder; unmounted when dropped (lazily if still busy, so a
/// failing test never leaves a mount behind). Declare it before the node, so that the
/// node (and its open files) goes first.
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
            "this test mounts a tmpfs as the node's data folder and needs root (or \
             CAP_SYS_ADMIN): mount failed: {}\nset PASSERELLE_SKIP_MOUNT_TESTS=1 to skip it",
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
            "mount -o remount,{options}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }

    /// A file of `mib` MiB on the tmpfs, to take space that the test gives back later.
    fn filler(&self, mib: usize) -> PathBuf {
        let path = self.path().join("filler");
        std::fs::write(&path, vec![0x5a; mib << 20]).expect("write filler");
        path
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

/// Inits be.vdab with its data folder at `data` (on the tmpfs), not yet serving.
async fn node_with_data_at(data: &Path) -> PendingNode {
    let pending = PendingNode::init("be.vdab").await;
    let config = &pending.node.init.config;
    let text = std::fs::read_to_string(config).unwrap();
    assert!(text.contains("data_dir = \"data\""), "{text}");
    let text = text.replace(
        "data_dir = \"data\"",
        &format!("data_dir = {:?}", data.display().to_string()),
    );
    std::fs::write(config, text).unwrap();
    assert_eq!(pending.node.config().data_dir, data);
    pending
}

fn vacancy(id: &str) -> pb::Vacancy {
    pb::Vacancy {
        title: format!("Lasser {id}"),
        description: format!("{id}: {}", "Lassen van constructies. ".repeat(60)),
        ..lasting_vacancy(id)
    }
}

fn put(v: pb::Vacancy) -> pb::PutVacancyRequest {
    pb::PutVacancyRequest {
        vacancy: Some(v),
        expected_revision: None,
    }
}

fn get(id: &str) -> pb::GetVacancyRequest {
    pb::GetVacancyRequest {
        origin: String::new(),
        id: id.into(),
    }
}

fn id(i: usize) -> String {
    format!("V-{i:06}")
}

/// RESOURCE_EXHAUSTED saying that the data folder, named, is full.
fn assert_full(s: &Status, data: &Path) {
    assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
    let folder = data.display().to_string();
    assert!(
        s.message()
            .contains(&format!("data folder {folder} is full"))
            && s.message().contains("cannot write"),
        "unclear message: {}",
        s.message()
    );
}

/// Puts `vacancy(id(i))` from `from` on until a put fails (at most 20 000 puts, 120 s);
/// returns the ids acknowledged, and the failed index with its status.
async fn fill(
    client: &mut VacanciesClient<Channel>,
    from: usize,
    acked: &mut BTreeSet<String>,
) -> (usize, Status) {
    let started = Instant::now();
    for i in from..from + 20_000 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the data folder never filled up ({} puts)",
            i - from
        );
        let call = tokio::time::timeout(Duration::from_secs(30), client.put(put(vacancy(&id(i)))));
        match call.await.expect("a put hung for 30 s") {
            Ok(r) => {
                let r = r.into_inner();
                assert_eq!((r.revision, r.changed), (1, true), "{}", id(i));
                acked.insert(id(i));
            }
            Err(s) => return (i, s),
        }
    }
    panic!("the data folder never filled up");
}

async fn health(ch: Channel) -> i32 {
    HealthClient::new(ch)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health check")
        .into_inner()
        .status
}

/// Every vacancy the node lists, checked whole; panics on a read error.
async fn listed(node: &TestNode) -> BTreeSet<String> {
    let all = passerelle::cli::records::list_all(
        node.channel("analyst").await,
        Kind::Vacancy,
        &passerelle::cli::records::ListQuery::default(),
        None,
    )
    .await
    .expect("list while the disk is full");
    all.iter().map(|r| r.id().to_owned()).collect()
}

/// Reads while full (or after): every acknowledged write is there whole, nothing else is
/// there except, whole, the writes whose calls failed (and records changed since, in
/// `failed` too); health says SERVING; the store checks out.
async fn assert_reads(node: &TestNode, acked: &BTreeSet<String>, failed: &BTreeSet<String>) {
    let ids = listed(node).await;
    let missing: Vec<&String> = acked.difference(&ids).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not listed: {missing:?}"
    );
    let extra: Vec<&String> = ids
        .difference(acked)
        .filter(|i| !failed.contains(*i))
        .collect();
    assert!(extra.is_empty(), "listed but never written: {extra:?}");
    let mut v = node.vacancies("analyst").await;
    // every record listed beyond the acknowledged ones, and a sample of the others
    let sample = ids
        .iter()
        .filter(|i| !acked.contains(*i))
        .chain(acked.iter().step_by(97))
        .chain(acked.iter().next_back());
    for i in sample {
        let got = v.get(get(i)).await.expect("get").into_inner();
        let want = vacancy(i);
        assert_eq!(
            (&got.title, &got.description),
            (&want.title, &want.description),
            "{i}"
        );
        if acked.contains(i) {
            assert_eq!(got.revision, 1, "{i}");
        }
    }
    assert_eq!(
        health(node.channel("analyst").await).await,
        ServingStatus::Serving as i32
    );
    assert_store_consistent(node);
}

/// Retries the put of `i` (100 ms apart, at most 30 s) until it goes through.
async fn put_until_accepted(client: &mut VacanciesClient<Channel>, i: usize) -> Duration {
    let started = Instant::now();
    loop {
        match client.put(put(vacancy(&id(i)))).await {
            Ok(r) => {
                assert_eq!(r.into_inner().revision, 1);
                return started.elapsed();
            }
            Err(s) if started.elapsed() < Duration::from_secs(30) => {
                assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(s) => panic!("writes did not come back within 30 s: {s:?}"),
        }
    }
}

/// What `passerelle status` says about the store's writes (empty: it writes).
async fn write_failure(node: &TestNode) -> String {
    let mut admin =
        passerelle::pb::v1::admin_client::AdminClient::new(node.channel("operator").await);
    admin
        .status(pb::StatusRequest {})
        .await
        .expect("status while the disk is full")
        .into_inner()
        .store_write_failure
}

fn metrics_page(node: &TestNode) -> String {
    node.handle.as_ref().expect("running").metrics.render()
}

// multi-threaded: the node's blocking store calls and the test's client share the runtime
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_data_folder_refuses_writes_keeps_reads_and_recovers_without_restart() {
    let Some(fs) = Tmpfs::mount("32m") else {
        return;
    };
    let data = fs.path().join("data");
    let filler = fs.filler(12);
    let mut node = node_with_data_at(&data).await.start().await;
    assert!(
        data.join(passerelle_store::RESERVE_FILE).exists(),
        "the store keeps no reserve file"
    );
    let mut client = node.vacancies("publisher").await;
    let mut acked = BTreeSet::new();
    let mut failed = BTreeSet::new();

    // 1. fill the folder with puts until one fails
    let t = Instant::now();
    let (next, status) = fill(&mut client, 0, &mut acked).await;
    println!(
        "full after {} puts in {:.1}s: {:?} {}",
        acked.len(),
        t.elapsed().as_secs_f64(),
        status.code(),
        status.message()
    );
    assert_full(&status, &data);
    assert!(acked.len() > 200, "only {} puts before full", acked.len());
    failed.insert(id(next));

    // 2. further writes are refused at once, the same way: puts, an import, a withdraw
    for _ in 0..3 {
        let t = Instant::now();
        let s = client.put(put(vacancy(&id(next)))).await.unwrap_err();
        assert_full(&s, &data);
        assert!(t.elapsed() < Duration::from_secs(5), "slow refusal");
    }
    let batch: Vec<pb::ImportVacancyRequest> = (next + 1..next + 11)
        .map(|i| pb::ImportVacancyRequest {
            vacancy: Some(vacancy(&id(i))),
        })
        .collect();
    failed.extend((next + 1..next + 11).map(id));
    let s = client
        .import(tokio_stream::iter(batch))
        .await
        .expect_err("an import while full");
    assert_full(&s, &data);
    let s = client
        .withdraw(pb::WithdrawVacancyRequest {
            id: id(0),
            expected_revision: None,
        })
        .await
        .unwrap_err();
    assert_full(&s, &data);

    // 3. reads go on: list, get, health; the store is consistent; status and metrics say why
    //    writes are refused
    assert_reads(&node, &acked, &failed).await;
    let head = node.head_seq();
    let why = write_failure(&node).await;
    assert!(
        why.contains("full") && why.contains(&data.display().to_string()),
        "status: {why:?}"
    );
    assert!(
        metrics_page(&node).contains("passerelle_store_writable 0"),
        "metrics while full"
    );

    // 4. space comes back (the filler goes): writes resume, same node, no restart
    std::fs::remove_file(&filler).unwrap();
    let waited = put_until_accepted(&mut client, next).await;
    println!(
        "writes back {:.2}s after the filler went",
        waited.as_secs_f64()
    );
    acked.insert(id(next));
    failed.remove(&id(next));
    assert!(node.head_seq() > head);
    assert_eq!(
        write_failure(&node).await,
        "",
        "status once writes are back"
    );
    assert!(metrics_page(&node).contains("passerelle_store_writable 1"));
    let r = client
        .withdraw(pb::WithdrawVacancyRequest {
            id: id(1),
            expected_revision: None,
        })
        .await
        .expect("withdraw after recovery")
        .into_inner();
    assert_eq!((r.revision, r.changed), (2, true));
    acked.remove(&id(1));
    failed.insert(id(1)); // a tombstone now, still listed

    // 5. full again, and back again by growing the file system
    let (next2, status) = fill(&mut client, next + 100, &mut acked).await;
    println!("full again after {} puts in all", acked.len());
    assert_full(&status, &data);
    failed.insert(id(next2));
    assert_reads(&node, &acked, &failed).await;
    fs.remount("size=64m");
    put_until_accepted(&mut client, next2).await;
    acked.insert(id(next2));
    failed.remove(&id(next2));
    assert_reads(&node, &acked, &failed).await;

    // 6. a restart keeps every acknowledged write
    let head = node.head_seq();
    drop(client);
    restart_releasing_port(&mut node).await;
    assert_eq!(node.head_seq(), head, "the sync log head moved");
    assert_reads(&node, &acked, &failed).await;
    let v1 = node
        .vacancies("analyst")
        .await
        .get(get(&id(1)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v1.status, pb::VacancyStatus::Withdrawn as i32);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_data_folder_is_refused_clearly_and_serves_again_once_writable() {
    let Some(fs) = Tmpfs::mount("32m") else {
        return;
    };
    let data = fs.path().join("data");
    let mut node = node_with_data_at(&data).await.start().await;
    let mut client = node.vacancies("publisher").await;
    for i in 0..20 {
        client.put(put(vacancy(&id(i)))).await.expect("put");
    }
    let acked: BTreeSet<String> = (0..20).map(id).collect();
    let head = node.head_seq();
    drop(client);
    node.stop().await;

    // Linux refuses `remount,ro` while the store's file is open for writing ("mount point
    // is busy"), so a folder only turns read-only under a stopped node (or by the kernel,
    // after a file-system error). The node then refuses to start, naming the folder:
    // sled opens its file for writing, even to read.
    fs.remount("ro");
    let listener = tokio::net::TcpListener::bind(node.listen_addr())
        .await
        .expect("bind");
    let started = tokio::time::timeout(
        Duration::from_secs(60),
        passerelle::server::start(node.config(), Some(listener)),
    )
    .await
    .expect("start on a read-only folder hung");
    let e = match started {
        Ok(_) => panic!("the node started on a read-only data folder"),
        Err(e) => format!("{e:#}"),
    };
    println!("start on a read-only folder: {e}");
    let folder = data.display().to_string();
    assert!(
        e.contains(&format!("data folder {folder} is read-only")) && e.contains("cannot write"),
        "unclear error: {e}"
    );
    // nothing was changed on the way
    fs.remount("rw");
    node.start_again().await;
    assert_eq!(node.head_seq(), head);
    assert_reads(&node, &acked, &BTreeSet::new()).await;
    let r = node
        .vacancies("publisher")
        .await
        .put(put(vacancy(&id(20))))
        .await
        .expect("put once writable")
        .into_inner();
    assert_eq!(r.revision, 1);
    node.stop().await;
}

/// A small ext4 image loop-mounted with `errors=remount-ro`: the kernel turns it
/// read-only at once on a file-system error, open files or not (what `remount,ro`
/// cannot do). Unmounted when dropped (lazily if still busy).
struct Ext4 {
    dir: tempfile::TempDir,
    image: PathBuf,
    _image_dir: tempfile::TempDir,
}

impl Ext4 {
    fn mount() -> Option<Ext4> {
        if std::env::var("PASSERELLE_SKIP_MOUNT_TESTS").is_ok_and(|v| v == "1") {
            eprintln!("PASSERELLE_SKIP_MOUNT_TESTS=1: skipped");
            return None;
        }
        let image_dir = tempfile::tempdir().expect("tempdir");
        let image = image_dir.path().join("fs.img");
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(64 << 20))
            .expect("image file");
        run("mkfs.ext4", &["-q".as_ref(), image.as_os_str()]);
        let dir = tempfile::tempdir().expect("tempdir");
        run(
            "mount",
            &[
                "-o".as_ref(),
                "loop,errors=remount-ro".as_ref(),
                image.as_os_str(),
                dir.path().as_os_str(),
            ],
        );
        Some(Ext4 {
            dir,
            image,
            _image_dir: image_dir,
        })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// What the kernel does on a file-system error: the file system goes read-only.
    fn trigger_error(&self) {
        let out = Command::new("findmnt")
            .args(["-n", "-o", "SOURCE"])
            .arg(self.path())
            .output()
            .expect("run findmnt");
        let source = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let dev = source.rsplit('/').next().unwrap_or_default();
        let trigger = format!("/sys/fs/ext4/{dev}/trigger_fs_error");
        std::fs::write(&trigger, "passerelle disk_full test")
            .unwrap_or_else(|e| panic!("write {trigger}: {e}"));
    }

    /// Unmount, repair, mount again (read-write).
    fn repair(&self) {
        run("umount", &[self.path().as_os_str()]);
        // exit code 1: errors fixed
        let status = Command::new("e2fsck")
            .arg("-fy")
            .arg(&self.image)
            .output()
            .expect("run e2fsck")
            .status;
        assert!(matches!(status.code(), Some(0 | 1)), "e2fsck: {status}");
        run(
            "mount",
            &[
                "-o".as_ref(),
                "loop,errors=remount-ro".as_ref(),
                self.image.as_os_str(),
                self.path().as_os_str(),
            ],
        );
    }
}

impl Drop for Ext4 {
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

fn run(cmd: &str, args: &[&std::ffi::OsStr]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {cmd}: {e} (needs e2fsprogs and util-linux)"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed (this test loop-mounts an ext4 image and needs root and a \
         free loop device; set PASSERELLE_SKIP_MOUNT_TESTS=1 to skip it): {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_folder_turning_read_only_under_a_running_node_refuses_writes_and_keeps_reads() {
    let Some(fs) = Ext4::mount() else {
        return;
    };
    let data = fs.path().join("data");
    let mut node = node_with_data_at(&data).await.start().await;
    let mut client = node.vacancies("publisher").await;
    let mut acked = BTreeSet::new();
    for i in 0..300 {
        client.put(put(vacancy(&id(i)))).await.expect("put");
        acked.insert(id(i));
    }

    fs.trigger_error();
    let folder = data.display().to_string();
    let mut failed = BTreeSet::new();
    for i in 300..305 {
        let t = Instant::now();
        let call = tokio::time::timeout(Duration::from_secs(30), client.put(put(vacancy(&id(i)))));
        let s = call
            .await
            .expect("a put hung on a read-only folder")
            .expect_err("a put on a read-only folder");
        assert_eq!(s.code(), Code::Unavailable, "{s:?}");
        assert!(
            s.message()
                .contains(&format!("data folder {folder} is read-only"))
                && s.message().contains("cannot write"),
            "unclear message: {}",
            s.message()
        );
        assert!(t.elapsed() < Duration::from_secs(5), "slow refusal");
        failed.insert(id(i));
    }
    // reads go on from what the store holds in memory and on disk
    assert_reads(&node, &acked, &failed).await;

    // the kernel keeps an ext4 that hit an error read-only until it is unmounted and
    // repaired, which needs the node to close its files: stop (the unflushed write is
    // reported), repair, start
    drop(client);
    let handle = node.handle.take().expect("running");
    let stopped = handle.shutdown().await;
    println!("shutdown on a read-only folder: {stopped:?}");
    fs.repair();
    node.start_again().await;
    assert_reads(&node, &acked, &failed).await;
    let r = node
        .vacancies("publisher")
        .await
        .put(put(vacancy(&id(400))))
        .await
        .expect("put after repair")
        .into_inner();
    assert_eq!(r.revision, 1);
    node.stop().await;
}
