//! Typed identities: the `urn:passerelle:<agency>:<role>:<name>` SAN URI every certificate carries.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use passerelle_model::ids::is_record_id;
use passerelle_model::AgencyId;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use crate::PkiError;

/// Every identity URI starts with this; PRODUCT.md section 3 makes it part of the contract.
pub const URI_PREFIX: &str = "urn:passerelle:";

/// What a certificate holder may do; permissions are decided from this (deny by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Node,
    Publisher,
    Analyst,
    Operator,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Node, Role::Publisher, Role::Analyst, Role::Operator];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Node => "node",
            Role::Publisher => "publisher",
            Role::Analyst => "analyst",
            Role::Operator => "operator",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = PkiError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| PkiError::UnknownRole(s.to_owned()))
    }
}

/// Who is at the other end of a connection, as its certificate's SAN URI says.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Identity {
    pub agency: AgencyId,
    pub role: Role,
    /// `^[A-Za-z0-9._-]{1,64}$`, chosen by the agency (`node1`, `alice`).
    pub name: String,
}

impl Identity {
    /// Checks the name so that an invalid identity can never be turned into a URI.
    pub fn new(agency: AgencyId, role: Role, name: impl Into<String>) -> Result<Self, PkiError> {
        let name = name.into();
        if !is_record_id(&name) {
            return Err(PkiError::BadName(name));
        }
        Ok(Identity { agency, role, name })
    }

    /// `urn:passerelle:<agency>:<role>:<name>`.
    pub fn uri(&self) -> String {
        format!("{URI_PREFIX}{}:{}:{}", self.agency, self.role, self.name)
    }

    /// Parses a URI as produced by [`Identity::uri`]; the prefix is matched exactly (lowercase).
    pub fn parse_uri(s: &str) -> Result<Identity, PkiError> {
        let bad = |reason: &str| PkiError::BadIdentityUri {
            uri: s.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = s
            .strip_prefix(URI_PREFIX)
            .ok_or_else(|| bad("must start with urn:passerelle:"))?;
        let parts: Vec<&str> = rest.split(':').collect();
        let [agency, role, name] = parts[..] else {
            return Err(bad("must look like urn:passerelle:<agency>:<role>:<name>"));
        };
        let agency = AgencyId::parse(agency).map_err(|e| bad(&e.to_string()))?;
        let role: Role = role.parse()?;
        Identity::new(agency, role, name)
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri())
    }
}

impl FromStr for Identity {
    type Err = PkiError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Identity::parse_uri(s)
    }
}

pub(crate) fn parse_cert(der: &[u8]) -> Result<X509Certificate<'_>, PkiError> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| PkiError::BadCertificate(e.to_string()))?;
    if !rest.is_empty() {
        return Err(PkiError::BadCertificate(
            "trailing bytes after certificate".into(),
        ));
    }
    Ok(cert)
}

/// The identity of a certificate: its one and only `urn:passerelle:` SAN URI.
///
/// URIs are counted with a case-insensitive prefix match (URN namespace ids are
/// case-insensitive), so `URN:PASSERELLE:…` cannot smuggle a second identity past the
/// "exactly one" rule; it counts, and fails the exact parse as malformed.
/// URIs of other schemes are ignored. Validity and chain are not checked here.
pub fn identity_from_cert_der(der: &[u8]) -> Result<Identity, PkiError> {
    let cert = parse_cert(der)?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| PkiError::BadCertificate(format!("subject alternative name: {e}")))?;
    let uris: Vec<&str> = san
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some(*uri),
            _ => None,
        })
        .filter(|uri| {
            uri.get(..URI_PREFIX.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(URI_PREFIX))
        })
        .collect();
    match uris[..] {
        [] => Err(PkiError::NoIdentity),
        [uri] => Identity::parse_uri(uri),
        _ => Err(PkiError::SeveralIdentities(uris.len())),
    }
}

/// The end of the certificate's validity, for expiry warnings.
pub fn cert_not_after(der: &[u8]) -> Result<SystemTime, PkiError> {
    let cert = parse_cert(der)?;
    let secs = cert.validity().not_after.timestamp();
    let secs = u64::try_from(secs)
        .map_err(|_| PkiError::BadCertificate("not after is before 1970".into()))?;
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anpe() -> AgencyId {
        AgencyId::parse("tg.anpe").unwrap()
    }

    #[test]
    fn uri_round_trips() {
        let id = Identity::new(anpe(), Role::Analyst, "ama.k_1-x").unwrap();
        assert_eq!(id.uri(), "urn:passerelle:tg.anpe:analyst:ama.k_1-x");
        assert_eq!(Identity::parse_uri(&id.uri()).unwrap(), id);
        assert_eq!(id.to_string().parse::<Identity>().unwrap(), id);
        for r in Role::ALL {
            assert_eq!(r.to_string().parse::<Role>().unwrap(), r);
        }
    }

    #[test]
    fn bad_uris_are_refused() {
        let cases = [
            "urn:passerelle:tg.anpe:node",
            "urn:passerelle:tg.anpe:node:n1:extra",
            "urn:passerelle:TG.anpe:node:n1",
            "urn:passerelle:tg.anpe:node:",
            "urn:passerelle:tg.anpe:node:a b",
            "URN:PASSERELLE:tg.anpe:node:n1",
            "urn:other:tg.anpe:node:n1",
        ];
        for c in cases {
            assert!(Identity::parse_uri(c).is_err(), "{c} accepted");
        }
        let long = format!("urn:passerelle:tg.anpe:node:{}", "a".repeat(65));
        assert!(matches!(
            Identity::parse_uri(&long),
            Err(PkiError::BadName(_))
        ));
        assert!(matches!(
            Identity::parse_uri("urn:passerelle:tg.anpe:admin:n1"),
            Err(PkiError::UnknownRole(r)) if r == "admin"
        ));
    }
}
