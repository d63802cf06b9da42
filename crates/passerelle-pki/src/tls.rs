//! rustls configurations for nodes and their clients: TLS 1.3 only, ring provider, client
//! certificates required, and each agency's certificates checked against that agency's CA.
//!
//! The verifiers are composites: they read the identity the leaf claims (its SAN URI),
//! pick the CA of the claimed agency from the trust store and let a webpki verifier built
//! for that single CA check the chain (and, server side, the CRLs). A partner CA can
//! therefore only vouch for its own agency: a certificate from VDAB's CA claiming
//! `tg.anpe` is checked against ANPE's CA and fails.

use std::collections::BTreeMap;
use std::sync::Arc;

use passerelle_model::AgencyId;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, OtherError,
    RootCertStore, ServerConfig, SignatureScheme,
};

use crate::identity::{identity_from_cert_der, parse_cert, Identity, Role};
use crate::trust::TrustStore;
use crate::PkiError;

/// The only application protocol spoken: gRPC over HTTP/2.
pub const ALPN_H2: &[u8] = b"h2";

/// Installs ring as the process-wide rustls provider. Call it first thing in `main`;
/// calling it again, or after another provider was installed, does nothing.
pub fn install_crypto_provider() {
    // an Err only says a provider is already installed, which is what we want anyway
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The configs name their provider explicitly so they never depend on, or panic for lack
/// of, a process-wide default.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of a PEM document, in order; `what` names it in errors
/// (`"own certificate"`, a path). An empty document is an error.
pub fn certs_from_pem(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::Pem {
            what: what.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(PkiError::Pem {
            what: what.to_owned(),
            reason: "holds no certificate".into(),
        });
    }
    Ok(certs)
}

fn parse_key(pem: &str, what: &str) -> Result<PrivateKeyDer<'static>, PkiError> {
    rustls_pemfile::private_key(&mut pem.as_bytes())
        .map_err(|e| PkiError::Pem {
            what: what.to_owned(),
            reason: e.to_string(),
        })?
        .ok_or_else(|| PkiError::Pem {
            what: what.to_owned(),
            reason: "holds no private key".into(),
        })
}

/// Catches a node started with another agency's (or a user's) certificate at start-up
/// rather than at the first partner handshake.
fn check_own_cert(
    leaf: &CertificateDer<'_>,
    trust: &TrustStore,
    need_node: bool,
) -> Result<Identity, PkiError> {
    let id = identity_from_cert_der(leaf).map_err(|e| PkiError::OwnCertificate(e.to_string()))?;
    if &id.agency != trust.own_agency() {
        return Err(PkiError::OwnCertificate(format!(
            "belongs to {}, this node is {}",
            id.agency,
            trust.own_agency()
        )));
    }
    if need_node && id.role != Role::Node {
        return Err(PkiError::OwnCertificate(format!(
            "has role {}, serving needs a node certificate",
            id.role
        )));
    }
    Ok(id)
}

/// Sorts CRLs by the trusted CA that signed them. A CRL naming a trusted CA as issuer
/// but not signed by it is an error (it would otherwise make every handshake of that
/// agency fail); a CRL from a CA we do not trust is skipped with a warning.
fn crls_by_agency(
    trust: &TrustStore,
    crls_pem: &[String],
) -> Result<BTreeMap<AgencyId, Vec<CertificateRevocationListDer<'static>>>, PkiError> {
    let mut out: BTreeMap<AgencyId, Vec<CertificateRevocationListDer<'static>>> = BTreeMap::new();
    for (index, pem) in crls_pem.iter().enumerate() {
        let err = |reason: String| PkiError::Crl { index, reason };
        let ders = rustls_pemfile::crls(&mut pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(format!("not valid pem: {e}")))?;
        if ders.is_empty() {
            return Err(err("holds no crl".into()));
        }
        for der in ders {
            let (_, crl) = x509_parser::parse_x509_crl(&der)
                .map_err(|e| err(format!("cannot be parsed: {e}")))?;
            let issuer = crl.issuer().as_raw();
            let mut named = None;
            let mut owner = None;
            for t in trust.iter() {
                let ca = parse_cert(t.ca_der())?;
                if ca.subject().as_raw() != issuer {
                    continue;
                }
                // two CAs may share a name; the signature tells which one issued the CRL
                if crl.verify_signature(ca.public_key()).is_ok() {
                    owner = Some(t.agency().clone());
                    break;
                }
                named = Some(t.agency().clone());
            }
            if let (None, Some(agency)) = (&owner, named) {
                return Err(err(format!("is not signed by the ca of {agency}")));
            }
            let Some(agency) = owner else {
                tracing::warn!(crl = index, issuer = %crl.issuer(), "crl from an untrusted ca ignored");
                continue;
            };
            if crl
                .next_update()
                .is_some_and(|t| t < x509_parser::time::ASN1Time::now())
            {
                // still applied: a stale list of revoked certificates is better than none
                tracing::warn!(crl = index, agency = %agency, "crl is past its next update");
            }
            out.entry(agency).or_default().push(der);
        }
    }
    Ok(out)
}

fn single_root(
    agency: &AgencyId,
    ca: &CertificateDer<'static>,
) -> Result<Arc<RootCertStore>, PkiError> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).map_err(|e| PkiError::Verifier {
        agency: agency.clone(),
        reason: e.to_string(),
    })?;
    Ok(Arc::new(roots))
}

fn reject(e: PkiError) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
}

/// Server-side verifier: one prebuilt webpki verifier per trusted agency.
#[derive(Debug)]
struct AgencyClientVerifier {
    by_agency: BTreeMap<AgencyId, Arc<dyn ClientCertVerifier>>,
    hints: Vec<DistinguishedName>,
    algs: WebPkiSupportedAlgorithms,
}

impl AgencyClientVerifier {
    fn new(
        trust: &TrustStore,
        crls_pem: &[String],
        provider: &Arc<CryptoProvider>,
    ) -> Result<Self, PkiError> {
        let mut crls = crls_by_agency(trust, crls_pem)?;
        let mut by_agency = BTreeMap::new();
        let mut all = RootCertStore::empty();
        for t in trust.iter() {
            let roots = single_root(t.agency(), t.ca_der())?;
            all.add(t.ca_der().clone())
                .map_err(|e| PkiError::Verifier {
                    agency: t.agency().clone(),
                    reason: e.to_string(),
                })?;
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
                .with_crls(crls.remove(t.agency()).unwrap_or_default())
                // a CRL is optional per agency and covers that CA's leaves; a certificate
                // whose issuer has no CRL configured is not refused for that alone
                .allow_unknown_revocation_status()
                .build()
                .map_err(|e| PkiError::Verifier {
                    agency: t.agency().clone(),
                    reason: e.to_string(),
                })?;
            by_agency.insert(t.agency().clone(), verifier);
        }
        Ok(AgencyClientVerifier {
            by_agency,
            hints: all.subjects(),
            algs: provider.signature_verification_algorithms,
        })
    }
}

impl ClientCertVerifier for AgencyClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // the claimed identity only selects the CA; nothing trusts it before that CA
        // has verified the chain
        let id = identity_from_cert_der(end_entity).map_err(reject)?;
        let verifier = self
            .by_agency
            .get(&id.agency)
            .ok_or_else(|| reject(PkiError::UnknownAgency(id.agency.clone())))?;
        verifier.verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// Client-side verifier: the server must be a node of a trusted agency (of the expected
/// one, when given), certified by that agency's CA for the name we dialled.
#[derive(Debug)]
struct AgencyServerVerifier {
    by_agency: BTreeMap<AgencyId, Arc<WebPkiServerVerifier>>,
    expected: Option<AgencyId>,
    algs: WebPkiSupportedAlgorithms,
}

impl AgencyServerVerifier {
    fn new(
        trust: &TrustStore,
        expected: Option<&AgencyId>,
        crls_pem: &[String],
        provider: &Arc<CryptoProvider>,
    ) -> Result<Self, PkiError> {
        let mut crls = crls_by_agency(trust, crls_pem)?;
        let mut by_agency = BTreeMap::new();
        for t in trust.iter() {
            let verifier = WebPkiServerVerifier::builder_with_provider(
                single_root(t.agency(), t.ca_der())?,
                provider.clone(),
            )
            .with_crls(crls.remove(t.agency()).unwrap_or_default())
            .allow_unknown_revocation_status()
            .build()
            .map_err(|e| PkiError::Verifier {
                agency: t.agency().clone(),
                reason: e.to_string(),
            })?;
            by_agency.insert(t.agency().clone(), verifier);
        }
        Ok(AgencyServerVerifier {
            by_agency,
            expected: expected.cloned(),
            algs: provider.signature_verification_algorithms,
        })
    }
}

impl ServerCertVerifier for AgencyServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let id = identity_from_cert_der(end_entity).map_err(reject)?;
        if id.role != Role::Node {
            return Err(reject(PkiError::NotANode(id.role)));
        }
        if let Some(expected) = &self.expected {
            if &id.agency != expected {
                return Err(reject(PkiError::UnexpectedAgency {
                    found: id.agency,
                    expected: expected.clone(),
                }));
            }
        }
        let verifier = self
            .by_agency
            .get(&id.agency)
            .ok_or_else(|| reject(PkiError::UnknownAgency(id.agency.clone())))?;
        verifier.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// The config of a node's listener. `own_chain_pem` starts with the node's certificate
/// (role `node`, own agency); `crls_pem` holds the contents of the configured CRL files,
/// each applied to the trusted CA that signed it.
pub fn server_config(
    own_chain_pem: &str,
    own_key_pem: &str,
    trust: &TrustStore,
    crls_pem: &[String],
) -> Result<ServerConfig, PkiError> {
    let chain = certs_from_pem(own_chain_pem, "own certificate")?;
    check_own_cert(&chain[0], trust, true)?;
    build_server_config(chain, own_key_pem, trust, crls_pem)
}

fn build_server_config(
    chain: Vec<CertificateDer<'static>>,
    own_key_pem: &str,
    trust: &TrustStore,
    crls_pem: &[String],
) -> Result<ServerConfig, PkiError> {
    let key = parse_key(own_key_pem, "own key")?;
    let provider = provider();
    let verifier = AgencyClientVerifier::new(trust, crls_pem, &provider)?;
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(chain, key)?;
    cfg.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(cfg)
}

/// The config for connecting to a node (partner pulls and client commands alike).
/// With `expected_server_agency`, a node of any other agency is refused.
pub fn client_config(
    own_chain_pem: &str,
    own_key_pem: &str,
    trust: &TrustStore,
    expected_server_agency: Option<&AgencyId>,
) -> Result<ClientConfig, PkiError> {
    client_config_with_crls(
        own_chain_pem,
        own_key_pem,
        trust,
        expected_server_agency,
        &[],
    )
}

/// [`client_config`] that also checks the server's certificate against CRLs.
pub fn client_config_with_crls(
    own_chain_pem: &str,
    own_key_pem: &str,
    trust: &TrustStore,
    expected_server_agency: Option<&AgencyId>,
    crls_pem: &[String],
) -> Result<ClientConfig, PkiError> {
    let chain = certs_from_pem(own_chain_pem, "own certificate")?;
    check_own_cert(&chain[0], trust, false)?;
    let key = parse_key(own_key_pem, "own key")?;
    let provider = provider();
    let verifier = AgencyServerVerifier::new(trust, expected_server_agency, crls_pem, &provider)?;
    let mut cfg = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(chain, key)?;
    cfg.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(cfg)
}

/// The identity of the peer of an established connection (its leaf certificate comes
/// first), for the permission checks after the handshake.
pub fn peer_identity(conn_certs: &[CertificateDer<'_>]) -> Result<Identity, PkiError> {
    let leaf = conn_certs.first().ok_or(PkiError::NoPeerCertificate)?;
    identity_from_cert_der(leaf)
}

#[cfg(test)]
mod tests;
