//! `passerelle-bench`: runs scenarios against real nodes (the real `passerelle` binary) and prints `metric=value` lines.
//!
//! ```text
//! cargo build --release
//! target/release/passerelle-bench import --records 100000
//! target/release/passerelle-bench slowlink --records 20000
//! ```

mod gen;
mod query;
mod slowlink;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "passerelle benchmarks: each prints metric=value lines")]
struct Cli {
    /// The passerelle binary to measure.
    #[arg(long, default_value = "target/release/passerelle")]
    bin: PathBuf,
    /// Keep the nodes' folders here (default: a temporary folder).
    #[arg(long)]
    dir: Option<PathBuf>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// `passerelle vacancy import` of generated vacancies into a fresh node.
    Import {
        #[arg(long, default_value_t = 100_000)]
        records: u64,
        #[arg(long, default_value_t = 10_000)]
        batch: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Initial sync of generated vacancies from one node to a fresh peer, then live propagation.
    Sync {
        #[arg(long, default_value_t = 100_000)]
        records: u64,
        /// Puts measured for live propagation (put at A → visible at B).
        #[arg(long, default_value_t = 300)]
        live: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Initial sync through an in-process simulated link (delay, bandwidth cap, cuts): bytes on
    /// the wire per record, goodput as a share of the link, resumption after cuts.
    Slowlink {
        #[arg(long, default_value_t = 20_000)]
        records: u64,
        /// Round-trip time added by the link, milliseconds.
        #[arg(long, default_value_t = 300)]
        rtt_ms: u64,
        /// Cap of each direction, megabits per second.
        #[arg(long, default_value_t = 2.0)]
        mbit: f64,
        /// Cut the link this often, counted from the puller's start (0: never).
        #[arg(long, default_value_t = 30)]
        cut_every_secs: u64,
        /// How long each cut refuses connections; keep it above --backoff-max-secs.
        #[arg(long, default_value_t = 8)]
        cut_secs: u64,
        /// The puller's `[sync] backoff_max_secs`.
        #[arg(long, default_value_t = 5)]
        backoff_max_secs: u64,
        /// Vacancies put at the origin during a last cut, once the puller is live.
        #[arg(long, default_value_t = 1000)]
        outage_records: u64,
        /// A plain proxy (no delay, cap or cut): wire bytes per record of the initial sync and
        /// of live propagation.
        #[arg(long)]
        no_faults: bool,
        /// Puts streamed one by one once the puller is live (with --no-faults).
        #[arg(long, default_value_t = 300)]
        live: u64,
        /// Give up after this long, seconds (default: 600 + 50 ms per record).
        #[arg(long)]
        timeout_secs: Option<u64>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Each Analytics query over gRPC against a node folder that already holds the records
    /// (one kept by `--dir DIR import`, then `query --node DIR/node`).
    Query {
        /// The node folder (with node.toml and clients/analyst.toml).
        #[arg(long)]
        node: PathBuf,
        /// Timed calls per query.
        #[arg(long, default_value_t = 200)]
        rounds: usize,
    },
    /// Writes generated vacancies as JSONL to standard output.
    Generate {
        #[arg(long, default_value_t = 1000)]
        records: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.scenario {
        Scenario::Query { node, rounds } => query::run(&cli.bin, &node, rounds)?,
        Scenario::Generate { records, seed } => {
            let out = std::io::stdout();
            write_vacancies(&mut out.lock(), records, seed)?;
        }
        Scenario::Sync {
            records,
            live,
            seed,
        } => {
            let tmp = tempfile::tempdir()?;
            let dir = cli.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
            sync(&cli.bin, &dir, records, live, seed)?;
        }
        Scenario::Slowlink {
            records,
            rtt_ms,
            mbit,
            cut_every_secs,
            cut_secs,
            backoff_max_secs,
            outage_records,
            no_faults,
            live,
            timeout_secs,
            seed,
        } => {
            let tmp = tempfile::tempdir()?;
            let dir = cli.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
            let opts = slowlink::Options {
                records,
                rtt: Duration::from_millis(rtt_ms),
                mbit,
                cut_every: Duration::from_secs(cut_every_secs),
                cut: Duration::from_secs(cut_secs),
                backoff_max_secs,
                outage_records,
                no_faults,
                live,
                timeout: Duration::from_secs(
                    timeout_secs.unwrap_or(600 + records.saturating_mul(50) / 1000),
                ),
                seed,
            };
            slowlink::run(&cli.bin, &dir, &opts)?;
        }
        Scenario::Import {
            records,
            batch,
            seed,
        } => {
            let tmp = tempfile::tempdir()?;
            let dir = cli.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
            import(&cli.bin, &dir, records, batch, seed)?;
        }
    }
    Ok(())
}

fn write_vacancies(out: &mut impl Write, n: u64, seed: u64) -> anyhow::Result<u64> {
    write_vacancies_from(out, 0, n, seed)
}

/// Writes vacancies `first..first + n` (ids `V-{i:08}`); returns the bytes written.
fn write_vacancies_from(
    out: &mut impl Write,
    first: u64,
    n: u64,
    seed: u64,
) -> anyhow::Result<u64> {
    let mut g = gen::VacancyGen::new(seed);
    let mut bytes = 0;
    for i in first..first + n {
        let line = gen::to_json(&g.vacancy(i));
        bytes += line.len() as u64 + 1;
        writeln!(out, "{line}")?;
    }
    Ok(bytes)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A `passerelle serve` child process, killed on drop.
struct Node {
    child: Child,
    dir: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    fn start(bin: &Path, dir: &Path, agency: &str) -> anyhow::Result<Node> {
        init(bin, dir, agency)?;
        Node::serve(bin, dir, None)
    }

    /// Starts `passerelle serve`; with `live_at`, a thread watches the JSON logs and sends the
    /// moment the node reports a peer live at a cursor of at least that value.
    fn serve(
        bin: &Path,
        dir: &Path,
        live_at: Option<(u64, std::sync::mpsc::Sender<Instant>)>,
    ) -> anyhow::Result<Node> {
        let mut child = Command::new(bin)
            .args(["serve", "--log-format", "json", "--config"])
            .arg(dir.join("node.toml"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        // the last lines stay at hand: they say why a node that did not start stopped
        let stderr_reader = std::thread::spawn(move || {
            let mut tail = std::collections::VecDeque::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tail.len() == 10 {
                    tail.pop_front();
                }
                tail.push_back(line.clone());
                if let Some((want, tx)) = &live_at {
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                        continue;
                    };
                    let f = &v["fields"];
                    if f["message"] == "peer state"
                        && f["state"] == "live"
                        && f["cursor"].as_u64().unwrap_or(0) >= *want
                    {
                        let _ = tx.send(Instant::now());
                    }
                }
            }
            tail
        });
        let mut out = BufReader::new(stdout);
        let mut line = String::new();
        out.read_line(&mut line)?;
        if !line.starts_with("listening on") {
            let _ = child.kill();
            let _ = child.wait();
            let said: Vec<String> = stderr_reader.join().unwrap_or_default().into();
            bail!(
                "the node of {} did not start:\n{}",
                dir.display(),
                said.join("\n")
            );
        }
        // keep draining: the node prints more, and a closed pipe would fail its writes
        std::thread::spawn(move || for _ in out.lines() {});
        Ok(Node {
            child,
            dir: dir.to_path_buf(),
        })
    }

    /// Peak resident set size of the node process so far, bytes (VmHWM).
    fn peak_rss(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| anyhow!("no VmHWM in /proc status"))?;
        Ok(kb * 1024)
    }

    /// Current resident set size of the node process, bytes (VmRSS).
    fn rss(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| anyhow!("no VmRSS in /proc status"))?;
        Ok(kb * 1024)
    }

    fn disk_bytes(&self) -> u64 {
        dir_size(&self.dir.join("data"))
    }
}

/// `passerelle init` on a free loopback port; returns the port.
fn init(bin: &Path, dir: &Path, agency: &str) -> anyhow::Result<u16> {
    let port = free_port()?;
    let status = Command::new(bin)
        .args(["init", "--agency", agency, "--dir"])
        .arg(dir)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    if !status.success() {
        bail!("passerelle init failed");
    }
    Ok(port)
}

/// `puller` trusts `server` and pulls from it; `server` lists `puller` as a peer it serves.
fn federate(bin: &Path, server: &Path, server_port: u16, puller: &Path) -> anyhow::Result<()> {
    let run = |args: &[&std::ffi::OsStr]| -> anyhow::Result<()> {
        let out = Command::new(bin).args(args).output()?;
        if !out.status.success() {
            bail!("{:?}: {}", args, String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    };
    let agency = |dir: &Path| -> anyhow::Result<String> {
        let text = std::fs::read_to_string(dir.join("node.toml"))?;
        let line = text
            .lines()
            .find(|l| l.starts_with("agency"))
            .ok_or_else(|| anyhow!("no agency"))?;
        Ok(line.split('"').nth(1).unwrap_or_default().to_owned())
    };
    let (s_agency, p_agency) = (agency(server)?, agency(puller)?);
    for (from, to) in [(server, puller), (puller, server)] {
        let entry = from.join("trust-export.toml");
        run(&[
            "trust".as_ref(),
            "export".as_ref(),
            "--config".as_ref(),
            from.join("node.toml").as_os_str(),
            "--out".as_ref(),
            entry.as_os_str(),
        ])?;
        run(&[
            "trust".as_ref(),
            "add".as_ref(),
            "--config".as_ref(),
            to.join("node.toml").as_os_str(),
            entry.as_os_str(),
        ])?;
    }
    let endpoint = format!("https://127.0.0.1:{server_port}");
    run(&[
        "peer".as_ref(),
        "add".as_ref(),
        "--config".as_ref(),
        puller.join("node.toml").as_os_str(),
        "--agency".as_ref(),
        s_agency.as_ref(),
        "--endpoint".as_ref(),
        endpoint.as_ref(),
    ])?;
    run(&[
        "peer".as_ref(),
        "add".as_ref(),
        "--config".as_ref(),
        server.join("node.toml").as_os_str(),
        "--agency".as_ref(),
        p_agency.as_ref(),
    ])?;
    Ok(())
}

fn dir_size(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn import(bin: &Path, dir: &Path, records: u64, batch: u64, seed: u64) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let file = dir.join("vacancies.jsonl");
    let json_bytes = {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&file)?);
        let b = write_vacancies(&mut f, records, seed)?;
        f.flush()?;
        b
    };
    println!("records={records}");
    println!("json_bytes_per_record={}", json_bytes / records.max(1));
    let node = Node::start(bin, &dir.join("node"), "be.vdab")?;
    let profile = dir.join("node/clients/publisher.toml");
    let run = |label: &str| -> anyhow::Result<f64> {
        let started = Instant::now();
        let out = Command::new(bin)
            .args(["vacancy", "import"])
            .arg(&file)
            .args(["--batch", &batch.to_string(), "--profile"])
            .arg(&profile)
            .output()?;
        let secs = started.elapsed().as_secs_f64();
        if !out.status.success() {
            bail!(
                "{label} import failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(secs)
    };
    let first = run("first")?;
    println!("import_seconds={first:.2}");
    println!("import_records_per_s={:.0}", records as f64 / first);
    // let sled write back its buffers before measuring the folder
    std::thread::sleep(Duration::from_secs(1));
    let disk = node.disk_bytes();
    println!("disk_bytes={disk}");
    println!("disk_bytes_per_record={}", disk / records.max(1));
    let again = run("unchanged re-import")?;
    println!(
        "reimport_unchanged_records_per_s={:.0}",
        records as f64 / again
    );
    println!("node_peak_rss_bytes={}", node.peak_rss()?);
    // start-up: open the store and rebuild the analytics index from every record
    drop(node);
    let started = Instant::now();
    let node = Node::serve(bin, &dir.join("node"), None)?;
    println!("startup_seconds={:.2}", started.elapsed().as_secs_f64());
    println!("startup_rss_bytes={}", node.rss()?);
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn sync(bin: &Path, dir: &Path, records: u64, live: u64, seed: u64) -> anyhow::Result<()> {
    let (a_dir, b_dir) = (dir.join("a"), dir.join("b"));
    let a_port = init(bin, &a_dir, "be.vdab")?;
    init(bin, &b_dir, "tg.anpe")?;
    federate(bin, &a_dir, a_port, &b_dir)?;
    let file = dir.join("vacancies.jsonl");
    let json_bytes = {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&file)?);
        let b = write_vacancies(&mut f, records, seed)?;
        f.flush()?;
        b
    };
    let a = Node::serve(bin, &a_dir, None)?;
    let out = Command::new(bin)
        .args(["vacancy", "import"])
        .arg(&file)
        .arg("--profile")
        .arg(a_dir.join("clients/publisher.toml"))
        .output()?;
    if !out.status.success() {
        bail!("import failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    println!("records={records}");
    println!("json_bytes_per_record={}", json_bytes / records.max(1));
    let (tx, rx) = std::sync::mpsc::channel();
    let started = Instant::now();
    let b = Node::serve(bin, &b_dir, Some((records, tx)))?;
    let live_at = rx
        .recv_timeout(Duration::from_secs(600))
        .map_err(|_| anyhow!("the peer did not report live within 600 s"))?;
    let secs = live_at.duration_since(started).as_secs_f64();
    println!("initial_sync_seconds={secs:.2}");
    println!("initial_sync_records_per_s={:.0}", records as f64 / secs);
    std::thread::sleep(Duration::from_secs(1));
    println!(
        "receiver_disk_bytes_per_record={}",
        b.disk_bytes() / records.max(1)
    );
    println!("receiver_peak_rss_bytes={}", b.peak_rss()?);
    println!("sender_peak_rss_bytes={}", a.peak_rss()?);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let lat = rt.block_on(live_latency(&a_dir, &b_dir, live, seed))?;
    println!("live_puts={}", lat.len());
    print_latencies("live_propagation", lat.iter().map(|l| l.from_ack));
    print_latencies("live_put_ack", lat.iter().map(|l| l.ack));
    print_latencies("live_put_to_visible", lat.iter().map(|l| l.from_send));
    drop(b);
    drop(a);
    Ok(())
}

/// The vacancies [`live_latency`] puts, in order.
fn live_vacancies(n: u64, seed: u64) -> impl Iterator<Item = passerelle_model::Vacancy> {
    let mut g = gen::VacancyGen::new(seed ^ 0x5eed);
    (0..n).map(move |i| {
        let mut v = g.vacancy(i);
        v.id = format!("LIVE-{i:06}");
        v
    })
}

/// `{name}_p50_ms`, p90, p99 and max of `durations`.
fn print_latencies(name: &str, durations: impl Iterator<Item = Duration>) {
    let mut ms: Vec<f64> = durations.map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(|x, y| x.total_cmp(y));
    for (p_name, p) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)] {
        println!("{name}_{p_name}_ms={:.3}", percentile(&ms, p));
    }
    println!("{name}_max_ms={:.3}", ms.last().copied().unwrap_or(0.0));
}

/// One live put's timings.
struct LiveLatency {
    /// Put sent at A → acknowledged (A's write and flush).
    ack: Duration,
    /// Put acknowledged at A → visible through B's API: what the issue calls propagation.
    from_ack: Duration,
    /// Put sent at A → visible at B.
    from_send: Duration,
}

/// Puts one vacancy at a time at A and polls B's API (Get after Get) until it is visible there.
async fn live_latency(
    a_dir: &Path,
    b_dir: &Path,
    n: u64,
    seed: u64,
) -> anyhow::Result<Vec<LiveLatency>> {
    use passerelle::pb::v1 as pb;
    let a = passerelle::client::Profile::load(&a_dir.join("clients/publisher.toml"))?
        .connect()
        .await?;
    let b = passerelle::client::Profile::load(&b_dir.join("clients/analyst.toml"))?
        .connect()
        .await?;
    let mut put = pb::vacancies_client::VacanciesClient::new(a);
    let mut get = pb::vacancies_client::VacanciesClient::new(b);
    let mut out = Vec::with_capacity(n as usize);
    for v in live_vacancies(n, seed) {
        let wire = passerelle::convert::vacancy_out(&v);
        let started = Instant::now();
        put.put(pb::PutVacancyRequest {
            vacancy: Some(wire),
            expected_revision: None,
        })
        .await?;
        let acked = Instant::now();
        loop {
            let r = get
                .get(pb::GetVacancyRequest {
                    origin: "be.vdab".into(),
                    id: v.id.clone(),
                })
                .await;
            if r.is_ok() {
                out.push(LiveLatency {
                    ack: acked - started,
                    from_ack: acked.elapsed(),
                    from_send: started.elapsed(),
                });
                break;
            }
            if started.elapsed() > Duration::from_secs(10) {
                bail!("{} not visible at B after 10 s", v.id);
            }
            // no timer: tokio's sleep rounds up to whole milliseconds, which the first figures
            // (until 2026-11-29 evening) included; one Get round trip is the resolution now
            tokio::task::yield_now().await;
        }
    }
    Ok(out)
}
