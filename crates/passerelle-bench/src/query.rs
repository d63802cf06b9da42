//! The `query` scenario: each Analytics query over gRPC (mutual TLS, loopback) against a real
//! node that already holds the records (a node folder kept by `--dir … import`), timed at the
//! client from request to response.

use std::path::Path;
use std::time::{Duration, Instant};

use passerelle::pb::v1 as pb;
use pb::analytics_client::AnalyticsClient;
use tonic::transport::Channel;

use crate::Node;

/// A query of the scenario: its name and one call.
type Call = fn(
    AnalyticsClient<Channel>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), tonic::Status>>>>;

fn filter(
    countries: &[&str],
    isco: &str,
    international: Option<bool>,
    as_of: &str,
) -> pb::DemandFilter {
    pb::DemandFilter {
        countries: countries.iter().map(|c| (*c).to_owned()).collect(),
        isco_prefix: isco.into(),
        open_to_international: international,
        as_of: as_of.into(),
        ..Default::default()
    }
}

macro_rules! call {
    ($method:ident, $req:expr) => {
        |mut c: AnalyticsClient<Channel>| {
            Box::pin(async move { c.$method($req).await.map(|_| ()) })
                as std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), tonic::Status>>>>
        }
    };
}

/// The queries measured: the PostgreSQL comparison query first.
fn queries() -> Vec<(&'static str, Call)> {
    vec![
        (
            "skills_be_international_top50",
            call!(
                skills_demand,
                pb::SkillsDemandRequest {
                    filter: Some(filter(&["BE"], "", Some(true), "")),
                    top: 50,
                }
            ),
        ),
        (
            "skills_isco_72",
            call!(
                skills_demand,
                pb::SkillsDemandRequest {
                    filter: Some(filter(&[], "72", None, "")),
                    top: 50,
                }
            ),
        ),
        (
            "skills_past_date",
            call!(
                skills_demand,
                pb::SkillsDemandRequest {
                    filter: Some(filter(&["BE"], "", None, "2026-06-01")),
                    top: 50,
                }
            ),
        ),
        (
            "occupations_level4",
            call!(
                occupation_demand,
                pb::OccupationDemandRequest {
                    filter: Some(filter(&["BE"], "", None, "")),
                    level: 4,
                }
            ),
        ),
        (
            "shortage_overview_be",
            call!(
                shortage_overview,
                pb::ShortageOverviewRequest {
                    country: "BE".into(),
                    year: 0,
                    as_of: String::new(),
                }
            ),
        ),
        (
            "supply_gap_be_tg",
            call!(
                supply_gap,
                pb::SupplyGapRequest {
                    destination: "BE".into(),
                    source: "TG".into(),
                    level: 4,
                    as_of: String::new(),
                }
            ),
        ),
        (
            "trend_isco_7",
            call!(
                demand_trend,
                pb::DemandTrendRequest {
                    filter: Some(filter(&[], "7", None, "")),
                    skill_uri: String::new(),
                }
            ),
        ),
    ]
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Serves the node in `node_dir` and times each query `rounds` times (after 5 warm-up calls).
pub fn run(bin: &Path, node_dir: &Path, rounds: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    let node = Node::serve(bin, node_dir, None)?;
    println!("startup_seconds={:.2}", started.elapsed().as_secs_f64());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let channel = rt.block_on(async {
        passerelle::client::Profile::load(&node_dir.join("clients/analyst.toml"))?
            .connect()
            .await
    })?;
    println!("rounds={rounds}");
    for (name, call) in queries() {
        let client = AnalyticsClient::new(channel.clone()).max_decoding_message_size(64 << 20);
        let mut times = Vec::with_capacity(rounds);
        for i in 0..rounds + 5 {
            let t = Instant::now();
            rt.block_on(call(client.clone()))
                .map_err(|s| anyhow::anyhow!("{name}: {}: {}", s.code(), s.message()))?;
            if i >= 5 {
                times.push(t.elapsed());
            }
        }
        times.sort();
        println!(
            "{name}_ms p50={:.3} p99={:.3} max={:.3}",
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            percentile(&times, 1.0)
        );
    }
    println!("node_rss_bytes={}", node.peak_rss()?);
    Ok(())
}
