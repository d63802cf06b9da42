//! Serving a node: the mutual-TLS listener (TLS 1.3, client certificate, handshake timeout) and the gRPC router.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use passerelle_node::{Node, NodeConfig};
use passerelle_pki::TrustStore;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::CompressionEncoding;
use tonic::transport::server::Connected;

use crate::authz::{AuthzLayer, PeerInfo, Policy};
use crate::pb::v1 as pb;
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

fn read(path: &Path, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

/// Builds the rustls server configuration from the files `node.toml` names.
pub fn tls_config(cfg: &NodeConfig) -> anyhow::Result<rustls::ServerConfig> {
    let ca = read(&cfg.path(&cfg.tls.ca), "CA certificate")?;
    let cert = read(&cfg.path(&cfg.tls.cert), "node certificate")?;
    let key = read(&cfg.path(&cfg.tls.key), "node key")?;
    let trust_path = cfg.tls.trust.as_ref().map(|p| cfg.path(p));
    let trust = TrustStore::load(&cfg.agency, &ca, trust_path.as_deref())?;
    let crls = match &cfg.tls.crl {
        Some(p) => vec![read(&cfg.path(p), "CRL")?],
        None => Vec::new(),
    };
    Ok(passerelle_pki::server_config(&cert, &key, &trust, &crls)?)
}

/// A running node; dropping it does not stop it, call [`ServerHandle::shutdown`].
pub struct ServerHandle {
    pub addr: SocketAddr,
    pub node: Arc<Node>,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl ServerHandle {
    /// Stops accepting calls, lets calls in flight finish, flushes the store.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.await??;
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
    let tls = Arc::new(tls_config(&cfg)?);
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
    let listener = match listener {
        Some(l) => l,
        None => TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("cannot listen on {}", cfg.listen))?,
    };
    let addr = listener.local_addr()?;
    let handshake_timeout = Duration::from_secs(cfg.tls.handshake_timeout_secs);
    let incoming = accept_loop(listener, TlsAcceptor::from(tls), handshake_timeout);

    let policy = Arc::new(Policy::new(
        cfg.agency.clone(),
        cfg.peers.iter().map(|p| p.agency.clone()),
        cfg.access.partner_analysts.iter().cloned(),
    ));
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

    let router = tonic::transport::Server::builder()
        .max_concurrent_streams(cfg.limits.max_concurrent_streams)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .layer(AuthzLayer::new(policy))
        .add_service(health)
        .add_service(reflection)
        .add_service(tuned!(pb::vacancies_server::VacanciesServer::new(
            records.clone()
        )))
        .add_service(tuned!(pb::shortages_server::ShortagesServer::new(
            records.clone()
        )))
        .add_service(tuned!(pb::supply_server::SupplyServer::new(records)));

    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async {
        let _ = rx.await;
    }));
    tracing::info!(agency = %cfg.agency, %addr, "node listening");
    Ok(ServerHandle {
        addr,
        node,
        shutdown: Some(tx),
        task,
    })
}

/// Accepts TCP connections and completes TLS handshakes concurrently, each within the timeout.
fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    timeout: Duration,
) -> ReceiverStream<Result<TlsConn, io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (tcp, remote) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
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
            if tx.is_closed() {
                break;
            }
        }
    });
    ReceiverStream::new(rx)
}
