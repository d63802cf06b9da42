//! Client side: profiles written by `init` (address, certificate, key, CA) and mutual-TLS channels.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use hyper_util::rt::TokioIo;
use passerelle_model::AgencyId;
use passerelle_pki::TrustStore;
use rustls::pki_types::ServerName;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint};

/// A client profile: which node to call and with which certificate.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The agency of the node (its certificate must say so).
    pub agency: AgencyId,
    /// `https://host:port` of the node.
    pub address: String,
    /// The agency CA certificate (PEM) that signed the node's certificate.
    pub ca: PathBuf,
    /// This client's certificate (PEM).
    pub cert: PathBuf,
    /// This client's private key (PEM).
    pub key: PathBuf,
    #[serde(skip)]
    pub base_dir: PathBuf,
}

impl Profile {
    pub fn load(path: &Path) -> anyhow::Result<Profile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read profile {}", path.display()))?;
        let mut p: Profile =
            toml::from_str(&text).map_err(|e| anyhow!("profile {}: {e}", path.display()))?;
        p.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(p)
    }

    fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// Opens a mutual-TLS HTTP/2 channel to the node.
    pub async fn connect(&self) -> anyhow::Result<Channel> {
        passerelle_pki::install_crypto_provider();
        let read = |p: &Path, what: &str| {
            std::fs::read_to_string(self.path(p))
                .with_context(|| format!("cannot read {what} {}", self.path(p).display()))
        };
        let ca = read(&self.ca, "CA certificate")?;
        let cert = read(&self.cert, "client certificate")?;
        let key = read(&self.key, "client key")?;
        check_not_expired(&cert, &self.path(&self.cert))?;
        let trust = TrustStore::load(&self.agency, &ca, None)?;
        let tls = passerelle_pki::client_config(&cert, &key, &trust, Some(&self.agency))?;
        connect(&self.address, Arc::new(tls)).await
    }
}

/// A node refuses an expired client certificate with a TLS alert that clients only see as a
/// closed connection, so say it here, before connecting.
fn check_not_expired(cert_pem: &str, path: &Path) -> anyhow::Result<()> {
    let der = passerelle_pki::certs_from_pem(cert_pem, "client certificate")?;
    let Some(first) = der.first() else {
        return Err(anyhow!("{} holds no certificate", path.display()));
    };
    let not_after = passerelle_pki::cert_not_after(first)?;
    if not_after < std::time::SystemTime::now() {
        let days = std::time::SystemTime::now()
            .duration_since(not_after)
            .map(|d| d.as_secs() / 86_400)
            .unwrap_or(0);
        return Err(anyhow!(
            "client certificate {} expired {days} day(s) ago: ask the agency's operator for a new one",
            path.display()
        ));
    }
    Ok(())
}

/// Opens a channel to `address` (`https://host:port`) with the given TLS client configuration.
pub async fn connect(address: &str, tls: Arc<rustls::ClientConfig>) -> anyhow::Result<Channel> {
    let uri: http::Uri = address
        .parse()
        .with_context(|| format!("address {address:?} is not a URL like https://host:port"))?;
    if uri.scheme_str() != Some("https") {
        return Err(anyhow!("address {address:?} must start with https://"));
    }
    let host = uri
        .host()
        .ok_or_else(|| anyhow!("address {address:?} has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(443);
    let server_name = ServerName::try_from(host.clone())
        .with_context(|| format!("{host:?} is not a valid server name"))?;
    let connector = TlsConnector::from(tls);
    let target = (host.clone(), port);
    let svc = tower::service_fn(move |_: http::Uri| {
        let connector = connector.clone();
        let server_name = server_name.clone();
        let target = target.clone();
        async move {
            let tcp = TcpStream::connect((target.0.as_str(), target.1)).await?;
            let _ = tcp.set_nodelay(true);
            let tls = connector.connect(server_name, tcp).await?;
            Ok::<_, std::io::Error>(TokioIo::new(tls))
        }
    });
    // TLS is done by the connector above, so the endpoint itself speaks plain HTTP/2
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Endpoint::from_shared(format!("http://{authority}"))?
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .initial_stream_window_size(4 << 20)
        .initial_connection_window_size(8 << 20)
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(20))
        .keep_alive_while_idle(true)
        .connect_with_connector(svc)
        .await
        .with_context(|| format!("cannot connect to {address}"))
}
