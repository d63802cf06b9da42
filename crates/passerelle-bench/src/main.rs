//! `passerelle-bench`: runs scenarios against real nodes (the real `passerelle` binary) and prints `metric=value` lines.
//!
//! ```text
//! cargo build --release
//! target/release/passerelle-bench import --records 100000
//! ```

mod gen;

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
        Scenario::Generate { records, seed } => {
            let out = std::io::stdout();
            write_vacancies(&mut out.lock(), records, seed)?;
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
    let mut g = gen::VacancyGen::new(seed);
    let mut bytes = 0;
    for i in 0..n {
        let line = serde_json::to_string(&g.vacancy(i))?;
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
        let mut child = Command::new(bin)
            .args(["serve", "--config"])
            .arg(dir.join("node.toml"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().expect("piped");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        if !line.starts_with("listening on") {
            bail!("node did not start: {line:?}");
        }
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

    fn disk_bytes(&self) -> u64 {
        dir_size(&self.dir.join("data"))
    }
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
    Ok(())
}
