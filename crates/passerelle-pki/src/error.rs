//! The error type of the crate; messages are lowercase and name the file, field or peer at fault.

use passerelle_model::AgencyId;

use crate::identity::Role;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("identity uri {uri:?} {reason}")]
    BadIdentityUri { uri: String, reason: String },
    #[error("role {0:?} must be one of node, publisher, analyst, operator")]
    UnknownRole(String),
    #[error("identity name {0:?} must be 1 to 64 of A-Z a-z 0-9 . _ -")]
    BadName(String),
    #[error("certificate cannot be parsed: {0}")]
    BadCertificate(String),
    #[error("certificate carries no urn:passerelle: san uri")]
    NoIdentity,
    #[error("certificate carries {0} urn:passerelle: san uris, exactly one is allowed")]
    SeveralIdentities(usize),
    #[error("unknown agency {0}")]
    UnknownAgency(AgencyId),
    #[error("server certificate has role {0}, expected node")]
    NotANode(Role),
    #[error("server certificate belongs to {found}, expected {expected}")]
    UnexpectedAgency { found: AgencyId, expected: AgencyId },
    #[error("peer presented no certificate")]
    NoPeerCertificate,
    #[error("{what}: {reason}")]
    Pem { what: String, reason: String },
    #[error("own certificate {0}")]
    OwnCertificate(String),
    #[error("certificate request: {0}")]
    Request(String),
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("crl {index}: {reason}")]
    Crl { index: usize, reason: String },
    #[error("trust file {path}: {reason}")]
    TrustFile { path: String, reason: String },
    #[error("trust entry {agency}: {reason}")]
    TrustEntry { agency: String, reason: String },
    #[error("signing key: {0}")]
    SigningKey(String),
    #[error("tls config: {0}")]
    Tls(#[from] rustls::Error),
    #[error("tls verifier for {agency}: {reason}")]
    Verifier { agency: AgencyId, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}
