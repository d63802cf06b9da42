//! `passerelle demo`: real nodes on loopback (real PKI, real mutual TLS, real store) with sample data, shown back.
//!
//! Until federation lands, each agency's node holds only its own records:
//! VDAB publishes vacancies and its shortage list, ANPE its supply cells.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use passerelle_model::Kind;
use tokio::net::TcpListener;

use crate::cli::federate::{self, ConfigArg, PeerAddArgs};
use crate::cli::files;
use crate::cli::init::{self, InitArgs, InitOutput};
use crate::cli::records::{self, ListQuery};
use crate::cli::{DemoArgs, OutputFormat};
use crate::client::Profile;
use crate::server::{self, ServerHandle};

fn say_status(prefix: &str, s: &tonic::Status) {
    for l in records::status_lines(prefix, s) {
        println!("{l}");
    }
}

/// Polls tg.anpe's API (as its analyst) until the vacancy has `status`, bounded to 10 s.
async fn wait_visible(
    ch: tonic::transport::Channel,
    id: &str,
    status: passerelle_model::VacancyStatus,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        if let Ok(passerelle_model::Record::Vacancy(v)) =
            records::get(ch.clone(), Kind::Vacancy, "be.vdab".into(), id.into()).await
        {
            if v.status == status {
                return Ok(started.elapsed());
            }
        }
        if started.elapsed() > Duration::from_secs(10) {
            anyhow::bail!("{id} not {status:?} at tg.anpe after 10 s");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Sample files shipped in `samples/`, embedded so the demo runs from any folder.
pub const VDAB_VACANCIES: &str = include_str!("../samples/vdab-vacancies.jsonl");
pub const VDAB_SHORTAGES: &str = include_str!("../samples/vdab-shortages.csv");
pub const ANPE_SUPPLY: &str = include_str!("../samples/anpe-supply.csv");

struct DemoNode {
    init: InitOutput,
    server: ServerHandle,
}

/// Creates an agency's folder with `init`, on a loopback port bound now.
async fn init_node(base: &Path, agency: &str) -> anyhow::Result<(InitOutput, TcpListener)> {
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
    Ok((init, listener))
}

async fn start_node(init: InitOutput, listener: TcpListener) -> anyhow::Result<DemoNode> {
    let cfg = passerelle_node::NodeConfig::load(&init.config)?;
    let server = server::start(cfg, Some(listener)).await?;
    Ok(DemoNode { init, server })
}

/// The PKI ceremony between two agencies: each exports its trust entry, the other adds it, and
/// each lists the other as a peer to pull from.
fn federate(
    a: &InitOutput,
    a_addr: std::net::SocketAddr,
    b: &InitOutput,
    b_addr: std::net::SocketAddr,
) -> anyhow::Result<()> {
    for (me, other, other_addr) in [(a, b, b_addr), (b, a, a_addr)] {
        let entry = other.dir.join("trust-export.toml");
        std::fs::write(&entry, federate::export(&other.config)?)?;
        federate::add(&me.config, &entry, false)?;
        let other_agency = passerelle_node::NodeConfig::load(&other.config)?.agency;
        federate::peer_add(&PeerAddArgs {
            config: ConfigArg {
                config: me.config.clone(),
            },
            agency: other_agency,
            endpoint: Some(format!("https://{other_addr}")),
            share: Vec::new(),
            relay: false,
            international: None,
            country: Vec::new(),
        })?;
    }
    Ok(())
}

/// Waits until `node` holds `want` records of `origin` and `kind` (bounded).
async fn wait_for(
    node: &DemoNode,
    origin: &str,
    kind: Kind,
    want: usize,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let origin: passerelle_model::AgencyId = origin.parse()?;
    loop {
        let n = node
            .server
            .node
            .store()
            .list(kind, Some(&origin), None, want + 1, |_| true)?
            .0
            .len();
        if n >= want {
            return Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(30) {
            anyhow::bail!(
                "{} holds {n} of {want} {kind} records of {origin} after 30 s",
                node.init.dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
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
    let (vdab_init, vdab_listener) = init_node(&base, "be.vdab").await?;
    let (anpe_init, anpe_listener) = init_node(&base, "tg.anpe").await?;
    let (vdab_addr, anpe_addr) = (vdab_listener.local_addr()?, anpe_listener.local_addr()?);
    println!("   each agency: its own CA, node certificate, Ed25519 signing key, client profiles");
    federate(&vdab_init, vdab_addr, &anpe_init, anpe_addr)?;
    println!("   trust exchanged (CA + signing key) and each lists the other as a peer");
    let vdab = start_node(vdab_init, vdab_listener).await?;
    let anpe = start_node(anpe_init, anpe_listener).await?;
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

    println!(
        "\n== the nodes pull each other's records (signed by their origin, verified on arrival)"
    );
    let sync_started = Instant::now();
    let n_vac = VDAB_VACANCIES
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count();
    let n_sho = VDAB_SHORTAGES.lines().count().saturating_sub(1);
    let n_sup = ANPE_SUPPLY.lines().count().saturating_sub(1);
    let t1 = wait_for(&anpe, "be.vdab", Kind::Vacancy, n_vac).await?;
    let t2 = wait_for(&anpe, "be.vdab", Kind::Shortage, n_sho).await?;
    let t3 = wait_for(&vdab, "tg.anpe", Kind::Supply, n_sup).await?;
    println!("   tg.anpe received {n_vac} vacancies and {n_sho} shortage lines from be.vdab");
    println!("   be.vdab received {n_sup} supply cells from tg.anpe");
    println!(
        "   all arrived {:.0} ms after the imports ended (vacancies {:.0} ms, shortages {:.0} ms, supply {:.0} ms)",
        sync_started.elapsed().as_secs_f64() * 1000.0,
        t1.as_secs_f64() * 1000.0,
        t2.as_secs_f64() * 1000.0,
        t3.as_secs_f64() * 1000.0
    );
    for (name, node) in [("be.vdab", &vdab), ("tg.anpe", &anpe)] {
        if let Some(p) = node.server.peers.snapshot().first() {
            println!(
                "   {name} sees peer {}: {} at cursor {}",
                p.agency,
                p.state.as_str(),
                p.cursor
            );
        }
    }

    println!("\n== a new vacancy at VDAB, then its withdrawal, propagate live");
    let mut live = files::record_from_json(
        Kind::Vacancy,
        serde_json::from_str(VDAB_VACANCIES.lines().next().unwrap_or("{}"))?,
    )?;
    if let passerelle_model::Record::Vacancy(v) = &mut live {
        v.id = "V-2026-LIVE".into();
    }
    let put_at = Instant::now();
    records::put(vdab_pub.clone(), live, None)
        .await
        .map_err(|s| anyhow::anyhow!("put: {}", s.message()))?;
    let anpe_analyst = Profile::load(&anpe.init.analyst_profile)?.connect().await?;
    let seen = wait_visible(
        anpe_analyst.clone(),
        "V-2026-LIVE",
        passerelle_model::VacancyStatus::Open,
    )
    .await?;
    println!(
        "   put at be.vdab -> visible at tg.anpe after {:.1} ms",
        seen.as_secs_f64() * 1000.0
    );
    let _ = put_at;
    crate::pb::v1::vacancies_client::VacanciesClient::new(vdab_pub.clone())
        .withdraw(crate::pb::v1::WithdrawVacancyRequest {
            id: "V-2026-LIVE".into(),
            expected_revision: None,
        })
        .await?;
    let gone = wait_visible(
        anpe_analyst,
        "V-2026-LIVE",
        passerelle_model::VacancyStatus::Withdrawn,
    )
    .await?;
    println!(
        "   withdrawal at be.vdab -> tombstone at tg.anpe after {:.1} ms",
        gone.as_secs_f64() * 1000.0
    );

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
        say_status("   ", &s);
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
        Err(s) => say_status("   analyst read: ", s),
    }
    if let Ok(r) = sample {
        if let Err(s) = records::put(vdab_analyst, r, None).await {
            say_status("   analyst write: ", &s);
        }
    }

    println!("\n== what ANPE's node holds from VDAB: open vacancies for international candidates");
    let anpe_reader = Profile::load(&anpe.init.analyst_profile)?.connect().await?;
    let vacancies = records::list_all(
        anpe_reader.clone(),
        Kind::Vacancy,
        &ListQuery {
            origins: vec!["be.vdab".into()],
            statuses: vec![crate::pb::v1::VacancyStatus::Open as i32],
            open_to_international: Some(true),
            ..Default::default()
        },
        Some(12),
    )
    .await?;
    records::print_records(Kind::Vacancy, &vacancies, OutputFormat::Table)?;
    println!("\n== VDAB's shortage list (knelpuntberoepen), as held by ANPE's node");
    let shortages =
        records::list_all(anpe_reader, Kind::Shortage, &ListQuery::default(), None).await?;
    records::print_records(Kind::Shortage, &shortages, OutputFormat::Table)?;
    println!("\n== ANPE's supply cells as held by VDAB's node (first 12)");
    let cells = records::list_all(vdab_pub, Kind::Supply, &ListQuery::default(), Some(12)).await?;
    records::print_records(Kind::Supply, &cells, OutputFormat::Table)?;

    println!("\n== ANPE's analyst: occupations in shortage in Belgium for which Togo has registered job seekers");
    let anpe_analyst = Profile::load(&anpe.init.analyst_profile)?.connect().await?;
    let gap = crate::pb::v1::analytics_client::AnalyticsClient::new(anpe_analyst)
        .supply_gap(crate::pb::v1::SupplyGapRequest {
            destination: "BE".into(),
            source: "TG".into(),
            level: 4,
            as_of: String::new(),
        })
        .await?
        .into_inner();
    let matched = crate::pb::v1::SupplyGapResponse {
        rows: gap.rows.iter().filter(|r| r.r#match).cloned().collect(),
    };
    crate::cli::query::gap_table(&matched).print(OutputFormat::Table)?;
    println!(
        "   {} of {} occupations with demand, a shortage or supply match (shortage in BE, supply in TG)",
        matched.rows.len(),
        gap.rows.len()
    );

    let total = Instant::now().duration_since(started);
    vdab.server.shutdown().await?;
    anpe.server.shutdown().await?;
    println!("\n== done in {:.2}s", total.as_secs_f64());
    Ok(())
}
