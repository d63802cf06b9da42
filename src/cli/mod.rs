//! The `passerelle` command line: one binary for sysadmins, publishers and analysts.

pub mod admin;
pub mod backup;
pub mod federate;
pub mod files;
pub mod init;
pub mod peertest;
pub mod query;
pub mod records;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "passerelle",
    version,
    about = "Federated data exchange between public employment agencies"
)]
pub struct Cli {
    /// Log output: pretty for people, json for log collectors.
    #[arg(
        long,
        value_enum,
        global = true,
        default_value = "pretty",
        env = "PASSERELLE_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a node on loopback with sample data and show it back.
    Demo(DemoArgs),
    /// Create an agency's PKI, node certificate, signing key, client profiles and node.toml.
    Init(init::InitArgs),
    /// Serve a node as configured.
    Serve {
        /// The node's configuration file.
        #[arg(long, env = "PASSERELLE_CONFIG")]
        config: PathBuf,
    },
    /// Exchange trust with a partner agency: export ours, add theirs.
    #[command(subcommand)]
    Trust(federate::TrustCommand),
    /// Partner nodes: add a [[peers]] entry; block or unblock a partner (operator profile).
    #[command(subcommand)]
    Peer(admin::PeerCommand),
    /// The node at a glance: records, each peer's sync, certificate expiry (operator profile).
    Status(admin::StatusArgs),
    /// Pull from the peers now, skipping backoff; `--from-start` pulls again from 0.
    Sync(admin::SyncArgs),
    /// Analytics: skills, occupations, shortages, gap, trend.
    #[command(subcommand)]
    Query(query::QueryCommand),
    /// Stream a consistent snapshot of the running node into a file (operator profile).
    Backup(backup::BackupArgs),
    /// Write a backup file into an empty data folder.
    Restore(backup::RestoreArgs),
    /// Check a stopped node's store (or a backup file): signatures, log, digest.
    Verify(backup::VerifyArgs),
    /// Vacancies: put, get, list, withdraw, import.
    #[command(subcommand)]
    Vacancy(records::RecordCommand),
    /// Shortage-list lines: put, get, list, import.
    #[command(subcommand)]
    Shortage(records::RecordCommand),
    /// Supply cells: put, get, list, import.
    #[command(subcommand)]
    Supply(records::RecordCommand),
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Keep the demo's node folder here instead of a temporary folder.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// The client profile option every client command takes.
#[derive(Args, Debug, Clone)]
pub struct ProfileArg {
    /// Client profile written by `passerelle init` (node address, certificate, key, CA).
    #[arg(long, env = "PASSERELLE_PROFILE")]
    pub profile: PathBuf,
}

/// Output formats of read commands.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq, Default)]
pub enum OutputFormat {
    #[default]
    Table,
    Csv,
    Json,
}
