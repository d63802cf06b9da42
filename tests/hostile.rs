//! Hostile peers: a trusted partner whose node misbehaves, on either side of a pull.
//!
//! As the side VDAB pulls from, a fake ANPE node (ANPE's real certificate and signing key, a
//! scripted `Federation` service) delivers records of an origin it may not deliver, altered
//! signed bytes, replayed old revisions, oversize batches and messages, and stalls. As a
//! caller, ANPE's node identity floods VDAB with calls and opens too many pull streams.
//! Each time: the right refusal, counted, nothing of it stored, and VDAB keeps serving.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use passerelle::federation::signed_out;
use passerelle::pb::v1 as pb;
use passerelle_model::RecordKey;
use passerelle_node::{OutboundPolicy, Refusal};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};

const VDAB: &str = "be.vdab";
const ANPE: &str = "tg.anpe";
const FT: &str = "fr.francetravail";

// ---------------------------------------------------------------- the fake peer

/// What the fake node answers to one Pull call.
#[derive(Clone)]
enum Script {
    /// These batches, then the stream stays open and silent.
    Batches(Vec<pb::PullBatch>),
    /// Never answers Hello.
    HangHello,
}

#[derive(Default)]
struct FakeState {
    scripts: VecDeque<Script>,
    pulls: u32,
    hellos: u32,
}

#[derive(Clone)]
struct FakePeer {
    state: Arc<Mutex<FakeState>>,
    head: u64,
}

impl FakePeer {
    fn next_script(&self) -> Option<Script> {
        self.state.lock().unwrap().scripts.front().cloned()
    }
}

#[tonic::async_trait]
impl pb::federation_server::Federation for FakePeer {
    async fn hello(
        &self,
        _req: Request<pb::HelloRequest>,
    ) -> Result<Response<pb::HelloResponse>, Status> {
        self.state.lock().unwrap().hellos += 1;
        if matches!(self.next_script(), Some(Script::HangHello)) {
            self.state.lock().unwrap().scripts.pop_front();
            // longer than the caller's deadline, bounded all the same
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Ok(Response::new(pb::HelloResponse {
            agency: ANPE.into(),
            node_version: "hostile".into(),
            protocol_version: passerelle::federation::PROTOCOL_VERSION,
            head_seq: self.head,
        }))
    }

    type PullStream = ReceiverStream<Result<pb::PullBatch, Status>>;

    async fn pull(
        &self,
        _req: Request<pb::PullRequest>,
    ) -> Result<Response<Self::PullStream>, Status> {
        let script = {
            let mut s = self.state.lock().unwrap();
            s.pulls += 1;
            s.scripts.pop_front()
        };
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            if let Some(Script::Batches(batches)) = script {
                for b in batches {
                    if tx.send(Ok(b)).await.is_err() {
                        return;
                    }
                }
            }
            // silent but open, until the caller goes (bounded for the test's sake)
            let _ = tokio::time::timeout(Duration::from_secs(60), tx.closed()).await;
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Serves `fake` on a loopback port with `anpe`'s own node certificate.
async fn serve_fake(anpe: &TestNode, fake: FakePeer) -> std::net::SocketAddr {
    let tls = passerelle::server::tls_config(&anpe.config()).expect("anpe tls");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = passerelle::server::accept_loop(
        listener,
        Arc::new(passerelle::reload::Swap::new(tls)),
        Duration::from_secs(5),
    );
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(
                pb::federation_server::FederationServer::new(fake)
                    .accept_compressed(tonic::codec::CompressionEncoding::Zstd)
                    .send_compressed(tonic::codec::CompressionEncoding::Zstd)
                    .max_encoding_message_size(64 << 20),
            )
            .serve_with_incoming(incoming),
    );
    addr
}

// ---------------------------------------------------------------- set-up

/// Records `node` signed itself, as its Federation service would send them.
fn signed_by(node: &TestNode) -> Vec<pb::SignedRecord> {
    let policy = OutboundPolicy {
        kinds: passerelle_model::Kind::ALL.to_vec(),
        relay: false,
        open_to_international: None,
        countries: Vec::new(),
    };
    node.node()
        .pull_batch(0, 10_000, 64 << 20, &policy)
        .expect("pull batch")
        .records
        .into_iter()
        .map(signed_out)
        .collect()
}

async fn publish(node: &TestNode, ids: &[&str]) {
    let mut c = node.vacancies("publisher").await;
    for id in ids {
        c.put(pb::PutVacancyRequest {
            vacancy: Some(lasting_vacancy(id)),
            expected_revision: None,
        })
        .await
        .unwrap_or_else(|s| panic!("put {id}: {s:?}"));
    }
}

/// Merges `text` (TOML tables) into `node`'s node.toml and checks that it still parses.
fn append_config(node: &TestNode, text: &str) {
    let mut doc: toml::Table =
        toml::from_str(&std::fs::read_to_string(&node.init.config).unwrap()).unwrap();
    let extra: toml::Table = toml::from_str(text).expect("extra config");
    for (table, values) in extra {
        let t = doc
            .entry(table)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .unwrap();
        for (k, v) in values.as_table().unwrap() {
            t.insert(k.clone(), v.clone());
        }
    }
    let all = toml::to_string(&doc).unwrap();
    passerelle_node::NodeConfig::parse(&all).expect("node.toml parses");
    std::fs::write(&node.init.config, all).unwrap();
}

/// Points `me`'s `[[peers]]` entry for `agency` at `endpoint` and refuses `refuse` from it.
fn edit_peer(me: &TestNode, agency: &str, endpoint: &str, refuse: &[&str]) {
    let text = std::fs::read_to_string(&me.init.config).unwrap();
    let mut doc: toml::Table = toml::from_str(&text).unwrap();
    let peers = doc["peers"].as_array_mut().unwrap();
    for p in peers.iter_mut() {
        let t = p.as_table_mut().unwrap();
        if t["agency"].as_str() == Some(agency) {
            t.insert("endpoint".into(), endpoint.into());
            t.insert(
                "refuse_origins".into(),
                toml::Value::Array(refuse.iter().map(|r| (*r).into()).collect()),
            );
        }
    }
    std::fs::write(&me.init.config, toml::to_string(&doc).unwrap()).unwrap();
}

fn stored(node: &TestNode, key: &str) -> Option<u64> {
    let k: RecordKey = key.parse().unwrap();
    node.node().store().get(&k).unwrap().map(|s| s.revision)
}

fn refused(node: &TestNode, why: Refusal) -> u64 {
    node.node()
        .counters
        .refused()
        .get(&why)
        .copied()
        .unwrap_or(0)
}

/// Polls every 5 ms: an error stays the peer's last one only until the next attempt fails,
/// 37.5 ms or more later with `backoff_min_ms = 50` (a 50 ms poll missed some).
async fn wait_error(node: &TestNode, peer: &str, needle: &str) -> String {
    let mut last = String::new();
    for _ in 0..3000 {
        if let Some(e) = node.peer_status(peer).and_then(|s| s.last_error) {
            if e.contains(needle) {
                return e;
            }
            last = e;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{peer}: no error containing {needle:?} within 15 s (last: {last:?})");
}

fn batch(records: Vec<pb::SignedRecord>, cursor: u64, head: u64) -> pb::PullBatch {
    pb::PullBatch {
        records,
        cursor,
        head_seq: head,
    }
}

/// VDAB pulls from a fake ANPE node (ANPE's certificate), trusting ANPE and France Travail but
/// refusing France Travail's records from ANPE; `extra` is appended to VDAB's `[sync]` table.
async fn hostile_setup(
    anpe: &TestNode,
    ft: &TestNode,
    scripts: Vec<Script>,
    extra: &str,
) -> (TestNode, Arc<Mutex<FakeState>>) {
    let pending = PendingNode::init(VDAB).await;
    let vdab = &pending.node;
    trust_partner(vdab, anpe);
    trust_partner(vdab, ft);
    // the fake serves with ANPE's TLS configuration, which must accept VDAB's node
    trust_partner(anpe, vdab);
    add_peer(vdab, anpe, &PeerEntry::pull());
    let state = Arc::new(Mutex::new(FakeState {
        scripts: scripts.into(),
        ..FakeState::default()
    }));
    let fake = FakePeer {
        state: state.clone(),
        head: 100,
    };
    let addr = serve_fake(anpe, fake).await;
    edit_peer(vdab, ANPE, &format!("https://{addr}"), &[FT]);
    append_config(
        vdab,
        &format!(
            "\n[sync]\nbackoff_min_ms = 50\nbackoff_max_secs = 1\nbatch_records = 10\n{extra}"
        ),
    );
    (pending.start().await, state)
}

// ---------------------------------------------------------------- as the side pulled from

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_a_peer_may_not_deliver_altered_or_replayed_are_refused_and_counted() {
    let anpe = TestNode::start(ANPE).await;
    let ft = TestNode::start(FT).await;
    publish(&anpe, &["a-1", "a-2", "a-3"]).await;
    publish(&ft, &["f-1"]).await;
    let mut a = signed_by(&anpe);
    let f = signed_by(&ft);
    assert_eq!((a.len(), f.len()), (3, 1));
    a.sort_by(|x, y| x.key.cmp(&y.key));
    let (a1, a2, a3) = (a[0].clone(), a[1].clone(), a[2].clone());
    // a second revision of a-1, to replay the first one after it
    let mut c = anpe.vacancies("publisher").await;
    let mut v = lasting_vacancy("a-1");
    v.title = "Lasser, tweede versie".into();
    c.put(pb::PutVacancyRequest {
        vacancy: Some(v),
        expected_revision: Some(1),
    })
    .await
    .unwrap();
    let a1_rev2 = signed_by(&anpe)
        .into_iter()
        .find(|r| r.key == a1.key)
        .unwrap();
    assert_eq!(a1_rev2.revision, 2);

    let mut altered = a2.clone();
    let last = altered.payload.len() - 1;
    altered.payload[last] ^= 0x01;
    let mut forged_origin = f[0].clone();
    // ANPE's signature over France Travail's key: ANPE cannot sign for another origin
    forged_origin.key_id = a3.key_id.clone();
    forged_origin.signature = a3.signature.clone();
    let scripts = vec![Script::Batches(vec![
        batch(
            vec![a1.clone(), f[0].clone(), altered, forged_origin],
            4,
            10,
        ),
        batch(vec![a1_rev2.clone(), a3.clone()], 6, 10),
        // replays: the old revision after the new one, and the same version again
        batch(vec![a1.clone(), a3.clone()], 10, 10),
    ])];
    let (vdab, state) = hostile_setup(&anpe, &ft, scripts, "").await;

    let (a1k, a2k, a3k, f1k) = (
        a1.key.clone(),
        a2.key.clone(),
        a3.key.clone(),
        f[0].key.clone(),
    );
    wait_until_ok(
        "the honest records applied",
        Duration::from_secs(20),
        || {
            let s = vdab.peer_status(ANPE).unwrap();
            (s.cursor == 10).then_some(()).ok_or(format!("{s:?}"))
        },
    )
    .await;
    assert_eq!(
        stored(&vdab, &a1k),
        Some(2),
        "a replayed old revision never wins"
    );
    assert_eq!(stored(&vdab, &a3k), Some(1));
    assert_eq!(stored(&vdab, &a2k), None, "altered bytes are never stored");
    assert_eq!(
        stored(&vdab, &f1k),
        None,
        "a refused origin is never stored"
    );
    assert_eq!(
        refused(&vdab, Refusal::OriginNotAllowed),
        2,
        "f-1, and f-1 under ANPE's signature"
    );
    assert_eq!(refused(&vdab, Refusal::BadSignature), 1, "the altered a-2");
    let s = vdab.peer_status(ANPE).unwrap();
    assert_eq!(s.refused, 3);
    assert_eq!(s.applied, 3, "a-1 rev 1, a-1 rev 2, a-3: each once");
    assert_eq!(s.ignored, 2, "both replays ignored");
    assert_eq!(state.lock().unwrap().pulls, 1);
    // each applied version is one sync-log entry, no more
    assert_eq!(vdab.head_seq(), 3);
    assert_store_consistent(&vdab);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_batch_or_message_is_refused_whole_and_sync_resumes_with_an_honest_peer() {
    let anpe = TestNode::start(ANPE).await;
    let ids: Vec<String> = (0..12).map(|i| format!("o-{i}")).collect();
    publish(&anpe, &ids.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let mut many = signed_by(&anpe);
    many.sort_by(|x, y| x.key.cmp(&y.key));
    assert_eq!(many.len(), 12);
    // one record fattened past the message limit (its signature no longer matters: the
    // message is refused before anything looks at it)
    let mut fat = many[0].clone();
    fat.payload = vec![b'x'; 300 << 10];
    let scripts = vec![
        // 12 records where at most 10 are accepted
        Script::Batches(vec![batch(many.clone(), 12, 12)]),
        // a 300 KiB message where 256 KiB are accepted
        Script::Batches(vec![batch(vec![fat], 1, 12)]),
        // then the same records in batches of the accepted size
        Script::Batches(vec![
            batch(many[..10].to_vec(), 10, 12),
            batch(many[10..].to_vec(), 12, 12),
        ]),
    ];
    let ft = TestNode::start(FT).await;
    let limits = "\n[limits]\nmax_batch_records = 10\nmax_message_bytes = 262144\n";
    let (vdab, state) = hostile_setup(&anpe, &ft, scripts, limits).await;
    let e = wait_error(&vdab, ANPE, "more than the 10").await;
    assert!(e.contains("12 records"), "{e}");
    let e = wait_error(&vdab, ANPE, "pull stream failed").await;
    assert!(e.contains("exhausted") && e.contains("262144"), "{e}");
    wait_until_ok(
        "the honest batches applied",
        Duration::from_secs(20),
        || {
            let s = vdab.peer_status(ANPE).unwrap();
            (s.cursor == 12).then_some(()).ok_or(format!("{s:?}"))
        },
    )
    .await;
    assert_eq!(state.lock().unwrap().pulls, 3);
    let s = vdab.peer_status(ANPE).unwrap();
    assert_eq!(
        s.applied, 12,
        "each record applied once, from the honest batches"
    );
    assert_eq!(vdab.head_seq(), 12);
    for r in &many {
        assert_eq!(stored(&vdab, &r.key), Some(1));
    }
    assert_store_consistent(&vdab);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_peer_is_left_after_the_deadline_and_the_node_keeps_serving() {
    let scripts = vec![
        Script::HangHello,
        // opens the stream, then sends nothing at all (no heartbeat)
        Script::Batches(Vec::new()),
    ];
    let (anpe, ft) = (TestNode::start(ANPE).await, TestNode::start(FT).await);
    let extra = "heartbeat_secs = 1\n[limits]\ncall_timeout_secs = 1\npull_idle_timeout_secs = 2\n";
    let (vdab, state) = hostile_setup(&anpe, &ft, scripts, extra).await;
    let e = wait_error(&vdab, ANPE, "hello timed out").await;
    assert!(e.contains("1 s"), "{e}");
    let e = wait_error(&vdab, ANPE, "not even a heartbeat").await;
    assert!(
        e.contains("DEADLINE_EXCEEDED") || e.contains("Deadline"),
        "{e}"
    );
    // it reconnects after each failure: a new pull call arrives
    wait_until_ok("a third pull", Duration::from_secs(15), || {
        let pulls = state.lock().unwrap().pulls;
        (pulls >= 3).then_some(()).ok_or(format!("{pulls} pulls"))
    })
    .await;
    // meanwhile the node serves its own clients
    let mut c = vdab.vacancies("publisher").await;
    let put = tokio::time::timeout(
        Duration::from_secs(10),
        c.put(pb::PutVacancyRequest {
            vacancy: Some(lasting_vacancy("v-1")),
            expected_revision: None,
        }),
    )
    .await
    .expect("a put answered within 10 s")
    .expect("put");
    assert_eq!(put.into_inner().revision, 1);
}

// ---------------------------------------------------------------- as the side called

/// A channel to `vdab` with ANPE's node certificate, as ANPE's peer loop would open it.
async fn anpe_node_channel(vdab: &TestNode, anpe: &TestNode) -> tonic::transport::Channel {
    trust_partner(anpe, vdab);
    let material = passerelle::reload::Material::load(&anpe.config()).expect("anpe material");
    let pem = read_pem(
        &anpe.init.dir.join("node.pem"),
        &anpe.init.dir.join("node-key.pem"),
    );
    let tls = passerelle_pki::client_config(
        &pem.cert_pem,
        &pem.key_pem,
        &material.trust,
        Some(&vdab.agency()),
    )
    .expect("client config");
    passerelle::client::connect(&vdab.address(), Arc::new(tls))
        .await
        .expect("connect")
}

fn limited(vdab: &TestNode, limit: &str) -> f64 {
    let page = vdab.handle.as_ref().unwrap().metrics.render();
    let prefix = format!("passerelle_peer_limited_total{{peer=\"{ANPE}\",limit=\"{limit}\"}} ");
    page.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_calls_and_too_many_streams_are_refused_while_others_are_served() {
    let anpe = TestNode::start(ANPE).await;
    let pending = PendingNode::init(VDAB).await;
    trust_partner(&pending.node, &anpe);
    add_peer(&pending.node, &anpe, &PeerEntry::serve());
    append_config(
        &pending.node,
        "\n[limits]\npeer_calls_per_second = 5\nmax_streams_per_peer = 2\n",
    );
    let vdab = pending.start().await;
    publish(&vdab, &["v-1"]).await;
    let ch = anpe_node_channel(&vdab, &anpe).await;
    let mut fed = pb::federation_client::FederationClient::new(ch.clone());

    // 40 Hello calls at once: a burst of 10 passes, most of the rest are refused
    let mut calls = Vec::new();
    for _ in 0..40 {
        let mut c = fed.clone();
        calls.push(tokio::spawn(async move {
            c.hello(pb::HelloRequest {
                agency: ANPE.into(),
                node_version: "flood".into(),
                protocol_version: passerelle::federation::PROTOCOL_VERSION,
            })
            .await
        }));
    }
    let (mut ok, mut exhausted) = (0, 0);
    for c in calls {
        match c.await.unwrap() {
            Ok(_) => ok += 1,
            Err(s) => {
                assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
                assert!(s.message().contains("calls per second"), "{}", s.message());
                exhausted += 1;
            }
        }
    }
    assert!(ok >= 10 && exhausted >= 20, "ok {ok}, refused {exhausted}");
    assert_eq!(limited(&vdab, "rate"), f64::from(exhausted));
    // own clients are not held to a partner's limit
    let mut own = vdab.vacancies("publisher").await;
    for i in 0..30 {
        own.get(pb::GetVacancyRequest {
            id: "v-1".into(),
            origin: String::new(),
        })
        .await
        .unwrap_or_else(|s| panic!("own get {i}: {s:?}"));
    }

    // streams: two open follow pulls are the most; a third is refused
    tokio::time::sleep(Duration::from_secs(3)).await; // the allowance refills
    let pull = || pb::PullRequest {
        since: 0,
        follow: true,
        max_records: 0,
        max_bytes: 0,
    };
    let mut s1 = fed.pull(pull()).await.expect("first stream").into_inner();
    let s2 = fed.pull(pull()).await.expect("second stream").into_inner();
    let first = s1.message().await.unwrap().expect("a batch");
    assert_eq!(first.records.len(), 1);
    let third = fed.pull(pull()).await.expect_err("third stream");
    assert_eq!(third.code(), Code::ResourceExhausted, "{third:?}");
    assert!(
        third.message().contains("open pull streams"),
        "{}",
        third.message()
    );
    assert_eq!(limited(&vdab, "streams"), 1.0);
    // a stream that ends gives its slot back
    drop(s2);
    wait_until_ok("a slot freed", Duration::from_secs(10), || {
        let open = vdab.handle.as_ref().unwrap().metrics.render();
        let line = format!("passerelle_peer_open_streams{{peer=\"{ANPE}\"}} 1");
        open.contains(&line).then_some(()).ok_or(open)
    })
    .await;
    let again = fed.pull(pull()).await;
    assert!(again.is_ok(), "{:?}", again.err());
    drop(s1);
    // nothing a refused call carried was stored, and the node still answers its own clients
    assert_eq!(vdab.head_seq(), 1);
    let got = own
        .get(pb::GetVacancyRequest {
            id: "v-1".into(),
            origin: String::new(),
        })
        .await
        .expect("own get after the flood");
    assert_eq!(got.into_inner().id, "v-1");
}
