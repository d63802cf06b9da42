//! Prometheus metrics on their own plain-HTTP listener: RPCs by method and code, per-peer sync,
//! records applied and refused, store size and certificate expiry.
//!
//! RPC series are recorded by a tower layer on the gRPC router; everything else is read from
//! the node, the peer loops and the certificate sweep at scrape time, so nothing has to be
//! kept in step. The page is the Prometheus text format (0.0.4) written by `prometheus-client`.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use hyper_util::rt::TokioIo;
use passerelle_node::{Node, Refusal};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::Code;

use crate::federation::peer::{PeerState, PeerStates};
use crate::limits::PeerLimits;
use crate::reload::Certificates;

/// Every refusal reason, so each series exists (at 0) before the first refusal.
const REFUSALS: [Refusal; 8] = [
    Refusal::BadKey,
    Refusal::UnknownOrigin,
    Refusal::OriginNotAllowed,
    Refusal::UnknownKey,
    Refusal::BadSignature,
    Refusal::BadPayload,
    Refusal::Mismatch,
    Refusal::Invalid,
];

const PEER_STATES: [PeerState; 5] = [
    PeerState::Syncing,
    PeerState::Live,
    PeerState::BackingOff,
    PeerState::Blocked,
    PeerState::Failing,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    method: String,
    code: &'static str,
}

type HistogramFamily = Family<RpcLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~65 s: loopback reads up to bulk imports over a slow link
    Histogram::new(exponential_buckets(0.0005, 2.0, 18))
}

/// The node's metric registry and the RPC series the router layer records into.
pub struct Metrics {
    registry: Registry,
    started: Family<MethodLabels, Counter>,
    handled: Family<RpcLabels, Counter>,
    latency: HistogramFamily,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A registry reading `node`, `peers` and `certs` at each scrape.
    pub fn new(
        node: Arc<Node>,
        peers: Arc<PeerStates>,
        certs: Arc<Certificates>,
        limits: Arc<PeerLimits>,
    ) -> Metrics {
        let mut registry = Registry::with_prefix("passerelle");
        let started = Family::<MethodLabels, Counter>::default();
        let handled = Family::<RpcLabels, Counter>::default();
        let latency = HistogramFamily::new_with_constructor(latency_histogram);
        registry.register(
            "rpc_started",
            "gRPC calls started, by method (the gRPC path)",
            started.clone(),
        );
        registry.register(
            "rpc_handled",
            "gRPC calls finished, by method and status code (streams count when they end)",
            handled.clone(),
        );
        registry.register(
            "rpc_duration_seconds",
            "Time from a call's arrival to its response headers, by method and status code",
            latency.clone(),
        );
        registry.register_collector(Box::new(NodeCollector {
            node,
            peers,
            certs,
            limits,
        }));
        Metrics {
            registry,
            started,
            handled,
            latency,
        }
    }

    /// The page served at `/metrics`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // writing to a String cannot fail
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }

    fn start_call(&self, method: &str) {
        self.started
            .get_or_create(&MethodLabels {
                method: method.to_owned(),
            })
            .inc();
    }

    fn finish_call(&self, method: String, code: Code, latency: Duration) {
        let labels = RpcLabels {
            method,
            code: code_name(code),
        };
        self.handled.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&labels)
            .observe(latency.as_secs_f64());
    }
}

/// The canonical name of a status code, as the gRPC specification spells it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Seconds from now until `t`; negative once `t` has passed.
fn seconds_until(t: SystemTime) -> f64 {
    match t.duration_since(SystemTime::now()) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// Reads the node's state at scrape time.
struct NodeCollector {
    node: Arc<Node>,
    peers: Arc<PeerStates>,
    certs: Arc<Certificates>,
    limits: Arc<PeerLimits>,
}

/// One series of a family whose values are known only at scrape time.
fn family<L: EncodeLabelSet, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, M)>,
    kind: prometheus_client::metrics::MetricType,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in series {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn single<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: M,
) -> Result<(), std::fmt::Error> {
    let kind = value.metric_type();
    value.encode(encoder.encode_descriptor(name, help, None, kind)?)
}

impl std::fmt::Debug for NodeCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCollector").finish_non_exhaustive()
    }
}

impl Collector for NodeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use prometheus_client::metrics::MetricType::{Counter as C, Gauge as G};
        let peers = self.peers.snapshot();
        family(
            &mut encoder,
            "peer_limited",
            "Calls of a partner agency refused by a limit (rate, streams, deadline)",
            self.limits.refused().into_iter().map(|((agency, why), n)| {
                (
                    [
                        ("peer", agency.to_string()),
                        ("limit", why.label().to_owned()),
                    ],
                    ConstCounter::new(n),
                )
            }),
            C,
        )?;
        family(
            &mut encoder,
            "peer_open_streams",
            "Pull streams a partner agency holds open on this node",
            self.limits.open_streams().into_iter().map(|(agency, n)| {
                (
                    [("peer", agency.to_string())],
                    ConstGauge::new(i64::from(n)),
                )
            }),
            G,
        )?;
        family(
            &mut encoder,
            "peer_lag_records",
            "Records the peer held that this node had not pulled yet, as of the last batch",
            peers.iter().map(|p| {
                (
                    [("peer", p.agency.clone())],
                    ConstGauge::new(p.lag() as i64),
                )
            }),
            G,
        )?;
        family(
            &mut encoder,
            "peer_last_success_timestamp_seconds",
            "Unix time of the last batch pulled from the peer (0: none since start)",
            peers.iter().map(|p| {
                let t = p.last_success.map(unix_seconds).unwrap_or(0.0);
                ([("peer", p.agency.clone())], ConstGauge::new(t))
            }),
            G,
        )?;
        family(
            &mut encoder,
            "peer_state",
            "1 for the state the pull from the peer is in, 0 for the others",
            peers.iter().flat_map(|p| {
                PEER_STATES.iter().map(move |s| {
                    (
                        [("peer", p.agency.clone()), ("state", s.as_str().to_owned())],
                        ConstGauge::new(i64::from(*s == p.state)),
                    )
                })
            }),
            G,
        )?;
        family(
            &mut encoder,
            "peer_applied_records",
            "Records pulled from the peer and stored since start",
            peers
                .iter()
                .map(|p| ([("peer", p.agency.clone())], ConstCounter::new(p.applied))),
            C,
        )?;
        family(
            &mut encoder,
            "peer_refused_records",
            "Records pulled from the peer and refused since start",
            peers
                .iter()
                .map(|p| ([("peer", p.agency.clone())], ConstCounter::new(p.refused))),
            C,
        )?;

        let counters = &self.node.counters;
        single(
            &mut encoder,
            "records_applied",
            "Records delivered by peers and stored since start",
            ConstCounter::new(counters.applied.load(std::sync::atomic::Ordering::Relaxed)),
        )?;
        single(
            &mut encoder,
            "records_ignored",
            "Records delivered by peers that were already held (same or newer revision)",
            ConstCounter::new(counters.ignored.load(std::sync::atomic::Ordering::Relaxed)),
        )?;
        let refused = counters.refused();
        let mut reasons: Vec<Refusal> = REFUSALS.to_vec();
        reasons.extend(refused.keys().filter(|r| !REFUSALS.contains(r)));
        family(
            &mut encoder,
            "records_refused",
            "Records delivered by peers and refused, by reason",
            reasons.into_iter().map(|r| {
                (
                    [("reason", r.label())],
                    ConstCounter::new(refused.get(&r).copied().unwrap_or(0)),
                )
            }),
            C,
        )?;

        let store = self.node.store();
        // a failing size read leaves the series out rather than failing the whole page
        if let Ok(bytes) = store.size_on_disk() {
            single(
                &mut encoder,
                "store_size_bytes",
                "Bytes the store occupies on disk",
                ConstGauge::new(bytes as i64),
            )?;
        }
        single(
            &mut encoder,
            "store_writable",
            "1 while the store accepts writes, 0 while it refuses them (full or read-only data folder)",
            ConstGauge::new(i64::from(self.node.write_failure().is_none())),
        )?;
        single(
            &mut encoder,
            "store_head_sequence",
            "Sequence number of the last entry of the node's sync log",
            ConstGauge::new(store.head_seq() as i64),
        )?;

        let certs = self.certs.snapshot();
        family(
            &mut encoder,
            "certificate_expiry_seconds",
            "Seconds until the certificate expires (negative once expired)",
            certs.iter().map(|c| {
                (
                    [("kind", c.kind.to_owned()), ("subject", c.subject.clone())],
                    ConstGauge::new(seconds_until(c.not_after)),
                )
            }),
            G,
        )?;
        family(
            &mut encoder,
            "certificate_not_after_timestamp_seconds",
            "Unix time at which the certificate expires",
            certs.iter().map(|c| {
                (
                    [("kind", c.kind.to_owned()), ("subject", c.subject.clone())],
                    ConstGauge::new(unix_seconds(c.not_after)),
                )
            }),
            G,
        )?;
        single(
            &mut encoder,
            "tls_reloads",
            "Successful reloads of certificates, trust file and CRL since start",
            ConstCounter::new(self.certs.reloads()),
        )?;
        single(
            &mut encoder,
            "tls_reload_failures",
            "Reloads that failed and kept the previous certificates since start",
            ConstCounter::new(self.certs.reload_failures()),
        )?;
        Ok(())
    }
}

// ---------------------------------------------------------------- RPC layer

/// Tower layer that counts every call and its status and times it to the response headers.
#[derive(Clone)]
pub struct MetricsLayer {
    metrics: Arc<Metrics>,
}

impl MetricsLayer {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        MetricsLayer { metrics }
    }
}

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = Metered<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Metered {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Metered<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// The method label: the gRPC path, or `other` for paths no service answers (which would
/// otherwise let a client create series at will).
fn method_label(path: &str) -> String {
    match crate::authz::classify(path) {
        crate::authz::Access::Unknown => "other".to_owned(),
        _ => path.to_owned(),
    }
}

fn header_code(headers: &http::HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .map(|v| Code::from_bytes(v.as_bytes()))
}

impl<S, B> tower::Service<http::Request<B>> for Metered<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = method_label(req.uri().path());
        let metrics = self.metrics.clone();
        metrics.start_call(&method);
        let arrived = Instant::now();
        // the clone that was polled ready must serve this call
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let call = inner.call(req);
        Box::pin(async move {
            let response = match call.await {
                Ok(r) => r,
                Err(e) => {
                    metrics.finish_call(method, Code::Unknown, arrived.elapsed());
                    return Err(e);
                }
            };
            let latency = arrived.elapsed();
            // trailers-only responses (errors before any message) carry the status in the
            // headers; the others in the trailers, read as the body ends
            if let Some(code) = header_code(response.headers()) {
                metrics.finish_call(method, code, latency);
                return Ok(response);
            }
            let (parts, body) = response.into_parts();
            let body = MeteredBody {
                inner: body,
                pending: Some(Pending {
                    metrics,
                    method,
                    latency,
                }),
            };
            Ok(http::Response::from_parts(
                parts,
                tonic::body::Body::new(body),
            ))
        })
    }
}

struct Pending {
    metrics: Arc<Metrics>,
    method: String,
    latency: Duration,
}

impl Pending {
    fn finish(self, code: Code) {
        self.metrics.finish_call(self.method, code, self.latency);
    }
}

/// A response body that records the call when its trailers pass (or when it is dropped
/// before: the client went away, or the server stopped).
struct MeteredBody {
    inner: tonic::body::Body,
    pending: Option<Pending>,
}

impl http_body::Body for MeteredBody {
    type Data = <tonic::body::Body as http_body::Body>::Data;
    type Error = <tonic::body::Body as http_body::Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let code = header_code(trailers).unwrap_or(Code::Unknown);
                    if let Some(p) = self.pending.take() {
                        p.finish(code);
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(p) = self.pending.take() {
                    p.finish(Code::Internal);
                }
            }
            Poll::Ready(None) => {
                if let Some(p) = self.pending.take() {
                    p.finish(Code::Unknown);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for MeteredBody {
    fn drop(&mut self) {
        if let Some(p) = self.pending.take() {
            p.finish(Code::Cancelled);
        }
    }
}

// ---------------------------------------------------------------- listener

/// Serves `GET /metrics` (plain HTTP/1.1) on `listener` until `stop` turns true.
pub fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stop.changed() => break,
            };
            let (tcp, remote) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let metrics = metrics.clone();
            let mut stop = stop.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let metrics = metrics.clone();
                    async move { Ok::<_, std::convert::Infallible>(answer(&metrics, &req, remote)) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(TokioIo::new(tcp), service);
                tokio::pin!(conn);
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            tracing::debug!(%remote, error = %e, "metrics connection failed");
                        }
                    }
                    _ = stop.changed() => {}
                }
            });
        }
    })
}

fn answer<B>(
    metrics: &Metrics,
    req: &http::Request<B>,
    remote: SocketAddr,
) -> http::Response<String> {
    let reply = |status: http::StatusCode, body: String| {
        http::Response::builder()
            .status(status)
            .header(
                http::header::CONTENT_TYPE,
                if status.is_success() {
                    prometheus_client::encoding::prometheus_text::CONTENT_TYPE
                } else {
                    "text/plain; charset=utf-8"
                },
            )
            .body(body)
            .expect("static response parts")
    };
    match (req.method(), req.uri().path()) {
        (&http::Method::GET | &http::Method::HEAD, "/metrics") => {
            reply(http::StatusCode::OK, metrics.render())
        }
        (_, "/metrics") => reply(
            http::StatusCode::METHOD_NOT_ALLOWED,
            "only GET is served\n".into(),
        ),
        (_, path) => {
            tracing::debug!(%remote, path, "metrics listener: unknown path");
            reply(
                http::StatusCode::NOT_FOUND,
                "metrics are served at /metrics\n".into(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_specification_name() {
        assert_eq!(code_name(Code::Ok), "OK");
        assert_eq!(code_name(Code::PermissionDenied), "PERMISSION_DENIED");
        assert_eq!(code_name(Code::from_i32(8)), "RESOURCE_EXHAUSTED");
    }

    #[test]
    fn unknown_paths_share_one_label() {
        assert_eq!(
            method_label("/passerelle.v1.Vacancies/Put"),
            "/passerelle.v1.Vacancies/Put"
        );
        assert_eq!(method_label("/evil.Service/Random123"), "other");
        assert_eq!(method_label("/passerelle.v1.Vacancies/Nope"), "other");
    }

    #[test]
    fn seconds_until_is_negative_after_the_time() {
        let past = SystemTime::now() - Duration::from_secs(100);
        assert!(seconds_until(past) <= -100.0);
        let future = SystemTime::now() + Duration::from_secs(100);
        assert!(seconds_until(future) > 99.0);
    }
}
