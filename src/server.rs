//! Serving a node: the mutual-TLS listener (TLS 1.3, client certificate, handshake timeout) and the gRPC router.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use passerelle_node::{Node, NodeConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::CompressionEncoding;
use tonic::transport::server::Connected;

use crate::admin::{AdminService, PeerControls};
use crate::authz::{AuthzLayer, PeerInfo, Policy};
use crate::federation::peer::{spawn_peer_loops, PeerStates};
use crate::federation::service::FederationService;
use crate::limits::PeerLimits;
use crate::metrics::{Metrics, MetricsLayer};
use crate::pb::v1 as pb;
use crate::reload::{Material, Reloader, Swap};
use crate::services::Records;

/// An accepted, authenticated TLS connection.
pub struct TlsConn {
    inner: TlsStream<TcpStream>,
    info: PeerInfo,
}

impl Connected for TlsConn {
    type ConnectInfo = PeerInfo;
    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Builds the rustls server configuration from the files `node.toml` names.
pub fn tls_config(cfg: &NodeConfig) -> anyhow::Result<rustls::ServerConfig> {
    Ok(Material::load(cfg)?.server)
}

/// A running node; dropping it does not stop it, call [`ServerHandle::shutdown`].
pub struct ServerHandle {
    pub addr: SocketAddr,
    pub node: Arc<Node>,
    pub peers: Arc<PeerStates>,
    /// Where `/metrics` is served (plain HTTP).
    pub metrics_addr: SocketAddr,
    pub metrics: Arc<Metrics>,
    /// Reloads certificates, trust file and CRL; knows their expiry.
    pub reloader: Arc<Reloader>,
    shutdown: Option<oneshot::Sender<()>>,
    stop_background: watch::Sender<bool>,
    background: Vec<tokio::task::JoinHandle<()>>,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl ServerHandle {
    /// Stops the peer loops, stops accepting calls, lets calls in flight finish, flushes the store.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.stop_background.send(true);
        for h in self.background.drain(..) {
            let _ = h.await;
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // follow streams never end by themselves: give calls a bound to drain, then stop
        match tokio::time::timeout(Duration::from_secs(5), &mut self.task).await {
            Ok(r) => r??,
            Err(_) => {
                tracing::warn!("calls still open after 5 s: closing them");
                self.task.abort();
            }
        }
        let node = self.node.clone();
        tokio::task::spawn_blocking(move || node.store().flush()).await??;
        Ok(())
    }

    /// Waits until the server stops by itself (it does not, unless it fails).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await??;
        Ok(())
    }
}

/// Opens the store and serves the node on `listener` (or `cfg.listen`) until shut down.
pub async fn start(cfg: NodeConfig, listener: Option<TcpListener>) -> anyhow::Result<ServerHandle> {
    passerelle_pki::install_crypto_provider();
    let material = Material::load(&cfg)?;
    let cfg2 = cfg.clone();
    let node = tokio::task::spawn_blocking(move || Node::open(&cfg2))
        .await?
        .map_err(|e| {
            anyhow!(
                "cannot open the store in {}: {e}",
                cfg.path(&cfg.data_dir).display()
            )
        })?;
    let node = Arc::new(node);
    let controls =
        Arc::new(PeerControls::load(node.store()).context("cannot read the blocked peers")?);
    let reloader = Arc::new(Reloader::new(cfg.clone(), node.clone(), material));
    let listener = match listener {
        Some(l) => l,
        None => TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("cannot listen on {}", cfg.listen))?,
    };
    let addr = listener.local_addr()?;
    let handshake_timeout = Duration::from_secs(cfg.tls.handshake_timeout_secs);
    let incoming = accept_loop(listener, reloader.server.clone(), handshake_timeout);
    let metrics_listener = TcpListener::bind(cfg.metrics.listen)
        .await
        .with_context(|| format!("cannot listen for metrics on {}", cfg.metrics.listen))?;
    let metrics_addr = metrics_listener.local_addr()?;
    let peers = Arc::new(PeerStates::default());
    let limits = PeerLimits::from_config(&cfg.limits);
    let metrics = Arc::new(Metrics::new(
        node.clone(),
        peers.clone(),
        reloader.certs.clone(),
        limits.clone(),
    ));

    let policy = Arc::new(
        Policy::new(
            cfg.agency.clone(),
            cfg.peers.iter().map(|p| p.agency.clone()),
            cfg.access.partner_analysts.iter().cloned(),
        )
        .with_controls(controls.clone()),
    );
    let records = Records::new(node.clone());
    let max = cfg.limits.max_message_bytes;
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<pb::vacancies_server::VacanciesServer<Records>>()
        .await;
    health_reporter
        .set_serving::<pb::shortages_server::ShortagesServer<Records>>()
        .await;
    health_reporter
        .set_serving::<pb::supply_server::SupplyServer<Records>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;

    macro_rules! tuned {
        ($svc:expr) => {
            $svc.accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd)
                .send_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Zstd)
                .max_decoding_message_size(max)
                .max_encoding_message_size(max)
        };
    }

    let (stop_background, stop_rx) = watch::channel(false);
    let router = tonic::transport::Server::builder()
        .max_concurrent_streams(cfg.limits.max_concurrent_streams)
        .initial_stream_window_size(4 << 20)
        .initial_connection_window_size(8 << 20)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .layer(MetricsLayer::new(metrics.clone()))
        .layer(AuthzLayer::new(
            policy,
            limits.clone(),
            Duration::from_secs(cfg.limits.call_timeout_secs),
        ))
        .add_service(health)
        .add_service(reflection)
        .add_service(tuned!(pb::vacancies_server::VacanciesServer::new(
            records.clone()
        )))
        .add_service(tuned!(pb::shortages_server::ShortagesServer::new(
            records.clone()
        )))
        .add_service(tuned!(pb::supply_server::SupplyServer::new(records)))
        .add_service(tuned!(pb::analytics_server::AnalyticsServer::new(
            crate::analytics::AnalyticsService::new(node.clone())
        )))
        .add_service(tuned!(pb::federation_server::FederationServer::new(
            FederationService::new(node.clone(), &cfg, stop_rx.clone())
                .with_controls(controls.clone())
                .with_limits(limits.clone())
        )))
        .add_service(tuned!(pb::admin_server::AdminServer::new(
            AdminService::new(
                node.clone(),
                &cfg,
                peers.clone(),
                controls.clone(),
                reloader.certs.clone(),
            )
        )));

    let mut background = spawn_peer_loops(
        node.clone(),
        &cfg,
        &reloader.peers,
        peers.clone(),
        controls.clone(),
        stop_rx.clone(),
    );
    background.push(crate::metrics::serve(
        metrics_listener,
        metrics.clone(),
        stop_rx.clone(),
    ));
    background.push(crate::reload::spawn_watch(
        reloader.clone(),
        stop_rx.clone(),
    ));
    background.push(tokio::spawn(sweep(node.clone(), cfg.sync.clone(), stop_rx)));

    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async {
        let _ = rx.await;
    }));
    tracing::info!(agency = %cfg.agency, %addr, %metrics_addr, "node listening");
    Ok(ServerHandle {
        addr,
        node,
        peers,
        metrics_addr,
        metrics,
        reloader,
        shutdown: Some(tx),
        stop_background,
        background,
        task,
    })
}

/// Expires own vacancies past `closes_on` (at start-up and every `sweep_interval_secs`) and
/// purges old tombstones (at start-up and once per UTC day).
async fn sweep(
    node: Arc<Node>,
    sync: passerelle_node::config::SyncConfig,
    mut stop: watch::Receiver<bool>,
) {
    // tombstones are kept for days: one purge (a scan of every vacancy) per UTC day is enough
    let mut purged_on: Option<passerelle_model::Date> = None;
    loop {
        let n = node.clone();
        let retention = sync.tombstone_retention_days;
        let today = passerelle_model::Date::today();
        let purge = purged_on != Some(today);
        let result = tokio::task::spawn_blocking(move || {
            // the "open today" aggregates move with the UTC date
            n.analytics().roll_day(today);
            let expired = n.expire_due(today)?;
            let purged = if purge {
                n.purge_tombstones(retention, passerelle_node::now_micros())?
            } else {
                0
            };
            Ok::<_, passerelle_node::NodeError>((expired, purged))
        })
        .await;
        if matches!(result, Ok(Ok(_))) && purge {
            purged_on = Some(today);
        }
        match result {
            Ok(Ok((expired, purged))) => {
                if expired + purged > 0 {
                    tracing::info!(expired, purged, "sweep");
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "sweep failed"),
            Err(e) => tracing::warn!(error = %e, "sweep task failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(sync.sweep_interval_secs)) => {}
            _ = stop.changed() => break,
        }
    }
}

/// Accepts TCP connections and completes TLS handshakes concurrently, each within the timeout.
/// Each handshake uses the configuration in force when the connection arrives (see reload).
/// Public so that tests can stand up other gRPC servers (fake peers) behind the same TLS.
pub fn accept_loop(
    listener: TcpListener,
    tls: Arc<Swap<rustls::ServerConfig>>,
    timeout: Duration,
) -> ReceiverStream<Result<TlsConn, io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            // stop accepting (and free the port) as soon as the server stops reading connections
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = tx.closed() => break,
            };
            let (tcp, remote) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = TlsAcceptor::from(tls.load());
            let conn_tx = tx.clone();
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                    Err(_) => {
                        tracing::warn!(%remote, "tls handshake timed out");
                        return;
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(%remote, error = %e, "tls handshake failed");
                        return;
                    }
                    Ok(Ok(tls)) => tls,
                };
                let identity = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .ok_or_else(|| "no client certificate".to_string())
                    .and_then(|c| passerelle_pki::peer_identity(c).map_err(|e| e.to_string()));
                match identity {
                    Ok(identity) => {
                        tracing::debug!(%remote, caller = %identity.uri(), "connection accepted");
                        let conn = TlsConn {
                            inner: tls,
                            info: PeerInfo {
                                identity: Arc::new(identity),
                                remote,
                            },
                        };
                        let _ = conn_tx.send(Ok(conn)).await;
                    }
                    Err(e) => tracing::warn!(%remote, error = %e, "client identity refused"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}
