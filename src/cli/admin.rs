//! `passerelle status`, `sync` and `peer block|unblock`: an operator's view of a running node
//! and its levers on the federation (operator profile).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use passerelle_model::{AgencyId, Date};
use prost_types::Timestamp;
use serde_json::{json, Value};
use tonic::transport::Channel;

use super::records::{print_status, write_table};
use super::ProfileArg;
use crate::client::Profile;
use crate::pb::v1 as pb;
use crate::pb::v1::admin_client::AdminClient;

#[derive(Args, Debug, Clone)]
pub struct StatusArgs {
    #[command(flatten)]
    pub profile: ProfileArg,
    /// text for people, json for scripts.
    #[arg(long, value_enum, default_value = "text")]
    pub format: StatusFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum StatusFormat {
    #[value(alias = "table")]
    Text,
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct SyncArgs {
    #[command(flatten)]
    pub profile: ProfileArg,
    /// Only this peer (default: every peer the node pulls from).
    #[arg(long)]
    pub peer: Option<AgencyId>,
    /// Pull again from sequence 0 (after a partner widened what it shares, say).
    #[arg(long)]
    pub from_start: bool,
    /// Return once the node has the request instead of waiting for the peers to be live.
    #[arg(long)]
    pub no_wait: bool,
    /// Seconds to wait for the peers to be live and caught up.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
}

/// `passerelle peer ...`: the `node.toml` edits plus the operator's calls on a running node.
#[derive(Subcommand, Debug)]
pub enum PeerCommand {
    #[command(flatten)]
    Config(super::federate::PeerCommand),
    /// Refuse a partner at once: its calls get PERMISSION_DENIED, its open streams end, and this
    /// node stops pulling from it, until unblocked (the block survives restarts).
    Block(PeerArgs),
    /// Lift a block: the partner may call again and this node pulls from it again.
    Unblock(PeerArgs),
    /// Diagnose the link to a partner's node step by step, with this node's certificate
    /// (run on the node's host): name, TCP, TLS, certificate, clock, authorisation, protocol.
    Test(super::peertest::PeerTestArgs),
}

#[derive(Args, Debug, Clone)]
pub struct PeerArgs {
    #[command(flatten)]
    pub profile: ProfileArg,
    /// The partner's agency id, e.g. be.vdab.
    pub agency: AgencyId,
}

async fn admin(profile: &ProfileArg) -> anyhow::Result<AdminClient<Channel>> {
    Ok(AdminClient::new(
        Profile::load(&profile.profile)?.connect().await?,
    ))
}

/// Runs a `peer` subcommand; returns the exit code.
pub async fn peer(cmd: PeerCommand) -> anyhow::Result<i32> {
    let (args, block) = match cmd {
        PeerCommand::Config(c) => return super::federate::peer(c).map(|()| 0),
        PeerCommand::Test(a) => return super::peertest::run(&a).await,
        PeerCommand::Block(a) => (a, true),
        PeerCommand::Unblock(a) => (a, false),
    };
    let mut client = admin(&args.profile).await?;
    let req = pb::PeerRequest {
        agency: args.agency.to_string(),
    };
    let r = if block {
        client.block_peer(req).await
    } else {
        client.unblock_peer(req).await
    };
    match r {
        Ok(r) => {
            let a = &args.agency;
            match (block, r.into_inner().changed) {
                (true, true) => println!(
                    "{a} blocked: its calls are refused and this node no longer pulls from it"
                ),
                (true, false) => println!("{a} was already blocked"),
                (false, true) => println!("{a} unblocked"),
                (false, false) => println!("{a} was not blocked"),
            }
            Ok(0)
        }
        Err(s) => {
            print_status("", &s);
            Ok(1)
        }
    }
}

/// `passerelle status`: the report for people, or one JSON document.
pub async fn status(args: StatusArgs) -> anyhow::Result<i32> {
    let mut client = admin(&args.profile).await?;
    let s = match client.status(pb::StatusRequest {}).await {
        Ok(r) => r.into_inner(),
        Err(e) => {
            print_status("", &e);
            return Ok(1);
        }
    };
    let mut out = std::io::stdout().lock();
    match args.format {
        StatusFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&status_json(&s))?)?,
        StatusFormat::Text => write_report(&mut out, &s)?,
    }
    Ok(0)
}

fn secs(t: &Timestamp) -> i64 {
    t.seconds
}

/// `2026-03-01T12:00:03Z`.
pub fn rfc3339(t: &Timestamp) -> String {
    let day = t.seconds.div_euclid(86_400);
    let s = t.seconds.rem_euclid(86_400);
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        Date(day as i32),
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// `3d 4h`, `2h 13m`, `5m 2s`, `12s`.
pub fn human_duration(secs: u64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// How long before `now` `t` was, e.g. `5m 2s ago`.
fn ago(t: Option<&Timestamp>, now: Option<&Timestamp>) -> String {
    match (t, now) {
        (Some(t), Some(now)) => {
            format!(
                "{} ago",
                human_duration((secs(now) - secs(t)).max(0) as u64)
            )
        }
        _ => "-".into(),
    }
}

fn ts_json(t: Option<&Timestamp>) -> Value {
    t.map(|t| Value::String(rfc3339(t))).unwrap_or(Value::Null)
}

/// The status as one JSON document (timestamps in RFC 3339, UTC).
pub fn status_json(s: &pb::StatusResponse) -> Value {
    json!({
        "agency": s.agency,
        "node_version": s.node_version,
        "uptime_seconds": s.uptime_seconds,
        "server_time": ts_json(s.server_time.as_ref()),
        "head_seq": s.head_seq,
        "store_bytes": s.store_bytes,
        "store_write_failure": (!s.store_write_failure.is_empty()).then_some(&s.store_write_failure),
        "received": {"applied": s.applied, "ignored": s.ignored, "refused": s.refused},
        "counts": s.counts.iter().map(|c| json!({
            "origin": c.origin, "kind": c.kind, "records": c.records,
        })).collect::<Vec<_>>(),
        "peers": s.peers.iter().map(|p| json!({
            "agency": p.agency,
            "endpoint": (!p.endpoint.is_empty()).then_some(&p.endpoint),
            "pulls": p.pulls,
            "state": p.state,
            "state_since": ts_json(p.state_since.as_ref()),
            "last_error": (!p.last_error.is_empty()).then_some(&p.last_error),
            "cursor": p.cursor,
            "remote_head": p.remote_head,
            "lag_records": p.lag_records,
            "lag_seconds": p.lag_seconds,
            "last_success": ts_json(p.last_success.as_ref()),
            "applied": p.applied,
            "ignored": p.ignored,
            "refused": p.refused,
        })).collect::<Vec<_>>(),
        "certificates": s.certificates.iter().map(|c| json!({
            "kind": c.kind,
            "agency": c.agency,
            "subject": c.subject,
            "not_after": ts_json(c.not_after.as_ref()),
            "days_left": c.days_left,
            "expiring": c.days_left < crate::reload::EXPIRY_WARNING_DAYS,
        })).collect::<Vec<_>>(),
    })
}

/// The report for people: a summary, then aligned tables of records, peers and certificates.
pub fn write_report(out: &mut impl Write, s: &pb::StatusResponse) -> std::io::Result<()> {
    let now = s.server_time.as_ref();
    writeln!(
        out,
        "{}: passerelle {}, up {}",
        s.agency,
        s.node_version,
        human_duration(s.uptime_seconds)
    )?;
    writeln!(
        out,
        "sync log head {}, store {} on disk",
        s.head_seq,
        human_bytes(s.store_bytes)
    )?;
    if !s.store_write_failure.is_empty() {
        writeln!(
            out,
            "WRITES REFUSED: {} (reads go on; writes resume by themselves once the folder has room)",
            s.store_write_failure
        )?;
    }
    writeln!(
        out,
        "received from peers since start: {} applied, {} ignored, {} refused",
        s.applied, s.ignored, s.refused
    )?;

    writeln!(out, "\nrecords")?;
    let rows: Vec<Vec<String>> = s
        .counts
        .iter()
        .map(|c| vec![c.origin.clone(), c.kind.clone(), c.records.to_string()])
        .collect();
    write_table(out, &["origin", "kind", "records"], &rows)?;

    writeln!(out, "\npeers")?;
    if s.peers.is_empty() {
        writeln!(out, "none configured ([[peers]] in node.toml)")?;
    } else {
        let rows: Vec<Vec<String>> = s
            .peers
            .iter()
            .map(|p| {
                let pulled = |v: String| if p.pulls { v } else { "-".into() };
                vec![
                    p.agency.clone(),
                    p.state.clone(),
                    p.state_since
                        .as_ref()
                        .map(|t| ago(Some(t), now))
                        .unwrap_or_else(|| "-".into()),
                    pulled(p.cursor.to_string()),
                    pulled(p.lag_records.to_string()),
                    pulled(
                        p.lag_seconds
                            .map(human_duration)
                            .unwrap_or_else(|| "?".into()),
                    ),
                    pulled(ago(p.last_success.as_ref(), now)),
                    if p.endpoint.is_empty() {
                        "(pulls from us only)".into()
                    } else {
                        p.endpoint.clone()
                    },
                ]
            })
            .collect();
        write_table(
            out,
            &[
                "peer",
                "state",
                "since",
                "cursor",
                "behind",
                "lag",
                "last success",
                "endpoint",
            ],
            &rows,
        )?;
        for p in &s.peers {
            if matches!(p.state.as_str(), "failing" | "backing_off") && !p.last_error.is_empty() {
                let since = p
                    .state_since
                    .as_ref()
                    .map(rfc3339)
                    .unwrap_or_else(|| "?".into());
                writeln!(
                    out,
                    "  {} {} since {since}: {}",
                    p.agency, p.state, p.last_error
                )?;
            }
        }
    }

    writeln!(out, "\ncertificates")?;
    let rows: Vec<Vec<String>> = s
        .certificates
        .iter()
        .map(|c| {
            let note = if c.days_left < 0 {
                "EXPIRED"
            } else if c.days_left < crate::reload::EXPIRY_WARNING_DAYS {
                "expires soon: renew it"
            } else {
                ""
            };
            vec![
                c.kind.clone(),
                c.subject.clone(),
                c.not_after
                    .as_ref()
                    .map(|t| rfc3339(t)[..10].to_owned())
                    .unwrap_or_default(),
                c.days_left.to_string(),
                note.into(),
            ]
        })
        .collect();
    // the note column is mostly empty: no trailing blanks
    let mut table = Vec::new();
    write_table(
        &mut table,
        &["kind", "subject", "not after", "days left", ""],
        &rows,
    )?;
    for line in String::from_utf8_lossy(&table).lines() {
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Where one peer's requested sync stands.
enum Progress {
    Waiting(String),
    Done(String),
    Failed(String),
}

fn at_or_after(t: Option<&Timestamp>, since: &Timestamp) -> bool {
    t.is_some_and(|t| (t.seconds, t.nanos) >= (since.seconds, since.nanos))
}

fn progress_of(
    p: Option<&pb::PeerStatus>,
    base: Option<&pb::PeerStatus>,
    requested_at: &Timestamp,
) -> Progress {
    let Some(p) = p else {
        return Progress::Failed("no longer listed by the node".into());
    };
    if p.state == "blocked" {
        return Progress::Failed("blocked".into());
    }
    // a state older than the request is the loop's state before it took the request
    if !at_or_after(p.state_since.as_ref(), requested_at) {
        return Progress::Waiting("waiting for the pull loop".into());
    }
    let (applied, ignored) = base.map_or((p.applied, p.ignored), |b| {
        (
            p.applied.saturating_sub(b.applied),
            p.ignored.saturating_sub(b.ignored),
        )
    });
    match p.state.as_str() {
        "live" if p.lag_records == 0 => Progress::Done(format!(
            "live at sequence {}: {applied} applied, {ignored} ignored",
            p.cursor
        )),
        "failing" => Progress::Failed(format!("failing: {}", p.last_error)),
        "backing_off" => Progress::Waiting(format!("backing off: {}", p.last_error)),
        _ => Progress::Waiting(format!(
            "{} at {} of {}: {applied} applied, {ignored} ignored",
            p.state, p.cursor, p.remote_head
        )),
    }
}

/// `passerelle sync`: wakes the pulls (skipping backoff) and, unless told not to, waits until
/// each woken peer is live again and caught up.
pub async fn sync(args: SyncArgs) -> anyhow::Result<i32> {
    let mut client = admin(&args.profile).await?;
    // counts before the request, so that the report says what this sync brought
    let before = match client.status(pb::StatusRequest {}).await {
        Ok(r) => r.into_inner(),
        Err(e) => {
            print_status("", &e);
            return Ok(1);
        }
    };
    let r = client
        .sync_now(pb::SyncNowRequest {
            peer: args.peer.map(|p| p.to_string()).unwrap_or_default(),
            from_start: args.from_start,
        })
        .await;
    let r = match r {
        Ok(r) => r.into_inner(),
        Err(e) => {
            print_status("", &e);
            return Ok(1);
        }
    };
    for b in &r.blocked {
        eprintln!("{b} is blocked: skipped (`passerelle peer unblock {b}` first)");
    }
    if r.peers.is_empty() {
        println!("this node pulls from no peer that is not blocked");
        return Ok(if r.blocked.is_empty() { 0 } else { 1 });
    }
    let from = if args.from_start {
        " from sequence 0"
    } else {
        ""
    };
    println!("sync requested{from}: {}", r.peers.join(", "));
    if args.no_wait {
        return Ok(0);
    }
    let requested_at = r.requested_at.unwrap_or_default();
    let bar = if std::io::stderr().is_terminal() {
        let b = ProgressBar::new_spinner();
        b.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
        b.enable_steady_tick(Duration::from_millis(120));
        b
    } else {
        ProgressBar::hidden()
    };
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    loop {
        let s = match client.status(pb::StatusRequest {}).await {
            Ok(r) => r.into_inner(),
            Err(e) => {
                bar.finish_and_clear();
                print_status("", &e);
                return Ok(1);
            }
        };
        let states: Vec<(String, Progress)> = r
            .peers
            .iter()
            .map(|a| {
                let find =
                    |st: &pb::StatusResponse| st.peers.iter().find(|p| &p.agency == a).cloned();
                (
                    a.clone(),
                    progress_of(find(&s).as_ref(), find(&before).as_ref(), &requested_at),
                )
            })
            .collect();
        let pending = states
            .iter()
            .any(|(_, p)| matches!(p, Progress::Waiting(_)));
        if !pending || Instant::now() >= deadline {
            bar.finish_and_clear();
            let mut code = 0;
            for (a, p) in states {
                match p {
                    Progress::Done(m) => println!("{a}: {m}"),
                    Progress::Failed(m) => {
                        code = 1;
                        eprintln!("{a}: {m}");
                    }
                    Progress::Waiting(m) => {
                        code = 1;
                        eprintln!("{a}: not done after {} s: {m}", args.timeout);
                    }
                }
            }
            return Ok(code);
        }
        bar.set_message(
            states
                .iter()
                .map(|(a, p)| match p {
                    Progress::Waiting(m) | Progress::Done(m) | Progress::Failed(m) => {
                        format!("{a}: {m}")
                    }
                })
                .collect::<Vec<_>>()
                .join("; "),
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_sizes_read_well() {
        assert_eq!(
            rfc3339(&Timestamp {
                seconds: 1_772_366_403,
                nanos: 0
            }),
            "2026-03-01T12:00:03Z"
        );
        assert_eq!(human_duration(12), "12s");
        assert_eq!(human_duration(302), "5m 2s");
        assert_eq!(human_duration(7980), "2h 13m");
        assert_eq!(human_duration(3 * 86_400 + 4 * 3600 + 5), "3d 4h");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 * 1024 * 1024 + 300 * 1024), "3.3 MiB");
    }

    #[test]
    fn a_sync_is_done_only_once_the_loop_took_the_request_and_is_live() {
        let at = Timestamp {
            seconds: 100,
            nanos: 0,
        };
        let peer = |state: &str, since: i64, lag: u64| pb::PeerStatus {
            agency: "be.vdab".into(),
            state: state.into(),
            state_since: Some(Timestamp {
                seconds: since,
                nanos: 0,
            }),
            lag_records: lag,
            last_error: "connection refused".into(),
            pulls: true,
            ..Default::default()
        };
        let live_before = peer("live", 50, 0);
        assert!(matches!(
            progress_of(Some(&live_before), None, &at),
            Progress::Waiting(_)
        ));
        assert!(matches!(
            progress_of(Some(&peer("live", 101, 0)), None, &at),
            Progress::Done(_)
        ));
        assert!(matches!(
            progress_of(Some(&peer("syncing", 101, 30)), None, &at),
            Progress::Waiting(_)
        ));
        assert!(matches!(
            progress_of(Some(&peer("failing", 101, 0)), None, &at),
            Progress::Failed(m) if m.contains("connection refused")
        ));
        assert!(matches!(
            progress_of(Some(&peer("blocked", 10, 0)), None, &at),
            Progress::Failed(_)
        ));
        assert!(matches!(progress_of(None, None, &at), Progress::Failed(_)));
    }
}
