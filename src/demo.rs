//! `passerelle demo`: real nodes on loopback (real PKI, real mutual TLS, real store) with sample data, shown back.
//!
//! Until federation lands, each agency's node holds only its own records:
//! VDAB publishes vacancies and its shortage list, ANPE its supply cells.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use passerelle_model::Kind;
use tokio::net::TcpListener;

use crate::cli::files;
use crate::cli::init::{self, InitArgs, InitOutput};
use crate::cli::records::{self, ListQuery};
use crate::cli::{DemoArgs, OutputFormat};
use crate::client::Profile;
use crate::server::{self, ServerHandle};

/// Sample files shipped in `samples/`, embedded so the demo runs from any folder.
pub const VDAB_VACANCIES: &str = include_str!("../samples/vdab-vacancies.jsonl");
pub const VDAB_SHORTAGES: &str = include_str!("../samples/vdab-shortages.csv");
pub const ANPE_SUPPLY: &str = include_str!("../samples/anpe-supply.csv");

struct DemoNode {
    init: InitOutput,
    server: ServerHandle,
}

async fn start_node(base: &Path, agency: &str) -> anyhow::Result<DemoNode> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let init = init::run(&InitArgs {
        agency: agency.parse()?,
        dir: base.join(agency),
        listen: addr,
        hostname: Vec::new(),
        metrics_listen: "127.0.0.1:0".parse()?,
        days: 30,
    })?;
    let cfg = passerelle_node::NodeConfig::load(&init.config)?;
    let server = server::start(cfg, Some(listener)).await?;
    Ok(DemoNode { init, server })
}

fn sample_file(dir: &Path, name: &str, text: &str) -> anyhow::Result<PathBuf> {
    let p = dir.join(name);
    std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))?;
    Ok(p)
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let tmp;
    let base = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    println!(
        "== passerelle demo: two agencies on loopback, PKI in {}",
        base.display()
    );
    let vdab = start_node(&base, "be.vdab").await?;
    let anpe = start_node(&base, "tg.anpe").await?;
    println!(
        "   be.vdab node listening on {} (mutual TLS 1.3), tg.anpe on {}",
        vdab.server.addr, anpe.server.addr
    );

    let samples = base.join("samples");
    std::fs::create_dir_all(&samples)?;
    let vac_file = sample_file(&samples, "vdab-vacancies.jsonl", VDAB_VACANCIES)?;
    let sho_file = sample_file(&samples, "vdab-shortages.csv", VDAB_SHORTAGES)?;
    let sup_file = sample_file(&samples, "anpe-supply.csv", ANPE_SUPPLY)?;

    let vdab_pub = Profile::load(&vdab.init.publisher_profile)?
        .connect()
        .await?;
    let anpe_pub = Profile::load(&anpe.init.publisher_profile)?
        .connect()
        .await?;

    println!("\n== VDAB's publisher imports its vacancies and shortage list");
    let r = records::import_file(vdab_pub.clone(), Kind::Vacancy, &vac_file, 1000).await?;
    println!("   {r}");
    let r = records::import_file(vdab_pub.clone(), Kind::Shortage, &sho_file, 1000).await?;
    println!("   {r}");
    println!("\n== ANPE's publisher imports its supply cells");
    let r = records::import_file(anpe_pub.clone(), Kind::Supply, &sup_file, 1000).await?;
    println!("   {r}");

    println!("\n== the nightly re-import of the same file creates no revision and no log entry");
    let head_before = vdab.server.node.store().head_seq();
    let r = records::import_file(vdab_pub.clone(), Kind::Vacancy, &vac_file, 1000).await?;
    println!("   {r}");
    println!(
        "   sync log head before {head_before}, after {}",
        vdab.server.node.store().head_seq()
    );

    println!("\n== a broken vacancy is refused, every problem named, nothing stored");
    let bad = files::record_from_json(
        Kind::Vacancy,
        serde_json::json!({
            "id": "V-BROKEN", "status": "OPEN", "title": "", "language": "nl",
            "occupation": {"isco08": "9999"}, "location": {"country": "BE", "nuts": "FR10"},
            "positions": 0, "posted_on": "2026-11-02", "closes_on": "2026-10-01",
            "salary": {"min": 3000.0, "max": 2500.0, "currency": "EUR", "period": "MONTH"}
        }),
    )?;
    if let Err(s) = records::put(vdab_pub.clone(), bad, None).await {
        records::print_status("   ", &s);
    }

    println!("\n== an analyst may read but not write");
    let vdab_analyst = Profile::load(&vdab.init.analyst_profile)?.connect().await?;
    let sample = records::get(
        vdab_analyst.clone(),
        Kind::Vacancy,
        String::new(),
        "V-2026-00001".into(),
    )
    .await;
    match &sample {
        Ok(r) => println!(
            "   analyst reads {}/vacancy/{} at revision {}",
            r.origin(),
            r.id(),
            r.revision()
        ),
        Err(s) => records::print_status("   analyst read: ", s),
    }
    if let Ok(r) = sample {
        if let Err(s) = records::put(vdab_analyst, r, None).await {
            records::print_status("   analyst write: ", &s);
        }
    }

    println!("\n== what VDAB's node holds: open vacancies for international candidates");
    let vacancies = records::list_all(
        vdab_pub.clone(),
        Kind::Vacancy,
        &ListQuery {
            statuses: vec![crate::pb::v1::VacancyStatus::Open as i32],
            open_to_international: Some(true),
            ..Default::default()
        },
        Some(12),
    )
    .await?;
    records::print_records(Kind::Vacancy, &vacancies, OutputFormat::Table)?;
    println!("\n== VDAB's shortage list (knelpuntberoepen)");
    let shortages =
        records::list_all(vdab_pub, Kind::Shortage, &ListQuery::default(), None).await?;
    records::print_records(Kind::Shortage, &shortages, OutputFormat::Table)?;
    println!("\n== ANPE's supply cells (first 12)");
    let cells = records::list_all(anpe_pub, Kind::Supply, &ListQuery::default(), Some(12)).await?;
    records::print_records(Kind::Supply, &cells, OutputFormat::Table)?;

    let total = Instant::now().duration_since(started);
    vdab.server.shutdown().await?;
    anpe.server.shutdown().await?;
    println!(
        "\n== done in {:.2}s. Federation (nodes pulling each other's records) is the next step.",
        total.as_secs_f64()
    );
    Ok(())
}
