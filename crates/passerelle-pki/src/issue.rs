//! Making keys and certificates: agency CAs, leaf certificates carrying an identity, CRLs,
//! and the Ed25519 keys that sign record versions.
//!
//! Certificate keys are ECDSA P-256 (what every TLS stack and rustls' ring provider accept);
//! serials are random so a re-issued certificate for the same key can be revoked alone.

use std::fmt;
use std::net::IpAddr;

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SanType, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair as _, UnparsedPublicKey, ED25519};
use time::{Duration, OffsetDateTime};

use crate::identity::{parse_cert, Identity, Role};
use crate::PkiError;

/// A certificate and its private key, both PEM. `cert_pem` holds the certificate alone,
/// not a chain: the issuing CA is a trust anchor on the other side and need not be sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Pem {
    pub cert_pem: String,
    pub key_pem: String,
}

impl fmt::Debug for Pem {
    // keeps private keys out of logs and test failure output
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pem")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[elided]")
            .finish()
    }
}

/// What a leaf certificate is for and when it is valid.
#[derive(Debug, Clone)]
pub struct CertRequest {
    pub identity: Identity,
    /// Names the holder is reached at (nodes): standard gRPC clients check them.
    pub dns_names: Vec<String>,
    pub ip_addrs: Vec<IpAddr>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl CertRequest {
    /// Valid from one hour ago (clocks of partner agencies drift) for `days` days.
    pub fn new(identity: Identity, days: u32) -> Self {
        let now = OffsetDateTime::now_utc();
        CertRequest {
            identity,
            dns_names: Vec::new(),
            ip_addrs: Vec::new(),
            not_before: now - Duration::hours(1),
            not_after: now + Duration::days(i64::from(days)),
        }
    }
}

fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut b = [0u8; 16];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| PkiError::Request("system random source failed".into()))?;
    // a positive integer with a non-zero first byte keeps the DER encoding (and so the
    // serial written into a CRL) byte-identical to these bytes
    b[0] = (b[0] & 0x7f) | 0x01;
    Ok(SerialNumber::from_slice(&b))
}

fn new_key() -> Result<KeyPair, PkiError> {
    Ok(KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?)
}

/// A self-signed agency CA, valid from one hour ago for `days` days.
///
/// Path length 0: an agency CA signs leaves only, so a leaf key can never act as a CA.
pub fn new_agency_ca(agency: &passerelle_model::AgencyId, days: u32) -> Result<Pem, PkiError> {
    if days == 0 {
        return Err(PkiError::Request(
            "ca validity must be at least one day".into(),
        ));
    }
    let key = new_key()?;
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("passerelle {agency} CA"));
    dn.push(DnType::OrganizationName, agency.as_str());
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(i64::from(days));
    params.serial_number = Some(random_serial()?);
    let cert = params.self_signed(&key)?;
    Ok(Pem {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn load_issuer(ca: &Pem) -> Result<Issuer<'static, KeyPair>, PkiError> {
    let key = KeyPair::from_pem(&ca.key_pem).map_err(|e| PkiError::Pem {
        what: "ca key".into(),
        reason: e.to_string(),
    })?;
    let der = first_cert_der(&ca.cert_pem, "ca certificate")?;
    let cert = parse_cert(&der)?;
    // rcgen signs with whatever key it is given; a mismatched key would only show up
    // later as handshakes failing with "bad signature"
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err(PkiError::Pem {
            what: "ca key".into(),
            reason: "does not match the ca certificate".into(),
        });
    }
    Issuer::from_ca_cert_der(&der.into(), key).map_err(|e| PkiError::Pem {
        what: "ca certificate".into(),
        reason: e.to_string(),
    })
}

pub(crate) fn first_cert_der(pem: &str, what: &str) -> Result<Vec<u8>, PkiError> {
    let certs = crate::tls::certs_from_pem(pem, what)?;
    Ok(certs[0].to_vec())
}

/// A leaf certificate for `req.identity`, signed by `ca`.
///
/// Every role gets clientAuth; nodes also get serverAuth, since a node both serves and
/// pulls from its partners.
pub fn issue_cert(ca: &Pem, req: &CertRequest) -> Result<Pem, PkiError> {
    if req.not_after <= req.not_before {
        return Err(PkiError::Request(
            "not_after must be after not_before".into(),
        ));
    }
    let mut sans = vec![SanType::URI(req.identity.uri().try_into()?)];
    for dns in &req.dns_names {
        if dns.is_empty() {
            return Err(PkiError::Request("dns name must not be empty".into()));
        }
        let name = dns
            .clone()
            .try_into()
            .map_err(|_| PkiError::Request(format!("dns name {dns:?} is not ascii")))?;
        sans.push(SanType::DnsName(name));
    }
    sans.extend(req.ip_addrs.iter().copied().map(SanType::IpAddress));
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, req.identity.name.as_str());
    dn.push(DnType::OrganizationalUnitName, req.identity.role.as_str());
    dn.push(DnType::OrganizationName, req.identity.agency.as_str());
    issue_leaf(
        ca,
        dn,
        sans,
        req.identity.role == Role::Node,
        req.not_before,
        req.not_after,
    )
}

/// A leaf certificate with exactly the given SANs and no checks on them, so that tests
/// (and tooling probing a node) can make certificates that must be refused.
pub fn issue_cert_with_sans(
    ca: &Pem,
    sans: Vec<SanType>,
    server_auth: bool,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<Pem, PkiError> {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "passerelle certificate");
    issue_leaf(ca, dn, sans, server_auth, not_before, not_after)
}

fn issue_leaf(
    ca: &Pem,
    dn: DistinguishedName,
    sans: Vec<SanType>,
    server_auth: bool,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<Pem, PkiError> {
    let issuer = load_issuer(ca)?;
    let key = new_key()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = dn;
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    if server_auth {
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
    }
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(random_serial()?);
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Pem {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A CRL signed by `ca` revoking the given serials (as [`cert_serial`] returns them),
/// valid for `next_update_days`. The CRL number is the issue time in milliseconds, so
/// later CRLs always carry larger numbers without any state to keep.
pub fn new_crl(
    ca: &Pem,
    revoked_serials: &[Vec<u8>],
    next_update_days: u32,
) -> Result<String, PkiError> {
    if next_update_days == 0 {
        return Err(PkiError::Request(
            "crl validity must be at least one day".into(),
        ));
    }
    let issuer = load_issuer(ca)?;
    let now = OffsetDateTime::now_utc();
    let number = u64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    let params = CertificateRevocationListParams {
        this_update: now,
        next_update: now + Duration::days(i64::from(next_update_days)),
        crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
        issuing_distribution_point: None,
        revoked_certs: revoked_serials
            .iter()
            .map(|s| RevokedCertParams {
                serial_number: SerialNumber::from_slice(s),
                revocation_time: now,
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    Ok(params.signed_by(&issuer)?.pem()?)
}

/// The serial number of a certificate, as the bytes of its DER INTEGER.
pub fn cert_serial(der: &[u8]) -> Result<Vec<u8>, PkiError> {
    Ok(parse_cert(der)?.raw_serial().to_vec())
}

/// Encodes PKCS#8 DER as a `PRIVATE KEY` PEM block, the form keys are kept in on disk.
pub fn pkcs8_to_pem(pkcs8: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(pkcs8);
    let mut out = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        // base64 output is ASCII
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END PRIVATE KEY-----\n");
    out
}

/// The Ed25519 key an origin node signs its record versions with.
///
/// ring reads and checks the key; ed25519-dalek signs (its precomputed base-point tables make a
/// signature about a quarter cheaper than ring's, and signing is most of an import's work).
/// Ed25519 signatures are deterministic: both give the same bytes.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    signer: ed25519_dalek::SigningKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id())
            .finish()
    }
}

impl SigningKey {
    /// A new key as PKCS#8 DER: the caller stores it (see [`pkcs8_to_pem`]) before use.
    pub fn generate() -> Result<Vec<u8>, PkiError> {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| PkiError::SigningKey("cannot generate ed25519 key".into()))?;
        Ok(doc.as_ref().to_vec())
    }

    /// Accepts PKCS#8 v1 as well as v2, so keys made by `openssl genpkey` work too.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, PkiError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
            .map_err(|e| PkiError::SigningKey(format!("not an ed25519 pkcs8 key: {e}")))?;
        use ed25519_dalek::pkcs8::DecodePrivateKey as _;
        let signer = ed25519_dalek::SigningKey::from_pkcs8_der(pkcs8)
            .map_err(|e| PkiError::SigningKey(format!("not an ed25519 pkcs8 key: {e}")))?;
        if signer.verifying_key().as_bytes() != pair.public_key().as_ref() {
            return Err(PkiError::SigningKey(
                "the pkcs8 key's public key does not match its private key".into(),
            ));
        }
        Ok(SigningKey { pair, signer })
    }

    /// Reads a `PRIVATE KEY` PEM block.
    pub fn from_pem(pem: &str) -> Result<Self, PkiError> {
        let key = rustls_pemfile::private_key(&mut pem.as_bytes())
            .map_err(|e| PkiError::SigningKey(format!("bad pem: {e}")))?
            .ok_or_else(|| PkiError::SigningKey("no private key in pem".into()))?;
        match key {
            rustls_pki_types::PrivateKeyDer::Pkcs8(k) => Self::from_pkcs8(k.secret_pkcs8_der()),
            _ => Err(PkiError::SigningKey("expected a pkcs8 private key".into())),
        }
    }

    pub fn public_key(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.pair.public_key().as_ref());
        out
    }

    /// Names the key in signed records, so receivers can pick the right one after rotation.
    pub fn key_id(&self) -> String {
        key_id_of(&self.public_key())
    }

    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer as _;
        self.signer.sign(msg).to_bytes()
    }
}

/// First 8 bytes of SHA-256 of the public key, lowercase hex.
pub fn key_id_of(public_key: &[u8; 32]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, public_key);
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// True when `sig` is a valid Ed25519 signature of `msg` by `public_key`.
pub fn verify_signature(public_key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    public_key.len() == 32
        && sig.len() == 64
        && UnparsedPublicKey::new(&ED25519, public_key)
            .verify(msg, sig)
            .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use passerelle_model::AgencyId;
    use x509_parser::extensions::GeneralName;

    fn der(pem: &str) -> Vec<u8> {
        first_cert_der(pem, "test").unwrap()
    }

    #[test]
    fn agency_ca_is_a_path_len_zero_ca() {
        let ca = new_agency_ca(&AgencyId::parse("tg.anpe").unwrap(), 30).unwrap();
        let d = der(&ca.cert_pem);
        let cert = parse_cert(&d).unwrap();
        let bc = cert.basic_constraints().unwrap().unwrap().value;
        assert!(bc.ca);
        assert_eq!(bc.path_len_constraint, Some(0));
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.crl_sign());
        assert!(!ku.digital_signature());
        assert_eq!(
            cert.subject()
                .iter_common_name()
                .next()
                .unwrap()
                .as_str()
                .unwrap(),
            "passerelle tg.anpe CA"
        );
        assert_eq!(cert.issuer(), cert.subject());
        let days = (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp())
            / 86_400;
        assert_eq!(days, 30);
        assert!(new_agency_ca(&AgencyId::parse("tg.anpe").unwrap(), 0).is_err());
    }

    #[test]
    fn leaf_carries_identity_sans_and_ekus() {
        let anpe = AgencyId::parse("tg.anpe").unwrap();
        let ca = new_agency_ca(&anpe, 30).unwrap();
        let id = Identity::new(anpe.clone(), Role::Node, "node1").unwrap();
        let mut req = CertRequest::new(id.clone(), 10);
        req.dns_names = vec!["anpe.example".into()];
        req.ip_addrs = vec!["127.0.0.1".parse().unwrap()];
        let leaf = issue_cert(&ca, &req).unwrap();
        let d = der(&leaf.cert_pem);
        assert_eq!(crate::identity_from_cert_der(&d).unwrap(), id);
        let cert = parse_cert(&d).unwrap();
        let names = &cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names;
        assert!(names.contains(&GeneralName::DNSName("anpe.example")));
        assert!(names.contains(&GeneralName::IPAddress(&[127, 0, 0, 1])));
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        assert!(!cert.basic_constraints().unwrap().unwrap().value.ca);
        assert_eq!(
            cert.issuer(),
            parse_cert(&der(&ca.cert_pem)).unwrap().subject()
        );

        let analyst = Identity::new(anpe, Role::Analyst, "ama").unwrap();
        let leaf = issue_cert(&ca, &CertRequest::new(analyst, 10)).unwrap();
        let d = der(&leaf.cert_pem);
        let parsed = parse_cert(&d).unwrap();
        let eku = parsed.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        let not_after = crate::cert_not_after(&d).unwrap();
        let expect = std::time::SystemTime::now() + std::time::Duration::from_secs(10 * 86_400);
        let diff = expect
            .duration_since(not_after)
            .unwrap_or_else(|e| e.duration());
        assert!(diff < std::time::Duration::from_secs(120), "{diff:?}");
    }

    #[test]
    fn issue_checks_request_and_ca_key() {
        let anpe = AgencyId::parse("tg.anpe").unwrap();
        let ca = new_agency_ca(&anpe, 30).unwrap();
        let other = new_agency_ca(&anpe, 30).unwrap();
        let id = Identity::new(anpe, Role::Publisher, "p").unwrap();
        let mut req = CertRequest::new(id.clone(), 10);
        req.not_after = req.not_before;
        assert!(matches!(issue_cert(&ca, &req), Err(PkiError::Request(_))));
        let mixed = Pem {
            cert_pem: ca.cert_pem.clone(),
            key_pem: other.key_pem.clone(),
        };
        let err = issue_cert(&mixed, &CertRequest::new(id, 10)).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
    }

    #[test]
    fn serials_are_random_and_round_trip() {
        let anpe = AgencyId::parse("tg.anpe").unwrap();
        let ca = new_agency_ca(&anpe, 30).unwrap();
        let id = Identity::new(anpe, Role::Publisher, "p").unwrap();
        let a = issue_cert(&ca, &CertRequest::new(id.clone(), 1)).unwrap();
        let b = issue_cert(&ca, &CertRequest::new(id, 1)).unwrap();
        let sa = cert_serial(&der(&a.cert_pem)).unwrap();
        let sb = cert_serial(&der(&b.cert_pem)).unwrap();
        assert_eq!(sa.len(), 16);
        assert_ne!(sa, sb);
        let crl_pem = new_crl(&ca, std::slice::from_ref(&sa), 7).unwrap();
        let crl_der = rustls_pemfile::crls(&mut crl_pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        let (_, crl) = x509_parser::parse_x509_crl(&crl_der).unwrap();
        let revoked: Vec<&[u8]> = crl
            .iter_revoked_certificates()
            .map(|r| r.raw_serial())
            .collect();
        assert_eq!(revoked, vec![sa.as_slice()]);
    }

    #[test]
    fn signing_keys_sign_and_verify() {
        let pkcs8 = SigningKey::generate().unwrap();
        let key = SigningKey::from_pkcs8(&pkcs8).unwrap();
        let again = SigningKey::from_pem(&pkcs8_to_pem(&pkcs8)).unwrap();
        assert_eq!(key.public_key(), again.public_key());
        let id = key.key_id();
        assert_eq!(id.len(), 16);
        assert!(id
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        let sig = key.sign(b"be.vdab/vacancy/V-1@3");
        // the same bytes ring would sign (Ed25519 is deterministic)
        assert_eq!(
            sig.as_slice(),
            key.pair.sign(b"be.vdab/vacancy/V-1@3").as_ref()
        );
        assert!(verify_signature(
            &key.public_key(),
            b"be.vdab/vacancy/V-1@3",
            &sig
        ));
        assert!(!verify_signature(
            &key.public_key(),
            b"be.vdab/vacancy/V-1@4",
            &sig
        ));
        let other = SigningKey::from_pkcs8(&SigningKey::generate().unwrap()).unwrap();
        assert_ne!(other.key_id(), id);
        assert!(!verify_signature(
            &other.public_key(),
            b"be.vdab/vacancy/V-1@3",
            &sig
        ));
        assert!(!verify_signature(&key.public_key()[..31], b"x", &sig));
        assert!(SigningKey::from_pkcs8(b"not a key").is_err());
    }

    #[test]
    fn key_id_is_sha256_prefix() {
        // sha256 of 32 zero bytes starts with 66687aadf862bd77
        assert_eq!(key_id_of(&[0u8; 32]), "66687aadf862bd77");
    }
}
