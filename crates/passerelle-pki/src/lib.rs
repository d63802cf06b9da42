//! PKI of passerelle: agency CAs and certificates, the SAN identity they carry, the trust
//! store of partner agencies, record-signing keys and the rustls configurations built on them.
//!
//! This is the only crate that owns rustls (STYLE.md, TLS): the binary calls
//! [`install_crypto_provider`] once, then builds its server and client configs here.

pub mod batch;
mod error;
pub mod identity;
pub mod issue;
pub mod tls;
pub mod trust;

pub use batch::{verify_signatures, SignatureCheck};
pub use error::PkiError;
pub use identity::{cert_not_after, identity_from_cert_der, Identity, Role, URI_PREFIX};
pub use issue::{
    cert_serial, issue_cert, issue_cert_with_sans, key_id_of, new_agency_ca, new_crl, pkcs8_to_pem,
    verify_signature, CertRequest, Pem, SigningKey,
};
pub use tls::{
    certs_from_pem, client_config, client_config_with_crls, install_crypto_provider, peer_identity,
    server_config, ALPN_H2,
};
pub use trust::{SigningKeyEntry, TrustEntry, TrustFile, TrustStore, TrustedAgency};
