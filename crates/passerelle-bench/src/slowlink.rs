//! `slowlink`: a peer pulls through an in-process simulated link (passerelle-faultlink) and the
//! bench reports bytes on the wire per record, goodput as a share of the link, and how soon the
//! pull resumes after cuts longer than the puller's backoff ceiling.
//!
//! A (`be.vdab`) holds the records; B (`tg.anpe`) pulls from A through the link, whose address
//! is B's peer endpoint (TLS passes through it untouched). Wire bytes are what the link wrote
//! to each side: TLS records carrying HTTP/2 frames carrying zstd-compressed gRPC messages.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use passerelle::pb::v1 as pb;
use passerelle_faultlink::{FaultLink, LinkConfig, Stats};

use super::{federate, init, live_latency, live_vacancies, Node};

pub struct Options {
    pub records: u64,
    pub rtt: Duration,
    pub mbit: f64,
    /// Zero: no scheduled cuts.
    pub cut_every: Duration,
    pub cut: Duration,
    pub backoff_max_secs: u64,
    pub outage_records: u64,
    pub no_faults: bool,
    pub live: u64,
    pub timeout: Duration,
    pub seed: u64,
}

/// The origin's agency and the puller's.
const ORIGIN: &str = "be.vdab";
const PULLER: &str = "tg.anpe";

/// How often the watcher reads the link's counters, and the puller's status.
const LINK_TICK: Duration = Duration::from_millis(10);
const STATUS_EVERY: Duration = Duration::from_millis(50);

pub fn run(bin: &Path, dir: &Path, o: &Options) -> anyhow::Result<()> {
    let (a_dir, b_dir) = (dir.join("a"), dir.join("b"));
    let a_port = init(bin, &a_dir, ORIGIN)?;
    init(bin, &b_dir, PULLER)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // transparent until the puller starts: its schedule of cuts counts from then
    let target = SocketAddr::from(([127, 0, 0, 1], a_port));
    let link = rt.block_on(FaultLink::start(target, LinkConfig::new()))?;
    federate(bin, &a_dir, link.addr().port(), &b_dir)?;
    set_backoff_ceiling(&b_dir.join("node.toml"), o.backoff_max_secs)?;

    let file = dir.join("vacancies.jsonl");
    let json_bytes = write_file(&file, 0, o.records, o.seed)?;
    let _a = Node::serve(bin, &a_dir, None)?;
    import_file(bin, &file, &a_dir)?;
    let mut a_admin = rt.block_on(admin(&a_dir))?;
    let head = rt.block_on(head_seq(&mut a_admin))?;
    println!("records={}", o.records);
    println!("json_bytes_per_record={}", json_bytes / o.records.max(1));
    println!(
        "signed_record_bytes_per_record={}",
        signed_record_bytes(o.records.min(1000), o.seed)
    );
    let ctx = Ctx {
        bin,
        a_dir: &a_dir,
        b_dir: &b_dir,
        link: &link,
        rt: &rt,
        head,
        json_bytes,
    };
    if o.no_faults {
        plain(&ctx, o)?;
    } else {
        shaped(&ctx, &mut a_admin, o)?;
    }
    rt.block_on(link.stop());
    Ok(())
}

struct Ctx<'a> {
    bin: &'a Path,
    a_dir: &'a Path,
    b_dir: &'a Path,
    link: &'a FaultLink,
    rt: &'a tokio::runtime::Runtime,
    /// The origin's log head once every record is imported.
    head: u64,
    json_bytes: u64,
}

/// Slow link with cuts: the initial sync, then a last cut while the origin changes.
fn shaped(c: &Ctx, a_admin: &mut Admin, o: &Options) -> anyhow::Result<()> {
    let cfg = LinkConfig::new()
        .with_rtt(o.rtt)
        .with_mbit(o.mbit)
        .with_seed(o.seed);
    let capacity = cfg.bandwidth.expect("a capped link");
    c.link.set_config(cfg);
    println!("rtt_ms={}", o.rtt.as_millis());
    println!("link_capacity_bytes_per_s={capacity}");
    println!("backoff_max_secs={}", o.backoff_max_secs);
    println!("cut_every_secs={}", o.cut_every.as_secs());
    println!("cut_secs={}", o.cut.as_secs_f64());

    let started = Instant::now();
    let _b = Node::serve(c.bin, c.b_dir, None)?;
    let mut b_admin = c.rt.block_on(admin(c.b_dir))?;
    let schedule = (!o.cut_every.is_zero()).then(|| Schedule {
        next: started + o.cut_every,
        every: o.cut_every,
        refuse: o.cut,
    });
    let t = c.rt.block_on(watch(
        c.link,
        &mut b_admin,
        c.head,
        schedule,
        Vec::new(),
        started + o.timeout,
    ))?;
    let secs = t.held.duration_since(started).as_secs_f64();
    let wire = t.stats.target_to_client;
    let during: Vec<&Cut> = t.cuts.iter().filter(|k| k.at < t.held).collect();
    let down = during
        .iter()
        .map(|k| k.back.min(t.held).duration_since(k.at).as_secs_f64())
        .fold(0.0, |a, b| a + b);
    print_wire("", &t.stats, o.records, c.json_bytes);
    println!("sync_seconds={secs:.2}");
    println!("sync_records_per_s={:.0}", o.records as f64 / secs);
    println!(
        "converge_seconds={:.2}",
        t.live.duration_since(started).as_secs_f64()
    );
    println!(
        "goodput_bytes_per_s={:.0}",
        wire as f64 / secs.max(f64::EPSILON)
    );
    println!(
        "goodput_share={:.3}",
        wire as f64 / (secs * capacity as f64)
    );
    println!(
        "goodput_share_while_up={:.3}",
        wire as f64 / ((secs - down).max(f64::EPSILON) * capacity as f64)
    );
    println!("cuts={}", during.len());
    println!("link_down_seconds={down:.2}");
    println!("connections_accepted={}", t.stats.accepted);
    println!("connections_refused={}", t.stats.refused);
    // cuts until the puller reported live: the last one may land once every record is held
    let resumed: Vec<&Cut> = t.cuts.iter().filter(|k| k.first_byte.is_some()).collect();
    if let Some(last) = resumed.last() {
        println!(
            "seconds_to_resume_after_last_cut={:.2}",
            since(last.back, last.first_byte)
        );
        if last.cursor_moved.is_some() {
            println!(
                "seconds_to_cursor_move_after_last_cut={:.2}",
                since(last.back, last.cursor_moved)
            );
        }
        let worst = resumed
            .iter()
            .map(|k| since(k.back, k.first_byte))
            .fold(0.0, f64::max);
        println!("seconds_to_resume_after_cut_max={worst:.2}");
    }

    // live, then a cut longer than the backoff ceiling while the origin takes new records
    if o.outage_records == 0 {
        return Ok(());
    }
    let file = c.a_dir.join("outage.jsonl");
    write_file(&file, o.records, o.outage_records, o.seed ^ 0x0a7a)?;
    let before = c.link.stats();
    let at = Instant::now();
    c.link.cut(o.cut);
    let cut = Cut::new(at, o.cut);
    import_file(c.bin, &file, c.a_dir)?;
    let head = c.rt.block_on(head_seq(a_admin))?;
    if Instant::now() > cut.back {
        eprintln!("warning: the outage import outlasted the cut; resume figures are late");
    }
    let t = c.rt.block_on(watch(
        c.link,
        &mut b_admin,
        head,
        None,
        vec![cut],
        Instant::now() + o.timeout,
    ))?;
    let cut = &t.cuts[0];
    println!("outage_records={}", o.outage_records);
    println!("outage_seconds={:.2}", o.cut.as_secs_f64());
    println!(
        "outage_seconds_to_resume={:.2}",
        since(cut.back, cut.first_byte)
    );
    println!(
        "outage_seconds_to_cursor_move={:.2}",
        since(cut.back, cut.cursor_moved)
    );
    println!(
        "outage_converge_seconds={:.2}",
        t.held.duration_since(cut.back).as_secs_f64()
    );
    println!(
        "outage_wire_bytes_per_record={}",
        (t.stats.target_to_client - before.target_to_client) / o.outage_records
    );
    Ok(())
}

/// A plain proxy: wire bytes of the initial sync, then of puts streamed one by one.
fn plain(c: &Ctx, o: &Options) -> anyhow::Result<()> {
    let started = Instant::now();
    let _b = Node::serve(c.bin, c.b_dir, None)?;
    let mut b_admin = c.rt.block_on(admin(c.b_dir))?;
    let t = c.rt.block_on(watch(
        c.link,
        &mut b_admin,
        c.head,
        None,
        Vec::new(),
        started + o.timeout,
    ))?;
    let secs = t.held.duration_since(started).as_secs_f64();
    println!("sync_seconds={secs:.2}");
    println!("sync_records_per_s={:.0}", o.records as f64 / secs);
    print_wire("", &t.stats, o.records, c.json_bytes);
    if o.live == 0 {
        return Ok(());
    }
    let before = c.link.stats();
    let lat =
        c.rt.block_on(live_latency(c.a_dir, c.b_dir, o.live, o.seed))?;
    let after = c.link.stats();
    let live_json: u64 = live_vacancies(o.live, o.seed)
        .map(|v| super::gen::to_json(&v).len() as u64 + 1)
        .sum();
    let delta = Stats {
        target_to_client: after.target_to_client - before.target_to_client,
        client_to_target: after.client_to_target - before.client_to_target,
        ..after
    };
    println!("live_puts={}", o.live);
    println!("live_json_bytes_per_record={}", live_json / o.live);
    print_wire("live_", &delta, o.live, live_json);
    super::print_latencies("live_propagation", lat.iter().map(|l| l.from_ack));
    super::print_latencies("live_put_to_visible", lat.iter().map(|l| l.from_send));
    Ok(())
}

fn print_wire(prefix: &str, s: &Stats, records: u64, json_bytes: u64) {
    let n = records.max(1);
    println!("{prefix}wire_bytes_to_puller={}", s.target_to_client);
    println!("{prefix}wire_bytes_from_puller={}", s.client_to_target);
    println!("{prefix}wire_bytes_per_record={}", s.target_to_client / n);
    println!(
        "{prefix}wire_share_of_json={:.3}",
        s.target_to_client as f64 / json_bytes.max(1) as f64
    );
}

/// Seconds from `from` to `to` (NaN when it never came).
fn since(from: Instant, to: Option<Instant>) -> f64 {
    to.map_or(f64::NAN, |t| {
        t.saturating_duration_since(from).as_secs_f64()
    })
}

/// Scheduled cuts: the next one, then one every `every`, each refusing for `refuse`.
struct Schedule {
    next: Instant,
    every: Duration,
    refuse: Duration,
}

/// One cut of the link and what followed it.
#[derive(Debug, Clone)]
struct Cut {
    at: Instant,
    /// When the link accepts connections again.
    back: Instant,
    /// The first sample after `back` where bytes reached the puller.
    first_byte: Option<Instant>,
    /// The first status after `back` where the puller's cursor had moved.
    cursor_moved: Option<Instant>,
}

impl Cut {
    fn new(at: Instant, refuse: Duration) -> Cut {
        Cut {
            at,
            back: at + refuse,
            first_byte: None,
            cursor_moved: None,
        }
    }
}

/// What [`watch`] saw until the puller reported itself live with everything.
struct Trace {
    /// The first status where the puller's cursor had reached the head: it held every record
    /// (its cursor moves once a batch is applied). A cut may still keep it from reporting live.
    held: Instant,
    /// The first status where it also reported live.
    live: Instant,
    cuts: Vec<Cut>,
    /// The link's counters at `held`.
    stats: Stats,
}

/// Follows the link's counters and the puller's status until the puller is live at `head` or
/// beyond, cutting the link on `schedule` meanwhile. Nothing passes a link refusing connections, so any
/// byte counted after a cut's end belongs to the resumed pull.
async fn watch(
    link: &FaultLink,
    b: &mut Admin,
    head: u64,
    mut schedule: Option<Schedule>,
    mut cuts: Vec<Cut>,
    deadline: Instant,
) -> anyhow::Result<Trace> {
    let mut tick = tokio::time::interval(LINK_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut bytes = link.stats().target_to_client;
    let mut cursor = None;
    let mut held = None;
    let mut next_status = Instant::now();
    loop {
        tick.tick().await;
        let now = Instant::now();
        if let Some(s) = schedule.as_mut() {
            if now >= s.next {
                link.cut(s.refuse);
                cuts.push(Cut::new(now, s.refuse));
                s.next = now + s.every;
            }
        }
        let st = link.stats();
        if st.target_to_client > bytes {
            for k in cuts
                .iter_mut()
                .filter(|k| k.first_byte.is_none() && now >= k.back)
            {
                k.first_byte = Some(now);
            }
            bytes = st.target_to_client;
        }
        if now < next_status {
            continue;
        }
        next_status = now + STATUS_EVERY;
        let Ok(p) = peer_status(b).await else {
            continue;
        };
        let now = Instant::now();
        if cursor.is_some_and(|c| p.cursor > c) {
            for k in cuts
                .iter_mut()
                .filter(|k| k.cursor_moved.is_none() && now >= k.back)
            {
                k.cursor_moved = Some(now);
            }
        }
        cursor = Some(p.cursor);
        if p.cursor >= head && held.is_none() {
            held = Some((now, link.stats()));
        }
        if let Some((held, stats)) = held.filter(|_| p.state == "live") {
            return Ok(Trace {
                held,
                live: now,
                cuts,
                stats,
            });
        }
        if now > deadline {
            bail!(
                "the puller is at {} of {head} ({}, {}) after the deadline; link: {:?}",
                p.cursor,
                p.state,
                p.last_error,
                link.stats()
            );
        }
    }
}

type Admin = pb::admin_client::AdminClient<tonic::transport::Channel>;

async fn admin(dir: &Path) -> anyhow::Result<Admin> {
    let channel = passerelle::client::Profile::load(&dir.join("clients/operator.toml"))?
        .connect()
        .await?;
    Ok(pb::admin_client::AdminClient::new(channel))
}

async fn head_seq(admin: &mut Admin) -> anyhow::Result<u64> {
    Ok(admin
        .status(pb::StatusRequest {})
        .await?
        .into_inner()
        .head_seq)
}

/// The puller's view of the origin.
async fn peer_status(admin: &mut Admin) -> anyhow::Result<pb::PeerStatus> {
    admin
        .status(pb::StatusRequest {})
        .await?
        .into_inner()
        .peers
        .into_iter()
        .find(|p| p.agency == ORIGIN)
        .ok_or_else(|| anyhow!("{ORIGIN} is not a peer of the puller"))
}

/// Sets `[sync] backoff_max_secs` in a node's configuration.
fn set_backoff_ceiling(config: &Path, secs: u64) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(config)?;
    let mut doc: toml::Table = text.parse().context("node.toml")?;
    let sync = doc
        .entry("sync")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let sync = sync
        .as_table_mut()
        .ok_or_else(|| anyhow!("[sync] is not a table"))?;
    sync.insert("backoff_max_secs".into(), toml::Value::Integer(secs as i64));
    std::fs::write(config, toml::to_string(&doc)?)?;
    Ok(())
}

/// Writes vacancies `first..first + n` as JSONL; returns the bytes.
fn write_file(file: &Path, first: u64, n: u64, seed: u64) -> anyhow::Result<u64> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(file)?);
    let b = super::write_vacancies_from(&mut f, first, n, seed)?;
    f.flush()?;
    Ok(b)
}

/// `passerelle vacancy import` of `file` into the node of `dir` (its publisher).
fn import_file(bin: &Path, file: &Path, dir: &Path) -> anyhow::Result<()> {
    let out = std::process::Command::new(bin)
        .args(["vacancy", "import"])
        .arg(file)
        .arg("--profile")
        .arg(dir.join("clients/publisher.toml"))
        .output()?;
    if !out.status.success() {
        bail!("import failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Mean size of a signed record as the origin serves it, before compression: the key, the
/// payload (postcard of key, revision, change time and content) and a 64-byte signature with
/// its key id, plus protobuf tags and lengths.
fn signed_record_bytes(n: u64, seed: u64) -> u64 {
    use passerelle_model::{codec, envelope, Record, RecordKey};
    let origin = ORIGIN.parse().expect("a valid agency");
    let mut g = super::gen::VacancyGen::new(seed);
    let total: u64 = (0..n)
        .map(|i| {
            let mut r = Record::Vacancy(g.vacancy(i));
            r.set_origin(&origin);
            let key: RecordKey = format!("{ORIGIN}/vacancy/V-{i:08}").parse().expect("a key");
            let content = codec::encode_content(&r);
            // a change time of today in microseconds: as long as a real one once varint-coded
            let payload = envelope::encode_payload(&key, 1, 1_764_000_000_000_000, &content);
            let key_len = key.to_string().len();
            // key_id is 16 hex characters; five fields with a tag and (short) length each
            (key_len + payload.len() + 16 + 64 + 2 * 5 + 2) as u64
        })
        .sum();
    total / n.max(1)
}
