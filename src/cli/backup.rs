//! `passerelle backup`, `restore` and `verify`: a consistent snapshot of a live node to a file, back into an empty data folder, and an offline check of a store or a backup.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{anyhow, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use passerelle_node::NodeConfig;
use tonic::codec::CompressionEncoding;

use crate::backup::{self, VerifyReport};
use crate::cli::records::print_status;
use crate::cli::ProfileArg;
use crate::client::Profile;
use crate::pb::v1 as pb;

#[derive(Args, Debug, Clone)]
pub struct BackupArgs {
    #[command(flatten)]
    pub profile: ProfileArg,
    /// The backup file to write (replaced atomically once complete and checked).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct RestoreArgs {
    /// The backup file.
    #[arg(long)]
    pub from: PathBuf,
    /// The node folder (with node.toml, as `init` made it; its data_dir is used) or, without
    /// node.toml, a folder whose `data` subfolder receives the store. The data folder must
    /// be absent or empty.
    #[arg(long)]
    pub dir: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct VerifyArgs {
    /// The node's configuration file (its trust file and signing key check the signatures).
    #[arg(long, env = "PASSERELLE_CONFIG")]
    pub config: PathBuf,
    /// Verify this backup file instead of the (stopped) node's store.
    #[arg(long)]
    pub from: Option<PathBuf>,
}

/// A byte progress bar on a terminal, hidden otherwise.
fn bytes_bar(total: Option<u64>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("valid template"),
    );
    bar
}

/// `passerelle backup`: streams `Admin.Backup` into a file; returns the exit code.
pub async fn backup(args: &BackupArgs) -> anyhow::Result<i32> {
    let profile = Profile::load(&args.profile.profile)?;
    let channel = profile.connect().await?;
    let mut client = pb::admin_client::AdminClient::new(channel)
        .accept_compressed(CompressionEncoding::Zstd)
        .accept_compressed(CompressionEncoding::Gzip);
    let mut stream = match client.backup(pb::BackupRequest {}).await {
        Ok(s) => s.into_inner(),
        Err(s) => {
            print_status("backup ", &s);
            return Ok(1);
        }
    };
    let partial = partial_path(&args.out);
    let file = std::fs::File::create(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let bar = bytes_bar(None);
    bar.set_message("receiving");
    let mut received = 0u64;
    loop {
        match stream.message().await {
            Ok(Some(chunk)) => {
                if received == 0 && chunk.total_bytes > 0 {
                    bar.set_length(chunk.total_bytes);
                }
                out.write_all(&chunk.data)
                    .with_context(|| format!("cannot write {}", partial.display()))?;
                received += chunk.data.len() as u64;
                bar.set_position(received);
            }
            Ok(None) => break,
            Err(s) => {
                bar.finish_and_clear();
                drop(out);
                let _ = std::fs::remove_file(&partial);
                print_status("backup ", &s);
                return Ok(1);
            }
        }
    }
    bar.finish_and_clear();
    let file = out
        .into_inner()
        .map_err(|e| anyhow!("cannot write {}: {}", partial.display(), e.error()))?;
    file.sync_all()
        .with_context(|| format!("cannot write {}", partial.display()))?;
    drop(file);
    // a stream cut short must never replace a good backup
    let header = match backup::check_file(&partial, &|_| {}) {
        Ok(h) => h,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e.context("the backup received is incomplete"));
        }
    };
    std::fs::rename(&partial, &args.out).with_context(|| {
        format!(
            "cannot rename {} to {}",
            partial.display(),
            args.out.display()
        )
    })?;
    println!(
        "wrote {}: backup of {} taken {}, {} records, head seq {}, {} bytes",
        args.out.display(),
        header.agency,
        header.created(),
        header.records,
        header.head_seq,
        received
    );
    println!("state digest {}", header.digest);
    Ok(0)
}

fn partial_path(out: &std::path::Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    out.with_file_name(name)
}

/// `passerelle restore`; returns the exit code.
pub fn restore(args: &RestoreArgs) -> anyhow::Result<i32> {
    let config = args.dir.join("node.toml");
    let (data_dir, agency, cache) = if config.exists() {
        let cfg = NodeConfig::load(&config)?;
        (
            cfg.path(&cfg.data_dir),
            Some(cfg.agency.clone()),
            cfg.store.cache_capacity_mb * 1024 * 1024,
        )
    } else {
        (args.dir.join("data"), None, 64 << 20)
    };
    let size = std::fs::metadata(&args.from).map(|m| m.len()).ok();
    let bar = bytes_bar(size);
    bar.set_message("restoring");
    let result = backup::restore(&args.from, &data_dir, agency.as_ref(), cache, &|n| {
        bar.inc(n)
    });
    bar.finish_and_clear();
    let report = result?;
    println!(
        "restored the backup of {} taken {} into {}: {} records, head seq {}",
        report.header.agency,
        report.header.created(),
        report.data_dir.display(),
        report.digest.records,
        report.consistency.head_seq
    );
    println!("state digest {}", report.digest);
    if !report.consistency.is_ok() {
        eprintln!(
            "the restored store is not consistent: {}",
            report.consistency
        );
        return Ok(1);
    }
    if config.exists() {
        println!(
            "check it with: passerelle verify --config {}",
            config.display()
        );
    }
    Ok(0)
}

/// `passerelle verify`; returns the exit code (1 when anything is wrong).
pub fn verify(args: &VerifyArgs) -> anyhow::Result<i32> {
    let cfg = NodeConfig::load(&args.config)?;
    let report = match &args.from {
        Some(from) => {
            let size = std::fs::metadata(from).map(|m| m.len()).ok();
            let bar = bytes_bar(size);
            bar.set_message("reading");
            let result = backup::verify_backup(&cfg, from, &|n| bar.inc(n));
            bar.finish_and_clear();
            let (header, report) = result?;
            println!(
                "backup of {} taken {} (head seq {})",
                header.agency,
                header.created(),
                header.head_seq
            );
            report
        }
        None => {
            let spinner = if std::io::stderr().is_terminal() {
                ProgressBar::new_spinner().with_message("checking the store")
            } else {
                ProgressBar::hidden()
            };
            spinner.enable_steady_tick(std::time::Duration::from_millis(120));
            let result = backup::verify_node(&cfg);
            spinner.finish_and_clear();
            result?
        }
    };
    print_verify(&report);
    Ok(if report.is_ok() { 0 } else { 1 })
}

fn print_verify(r: &VerifyReport) {
    let c = &r.consistency;
    println!(
        "store: {} records, {} log entries, head seq {}, purged through seq {}",
        c.records, c.log_entries, c.head_seq, c.purged_through_seq
    );
    println!(
        "signatures: {} of {} records verify",
        r.signatures_ok, r.records
    );
    println!("state digest {}", r.digest);
    if r.is_ok() {
        println!("ok");
    } else {
        let lines = r.problem_lines();
        eprintln!(
            "{} problem(s):",
            r.consistency.problems_total + r.problems_total
        );
        for l in lines {
            eprintln!("  {l}");
        }
    }
}
