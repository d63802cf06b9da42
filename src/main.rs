//! The `passerelle` binary: parses the command line and hands over to the library.

use clap::Parser;
use passerelle::cli::{self, Cli, Command, LogFormat};
use tracing_subscriber::EnvFilter;

// glibc's malloc was a third of the CPU of start-up and a fifth of an import (profiled with
// perf): decoding records and the analytics index allocate many small strings
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h (`enum mi_option_e`, the same index in v2 and v3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc keeps freed pages for a while before giving them back to the system; a node that
/// bulk-writes frees and allocates a lot, and held 18-27 % more resident memory that way
/// (BENCHMARKS.md). Freed pages go back at once unless `MIMALLOC_PURGE_DELAY` says otherwise.
fn tune_allocator() {
    // SAFETY: sets the default of one of mimalloc's integer options, a plain store in its
    // option table, before any thread is started
    unsafe { libmimalloc_sys::mi_option_set_default(MI_OPTION_PURGE_DELAY, 0) };
}

fn init_logs(format: LogFormat, default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
}

fn main() {
    tune_allocator();
    passerelle_pki::install_crypto_provider();
    let cli = Cli::parse();
    // servers tell what they do; client commands stay quiet unless something is wrong
    let default_level = match cli.command {
        Command::Serve { .. } => "info",
        // the demo provokes refusals on purpose; their warnings would only clutter it
        Command::Demo(_) => "error",
        _ => "warn",
    };
    init_logs(cli.log_format, default_level);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = runtime.block_on(run(cli));
    std::process::exit(code);
}

async fn run(cli: Cli) -> i32 {
    let result = match cli.command {
        Command::Demo(args) => passerelle::demo::run(args).await.map(|()| 0),
        Command::Init(args) => cli::init::run(&args).map(|out| {
            println!("created the {} node in {}", args.agency, out.dir.display());
            println!("  config:   {}", out.config.display());
            println!("  profiles: {}", out.publisher_profile.display());
            println!("            {}", out.analyst_profile.display());
            println!("            {}", out.operator_profile.display());
            println!(
                "start it with: passerelle serve --config {}",
                out.config.display()
            );
            0
        }),
        Command::Serve { config } => serve(config).await.map(|()| 0),
        Command::Trust(cmd) => cli::federate::trust(cmd).map(|()| 0),
        Command::Peer(cmd) => cli::admin::peer(cmd).await,
        Command::Status(args) => cli::admin::status(args).await,
        Command::Sync(args) => cli::admin::sync(args).await,
        Command::Query(cmd) => cli::query::run(cmd).await,
        Command::Backup(args) => cli::backup::backup(&args).await,
        Command::Restore(args) => cli::backup::restore(&args),
        Command::Verify(args) => cli::backup::verify(&args),
        Command::Vacancy(cmd) => cli::records::run(passerelle_model::Kind::Vacancy, cmd).await,
        Command::Shortage(cmd) => cli::records::run(passerelle_model::Kind::Shortage, cmd).await,
        Command::Supply(cmd) => cli::records::run(passerelle_model::Kind::Supply, cmd).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            2
        }
    }
}

async fn serve(config: std::path::PathBuf) -> anyhow::Result<()> {
    let cfg = passerelle_node::NodeConfig::load(&config)?;
    let handle = passerelle::server::start(cfg, None).await?;
    // SIGHUP reloads certificates, trust file and CRL (re-reading the [tls] paths of node.toml)
    handle.reloader.set_config_file(config.clone());
    let _sighup = passerelle::reload::reload_on_sighup(handle.reloader.clone())?;
    // a supervisor may close our stdout once it has read the address: never die of that
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {}", handle.addr);
        let _ = writeln!(out, "metrics on http://{}/metrics", handle.metrics_addr);
        let _ = out.flush();
    }
    shutdown_signal().await;
    tracing::info!("shutting down: draining calls and flushing the store");
    handle.shutdown().await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
