//! `passerelle trust export|add` and `passerelle peer add`: the file exchange that makes two agencies partners.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};
use passerelle_model::{AgencyId, Kind};
use passerelle_node::NodeConfig;
use passerelle_pki::{SigningKey, TrustEntry, TrustFile};

#[derive(Subcommand, Debug)]
pub enum TrustCommand {
    /// Print this agency's trust entry (CA certificate and record-signing public key) for partners.
    Export {
        #[command(flatten)]
        config: ConfigArg,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Add a partner's exported trust entry to this node's trust file.
    Add {
        #[command(flatten)]
        config: ConfigArg,
        /// The file the partner exported.
        file: PathBuf,
        /// Replace an existing entry for the same agency (key or CA rotation).
        #[arg(long)]
        replace: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum PeerCommand {
    /// Add a `[[peers]]` entry to node.toml: a partner this node pulls from and/or serves.
    Add(PeerAddArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ConfigArg {
    /// The node's configuration file.
    #[arg(long, env = "PASSERELLE_CONFIG")]
    pub config: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct PeerAddArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The partner's agency id.
    #[arg(long)]
    pub agency: AgencyId,
    /// `https://host:port` of the partner's node, to pull from it (omit if it only pulls from us).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Kinds shared with the partner (repeatable; default all three).
    #[arg(long, value_parser = parse_kind)]
    pub share: Vec<Kind>,
    /// Forward third-party (relayed) records to this partner.
    #[arg(long)]
    pub relay: bool,
    /// Share only vacancies with this open_to_international value.
    #[arg(long)]
    pub international: Option<bool>,
    /// Share only records located in these countries (repeatable).
    #[arg(long)]
    pub country: Vec<String>,
}

fn parse_kind(s: &str) -> Result<Kind, String> {
    s.parse()
        .map_err(|e: passerelle_model::IdError| e.to_string())
}

fn read(p: &Path, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(p).with_context(|| format!("cannot read {what} {}", p.display()))
}

pub fn trust(cmd: TrustCommand) -> anyhow::Result<()> {
    match cmd {
        TrustCommand::Export { config, out } => {
            let text = export(&config.config)?;
            match out {
                Some(p) => {
                    std::fs::write(&p, &text)
                        .with_context(|| format!("cannot write {}", p.display()))?;
                    println!("wrote {}: give it to the partner agency, which runs `passerelle trust add`", p.display());
                }
                None => print!("{text}"),
            }
            Ok(())
        }
        TrustCommand::Add {
            config,
            file,
            replace,
        } => {
            let agency = add(&config.config, &file, replace)?;
            println!("{agency} is now trusted; restart the node to apply");
            Ok(())
        }
    }
}

/// This agency's trust entry as TOML.
pub fn export(config: &Path) -> anyhow::Result<String> {
    let cfg = NodeConfig::load(config)?;
    let ca = read(&cfg.path(&cfg.tls.ca), "CA certificate")?;
    let key = SigningKey::from_pem(&read(&cfg.path(&cfg.signing.key), "signing key")?)?;
    Ok(TrustEntry::new(cfg.agency.clone(), &ca, &[key.public_key()])?.to_toml())
}

/// Merges a partner's entry into the trust file named by node.toml; returns the partner's agency.
pub fn add(config: &Path, entry_file: &Path, replace: bool) -> anyhow::Result<AgencyId> {
    let cfg = NodeConfig::load(config)?;
    let entry = TrustEntry::from_toml(&read(entry_file, "trust entry")?)
        .map_err(|e| anyhow!("{}: {e}", entry_file.display()))?;
    if entry.agency == cfg.agency {
        return Err(anyhow!("{} is this node's own agency", entry.agency));
    }
    let path = cfg.tls.trust.as_ref().map(|p| cfg.path(p)).ok_or_else(|| {
        anyhow!("node.toml has no [tls] trust file; add `trust = \"trust.toml\"` under [tls]")
    })?;
    let mut file = TrustFile::load_or_default(&path)?;
    let agency = entry.agency.clone();
    file.add(entry, replace)?;
    // refuse to save a file the node would not load
    let ca = read(&cfg.path(&cfg.tls.ca), "CA certificate")?;
    passerelle_pki::TrustStore::from_file(&cfg.agency, &ca, &file)?;
    file.save(&path)?;
    Ok(agency)
}

pub fn peer(cmd: PeerCommand) -> anyhow::Result<()> {
    match cmd {
        PeerCommand::Add(args) => {
            peer_add(&args)?;
            println!(
                "{} added to {}; restart the node to apply",
                args.agency,
                args.config.config.display()
            );
            Ok(())
        }
    }
}

/// Appends a `[[peers]]` entry to node.toml (keeping its comments) after checking the result parses.
pub fn peer_add(args: &PeerAddArgs) -> anyhow::Result<()> {
    let path = &args.config.config;
    let text = read(path, "config")?;
    let cfg = NodeConfig::parse(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    if cfg.peers.iter().any(|p| p.agency == args.agency) {
        return Err(anyhow!(
            "{} is already a peer in {}",
            args.agency,
            path.display()
        ));
    }
    if let Some(e) = &args.endpoint {
        if !e.starts_with("https://") {
            return Err(anyhow!("--endpoint {e:?} must start with https://"));
        }
    }
    let mut entry = format!("\n[[peers]]\nagency = \"{}\"\n", args.agency);
    if let Some(e) = &args.endpoint {
        entry.push_str(&format!("endpoint = \"{e}\"\n"));
    }
    if !args.share.is_empty() {
        let kinds: Vec<String> = args.share.iter().map(|k| format!("\"{k}\"")).collect();
        entry.push_str(&format!("share = [{}]\n", kinds.join(", ")));
    }
    entry.push_str(&format!("relay = {}\n", args.relay));
    if args.international.is_some() || !args.country.is_empty() {
        entry.push_str("[peers.filter]\n");
        if let Some(b) = args.international {
            entry.push_str(&format!("open_to_international = {b}\n"));
        }
        if !args.country.is_empty() {
            let c: Vec<String> = args.country.iter().map(|c| format!("\"{c}\"")).collect();
            entry.push_str(&format!("countries = [{}]\n", c.join(", ")));
        }
    }
    let new_text = format!("{}{entry}", text.trim_end_matches('\n').to_owned() + "\n");
    NodeConfig::parse(&new_text).map_err(|e| anyhow!("the new peer entry would not parse: {e}"))?;
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, &new_text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}
