//! Real rustls handshakes, in memory, between configs built from certificates made at test time.

use super::*;
use crate::issue::{
    cert_serial, issue_cert, issue_cert_with_sans, new_agency_ca, new_crl, CertRequest, Pem,
};
use crate::trust::{TrustEntry, TrustFile};
use rcgen::SanType;
use rustls::{ClientConnection, Connection, ServerConnection, SupportedProtocolVersion};
use time::{Duration, OffsetDateTime};

fn agency(s: &str) -> AgencyId {
    AgencyId::parse(s).unwrap()
}

fn ident(a: &str, role: Role, name: &str) -> Identity {
    Identity::new(agency(a), role, name).unwrap()
}

fn cert(ca: &Pem, id: &Identity) -> Pem {
    let mut req = CertRequest::new(id.clone(), 30);
    if id.role == Role::Node {
        req.dns_names = vec![format!("{}.test", id.agency.as_str().replace('.', "-"))];
        req.ip_addrs = vec!["127.0.0.1".parse().unwrap()];
    }
    issue_cert(ca, &req).unwrap()
}

fn with_sans(ca: &Pem, sans: Vec<SanType>) -> Pem {
    let now = OffsetDateTime::now_utc();
    issue_cert_with_sans(
        ca,
        sans,
        true,
        now - Duration::days(1),
        now + Duration::days(1),
    )
    .unwrap()
}

fn uri(s: &str) -> SanType {
    SanType::URI(s.try_into().unwrap())
}

/// Two agencies that trust each other: ANPE (which runs the server in most tests) and VDAB.
struct Fed {
    anpe_ca: Pem,
    vdab_ca: Pem,
    anpe_node: Pem,
}

impl Fed {
    fn new() -> Fed {
        let anpe_ca = new_agency_ca(&agency("tg.anpe"), 365).unwrap();
        let vdab_ca = new_agency_ca(&agency("be.vdab"), 365).unwrap();
        let anpe_node = cert(&anpe_ca, &ident("tg.anpe", Role::Node, "node1"));
        Fed {
            anpe_ca,
            vdab_ca,
            anpe_node,
        }
    }

    fn trust(own: &str, own_ca: &Pem, partner: &str, partner_ca: &Pem) -> TrustStore {
        let mut file = TrustFile::default();
        let entry = TrustEntry::new(agency(partner), &partner_ca.cert_pem, &[]).unwrap();
        file.add(entry, false).unwrap();
        TrustStore::from_file(&agency(own), &own_ca.cert_pem, &file).unwrap()
    }

    fn anpe_trust(&self) -> TrustStore {
        Fed::trust("tg.anpe", &self.anpe_ca, "be.vdab", &self.vdab_ca)
    }

    fn vdab_trust(&self) -> TrustStore {
        Fed::trust("be.vdab", &self.vdab_ca, "tg.anpe", &self.anpe_ca)
    }

    /// ANPE's listener; the chain includes the CA to show a sent anchor does no harm.
    fn server(&self, crls: &[String]) -> ServerConfig {
        let chain = format!("{}{}", self.anpe_node.cert_pem, self.anpe_ca.cert_pem);
        server_config(&chain, &self.anpe_node.key_pem, &self.anpe_trust(), crls).unwrap()
    }

    /// An ANPE client presenting `leaf` with none of `client_config`'s checks on it, so
    /// that certificates the server must refuse can be offered.
    fn raw_client(&self, leaf: &Pem) -> ClientConfig {
        raw_client_versions(leaf, &self.anpe_trust(), &[&rustls::version::TLS13])
    }
}

fn raw_client_versions(
    leaf: &Pem,
    trust: &TrustStore,
    versions: &[&'static SupportedProtocolVersion],
) -> ClientConfig {
    let provider = provider();
    let verifier = AgencyServerVerifier::new(trust, None, &[], &provider).unwrap();
    let mut cfg = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(
            certs_from_pem(&leaf.cert_pem, "test").unwrap(),
            parse_key(&leaf.key_pem, "test").unwrap(),
        )
        .unwrap();
    cfg.alpn_protocols = vec![ALPN_H2.to_vec()];
    cfg
}

struct Outcome {
    client: Connection,
    server: Connection,
    client_err: Option<rustls::Error>,
    server_err: Option<rustls::Error>,
}

impl Outcome {
    fn assert_ok(&self) {
        assert!(self.server_err.is_none(), "server: {:?}", self.server_err);
        assert!(self.client_err.is_none(), "client: {:?}", self.client_err);
        assert!(!self.client.is_handshaking() && !self.server.is_handshaking());
    }

    /// The identity the server sees, once the handshake succeeded.
    fn client_identity(&self) -> Identity {
        self.assert_ok();
        peer_identity(self.server.peer_certificates().unwrap()).unwrap()
    }

    fn server_identity(&self) -> Identity {
        self.assert_ok();
        peer_identity(self.client.peer_certificates().unwrap()).unwrap()
    }

    fn server_refused(&self) -> &rustls::Error {
        self.server_err
            .as_ref()
            .expect("server accepted the client")
    }

    fn client_refused(&self) -> &rustls::Error {
        self.client_err
            .as_ref()
            .expect("client accepted the server")
    }
}

/// The message of one of our own rejections, which travel as `CertificateError::Other`.
fn our_reason(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
            inner.to_string()
        }
        other => panic!("expected a passerelle rejection, got {other:?}"),
    }
}

fn is_cert_error(e: &rustls::Error, f: impl Fn(&CertificateError) -> bool) -> bool {
    matches!(e, rustls::Error::InvalidCertificate(c) if f(c))
}

/// Moves everything `from` has to send into `to`, recording `to`'s first error.
fn pump(from: &mut Connection, to: &mut Connection, to_err: &mut Option<rustls::Error>) -> usize {
    let mut buf = Vec::new();
    while from.wants_write() {
        if from.write_tls(&mut buf).unwrap() == 0 {
            break;
        }
    }
    let mut rd = &buf[..];
    while !rd.is_empty() {
        match to.read_tls(&mut rd) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if let Err(e) = to.process_new_packets() {
            to_err.get_or_insert(e);
        }
    }
    buf.len()
}

fn handshake(client: ClientConfig, server: ServerConfig, server_name: &str) -> Outcome {
    let name = ServerName::try_from(server_name.to_owned()).unwrap();
    let mut c = Connection::Client(ClientConnection::new(Arc::new(client), name).unwrap());
    let mut s = Connection::Server(ServerConnection::new(Arc::new(server)).unwrap());
    let (mut client_err, mut server_err) = (None, None);
    for _ in 0..16 {
        let sent = pump(&mut c, &mut s, &mut server_err) + pump(&mut s, &mut c, &mut client_err);
        if sent == 0 {
            break;
        }
    }
    Outcome {
        client: c,
        server: s,
        client_err,
        server_err,
    }
}

const ANPE_HOST: &str = "tg-anpe.test";

#[test]
fn good_client_is_accepted_with_its_identity() {
    let fed = Fed::new();
    let publisher = ident("tg.anpe", Role::Publisher, "importer");
    let leaf = cert(&fed.anpe_ca, &publisher);
    let client = client_config(
        &leaf.cert_pem,
        &leaf.key_pem,
        &fed.anpe_trust(),
        Some(&agency("tg.anpe")),
    )
    .unwrap();
    let o = handshake(client, fed.server(&[]), ANPE_HOST);
    assert_eq!(o.client_identity(), publisher);
    assert_eq!(o.server_identity(), ident("tg.anpe", Role::Node, "node1"));
    assert_eq!(o.server.alpn_protocol(), Some(ALPN_H2));
    assert_eq!(
        o.server.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
}

#[test]
fn partner_node_is_accepted_and_reaches_us_by_ip() {
    let fed = Fed::new();
    let vdab_node = ident("be.vdab", Role::Node, "gent-1");
    let leaf = cert(&fed.vdab_ca, &vdab_node);
    let client = client_config(
        &leaf.cert_pem,
        &leaf.key_pem,
        &fed.vdab_trust(),
        Some(&agency("tg.anpe")),
    )
    .unwrap();
    let o = handshake(client, fed.server(&[]), "127.0.0.1");
    assert_eq!(o.client_identity(), vdab_node);
    assert_eq!(o.server_identity().agency, agency("tg.anpe"));
}

#[test]
fn client_without_certificate_is_refused() {
    let fed = Fed::new();
    let provider = provider();
    let verifier = AgencyServerVerifier::new(&fed.anpe_trust(), None, &[], &provider).unwrap();
    let client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    let o = handshake(client, fed.server(&[]), ANPE_HOST);
    assert!(
        matches!(o.server_refused(), rustls::Error::NoCertificatesPresented),
        "{:?}",
        o.server_err
    );
}

#[test]
fn unknown_agency_is_refused() {
    let fed = Fed::new();
    let ft_ca = new_agency_ca(&agency("fr.ft"), 30).unwrap();
    let leaf = cert(&ft_ca, &ident("fr.ft", Role::Node, "paris"));
    let o = handshake(fed.raw_client(&leaf), fed.server(&[]), ANPE_HOST);
    assert_eq!(our_reason(o.server_refused()), "unknown agency fr.ft");
}

#[test]
fn unknown_ca_is_refused() {
    let fed = Fed::new();
    // a CA nobody listed, claiming to speak for a trusted agency
    let rogue = new_agency_ca(&agency("fr.ft"), 30).unwrap();
    let leaf = cert(&rogue, &ident("be.vdab", Role::Node, "gent-1"));
    let o = handshake(fed.raw_client(&leaf), fed.server(&[]), ANPE_HOST);
    assert!(
        is_cert_error(o.server_refused(), |c| *c
            == CertificateError::UnknownIssuer),
        "{:?}",
        o.server_err
    );
    // a look-alike of VDAB's CA (same name, other key) gets no further
    let lookalike = new_agency_ca(&agency("be.vdab"), 30).unwrap();
    let leaf = cert(&lookalike, &ident("be.vdab", Role::Node, "gent-1"));
    let o = handshake(fed.raw_client(&leaf), fed.server(&[]), ANPE_HOST);
    assert!(
        is_cert_error(o.server_refused(), |c| *c == CertificateError::BadSignature),
        "{:?}",
        o.server_err
    );
}

#[test]
fn partner_ca_cannot_vouch_for_another_agency() {
    let fed = Fed::new();
    let claims_anpe = cert(&fed.vdab_ca, &ident("tg.anpe", Role::Operator, "root"));
    let o = handshake(fed.raw_client(&claims_anpe), fed.server(&[]), ANPE_HOST);
    assert!(
        is_cert_error(o.server_refused(), |c| *c
            == CertificateError::UnknownIssuer),
        "{:?}",
        o.server_err
    );
    // the same CA is fine for its own agency
    let own = ident("be.vdab", Role::Operator, "root");
    let o = handshake(
        fed.raw_client(&cert(&fed.vdab_ca, &own)),
        fed.server(&[]),
        ANPE_HOST,
    );
    assert_eq!(o.client_identity(), own);
}

#[test]
fn certificates_outside_their_validity_are_refused() {
    let fed = Fed::new();
    let now = OffsetDateTime::now_utc();
    let sans = || vec![uri("urn:passerelle:tg.anpe:analyst:ama")];
    let issue = |nb, na| issue_cert_with_sans(&fed.anpe_ca, sans(), false, nb, na).unwrap();

    let expired = issue(now - Duration::days(10), now - Duration::days(1));
    let o = handshake(fed.raw_client(&expired), fed.server(&[]), ANPE_HOST);
    assert!(
        is_cert_error(o.server_refused(), |c| matches!(
            c,
            CertificateError::Expired | CertificateError::ExpiredContext { .. }
        )),
        "{:?}",
        o.server_err
    );

    let early = issue(now + Duration::days(1), now + Duration::days(10));
    let o = handshake(fed.raw_client(&early), fed.server(&[]), ANPE_HOST);
    assert!(
        is_cert_error(o.server_refused(), |c| matches!(
            c,
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. }
        )),
        "{:?}",
        o.server_err
    );

    let current = issue(now - Duration::days(1), now + Duration::days(1));
    let o = handshake(fed.raw_client(&current), fed.server(&[]), ANPE_HOST);
    assert_eq!(o.client_identity(), ident("tg.anpe", Role::Analyst, "ama"));
}

#[test]
fn san_identity_rules_are_enforced_in_the_handshake() {
    let fed = Fed::new();
    let cases: [(Vec<SanType>, &str); 5] = [
        (
            vec![SanType::DnsName("x.test".try_into().unwrap())],
            "certificate carries no urn:passerelle: san uri",
        ),
        (
            vec![
                uri("urn:passerelle:tg.anpe:publisher:a"),
                uri("urn:passerelle:tg.anpe:analyst:a"),
            ],
            "certificate carries 2 urn:passerelle: san uris, exactly one is allowed",
        ),
        (
            vec![
                uri("urn:passerelle:tg.anpe:publisher:a"),
                uri("URN:Passerelle:tg.anpe:operator:a"),
            ],
            "certificate carries 2 urn:passerelle: san uris, exactly one is allowed",
        ),
        (
            vec![uri("urn:passerelle:tg.anpe:publisher")],
            "must look like urn:passerelle:<agency>:<role>:<name>",
        ),
        (
            vec![uri("urn:passerelle:tg.anpe:admin:root")],
            "role \"admin\" must be one of node, publisher, analyst, operator",
        ),
    ];
    for (sans, reason) in cases {
        let leaf = with_sans(&fed.anpe_ca, sans.clone());
        let o = handshake(fed.raw_client(&leaf), fed.server(&[]), ANPE_HOST);
        let got = our_reason(o.server_refused());
        assert!(got.contains(reason), "{sans:?}: {got}");
    }
    // URIs of other schemes are no identity and do not count
    let leaf = with_sans(
        &fed.anpe_ca,
        vec![
            uri("https://anpe.tg/staff/a"),
            uri("urn:passerelle:tg.anpe:publisher:a"),
        ],
    );
    let o = handshake(fed.raw_client(&leaf), fed.server(&[]), ANPE_HOST);
    assert_eq!(o.client_identity(), ident("tg.anpe", Role::Publisher, "a"));
}

#[test]
fn identity_from_cert_der_reports_each_rule() {
    let fed = Fed::new();
    let der =
        |sans| certs_from_pem(&with_sans(&fed.anpe_ca, sans).cert_pem, "t").unwrap()[0].clone();
    assert!(matches!(
        identity_from_cert_der(&der(vec![])),
        Err(PkiError::NoIdentity)
    ));
    assert!(matches!(
        identity_from_cert_der(&der(vec![
            uri("urn:passerelle:tg.anpe:node:a"),
            uri("urn:passerelle:tg.anpe:node:b"),
            uri("urn:passerelle:tg.anpe:node:c"),
        ])),
        Err(PkiError::SeveralIdentities(3))
    ));
    assert!(matches!(
        identity_from_cert_der(&der(vec![uri("urn:passerelle:xx:node:a")])),
        Err(PkiError::BadIdentityUri { .. })
    ));
    assert!(matches!(
        identity_from_cert_der(&der(vec![uri("urn:passerelle:tg.anpe:boss:a")])),
        Err(PkiError::UnknownRole(_))
    ));
    assert_eq!(
        identity_from_cert_der(&der(vec![uri("urn:passerelle:tg.anpe:node:a")])).unwrap(),
        ident("tg.anpe", Role::Node, "a")
    );
    assert!(matches!(
        identity_from_cert_der(b"not a certificate"),
        Err(PkiError::BadCertificate(_))
    ));
}

#[test]
fn revoked_certificate_is_refused() {
    let fed = Fed::new();
    let revoked = cert(&fed.anpe_ca, &ident("tg.anpe", Role::Publisher, "old"));
    let kept = cert(&fed.anpe_ca, &ident("tg.anpe", Role::Publisher, "new"));
    let serial = cert_serial(&certs_from_pem(&revoked.cert_pem, "t").unwrap()[0]).unwrap();
    let crl = new_crl(&fed.anpe_ca, &[serial], 7).unwrap();
    let crls = [crl];

    let o = handshake(fed.raw_client(&revoked), fed.server(&crls), ANPE_HOST);
    assert!(
        is_cert_error(o.server_refused(), |c| *c == CertificateError::Revoked),
        "{:?}",
        o.server_err
    );
    // the same certificate passes without the CRL, and the CRL spares everybody else,
    // including agencies that have no CRL configured
    let o = handshake(fed.raw_client(&revoked), fed.server(&[]), ANPE_HOST);
    o.assert_ok();
    let o = handshake(fed.raw_client(&kept), fed.server(&crls), ANPE_HOST);
    assert_eq!(o.client_identity().name, "new");
    let vdab = cert(&fed.vdab_ca, &ident("be.vdab", Role::Node, "gent-1"));
    let o = handshake(fed.raw_client(&vdab), fed.server(&crls), ANPE_HOST);
    assert_eq!(o.client_identity().agency, agency("be.vdab"));
}

#[test]
fn crls_are_checked_when_the_config_is_built() {
    let fed = Fed::new();
    let chain = &fed.anpe_node.cert_pem;
    let key = &fed.anpe_node.key_pem;
    // same issuer name as ANPE's CA, different key: a forged or mixed-up CRL
    let lookalike = new_agency_ca(&agency("tg.anpe"), 30).unwrap();
    let forged = new_crl(&lookalike, &[], 7).unwrap();
    let err = server_config(chain, key, &fed.anpe_trust(), &[forged]).unwrap_err();
    assert_eq!(err.to_string(), "crl 0: is not signed by the ca of tg.anpe");

    let err = server_config(chain, key, &fed.anpe_trust(), &[String::new()]).unwrap_err();
    assert_eq!(err.to_string(), "crl 0: holds no crl");

    // a CRL of a CA we do not trust is skipped
    let ft_ca = new_agency_ca(&agency("fr.ft"), 30).unwrap();
    let foreign = new_crl(&ft_ca, &[], 7).unwrap();
    let server = server_config(chain, key, &fed.anpe_trust(), &[foreign]).unwrap();
    let leaf = cert(&fed.anpe_ca, &ident("tg.anpe", Role::Analyst, "ama"));
    handshake(fed.raw_client(&leaf), server, ANPE_HOST).assert_ok();
}

#[test]
fn tls12_only_client_is_refused() {
    let fed = Fed::new();
    let leaf = cert(&fed.anpe_ca, &ident("tg.anpe", Role::Analyst, "ama"));
    let tls12 = raw_client_versions(&leaf, &fed.anpe_trust(), &[&rustls::version::TLS12]);
    let o = handshake(tls12, fed.server(&[]), ANPE_HOST);
    assert!(
        matches!(o.server_refused(), rustls::Error::PeerIncompatible(_)),
        "{:?}",
        o.server_err
    );
    // the same client offering both versions gets TLS 1.3
    let both = raw_client_versions(
        &leaf,
        &fed.anpe_trust(),
        &[&rustls::version::TLS13, &rustls::version::TLS12],
    );
    let o = handshake(both, fed.server(&[]), ANPE_HOST);
    o.assert_ok();
    assert_eq!(
        o.client.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
}

#[test]
fn server_name_mismatch_is_refused_by_the_client() {
    let fed = Fed::new();
    let leaf = cert(&fed.anpe_ca, &ident("tg.anpe", Role::Analyst, "ama"));
    let client = || client_config(&leaf.cert_pem, &leaf.key_pem, &fed.anpe_trust(), None).unwrap();
    let o = handshake(client(), fed.server(&[]), "elsewhere.test");
    assert!(
        is_cert_error(o.client_refused(), |c| matches!(
            c,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
        )),
        "{:?}",
        o.client_err
    );
    let o = handshake(client(), fed.server(&[]), "10.0.0.1");
    assert!(o.client_err.is_some(), "wrong ip accepted");
    handshake(client(), fed.server(&[]), ANPE_HOST).assert_ok();
}

#[test]
fn client_checks_the_server_identity() {
    let fed = Fed::new();
    let leaf = cert(&fed.vdab_ca, &ident("be.vdab", Role::Node, "gent-1"));
    let expecting = |a: &str| {
        client_config(
            &leaf.cert_pem,
            &leaf.key_pem,
            &fed.vdab_trust(),
            Some(&agency(a)),
        )
        .unwrap()
    };
    let o = handshake(expecting("fr.ft"), fed.server(&[]), ANPE_HOST);
    assert_eq!(
        our_reason(o.client_refused()),
        "server certificate belongs to tg.anpe, expected fr.ft"
    );
    handshake(expecting("tg.anpe"), fed.server(&[]), ANPE_HOST).assert_ok();

    // a server presenting a non-node certificate, even one fit for serverAuth
    let publisher = with_sans(
        &fed.anpe_ca,
        vec![
            uri("urn:passerelle:tg.anpe:publisher:p"),
            SanType::DnsName(ANPE_HOST.try_into().unwrap()),
        ],
    );
    let server = build_server_config(
        certs_from_pem(&publisher.cert_pem, "t").unwrap(),
        &publisher.key_pem,
        &fed.anpe_trust(),
        &[],
    )
    .unwrap();
    let o = handshake(expecting("tg.anpe"), server, ANPE_HOST);
    assert_eq!(
        our_reason(o.client_refused()),
        "server certificate has role publisher, expected node"
    );

    // a node certificate for ANPE from a CA that is not ANPE's
    let rogue = new_agency_ca(&agency("fr.ft"), 30).unwrap();
    let fake = cert(&rogue, &ident("tg.anpe", Role::Node, "node1"));
    let server = build_server_config(
        certs_from_pem(&fake.cert_pem, "t").unwrap(),
        &fake.key_pem,
        &fed.anpe_trust(),
        &[],
    )
    .unwrap();
    let o = handshake(expecting("tg.anpe"), server, ANPE_HOST);
    assert!(
        is_cert_error(o.client_refused(), |c| *c
            == CertificateError::UnknownIssuer),
        "{:?}",
        o.client_err
    );
}

#[test]
fn own_certificate_is_checked_when_the_config_is_built() {
    let fed = Fed::new();
    let trust = fed.anpe_trust();
    let publisher = cert(&fed.anpe_ca, &ident("tg.anpe", Role::Publisher, "p"));
    let err = server_config(&publisher.cert_pem, &publisher.key_pem, &trust, &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "own certificate has role publisher, serving needs a node certificate"
    );
    // clients may be any role of the own agency
    client_config(&publisher.cert_pem, &publisher.key_pem, &trust, None).unwrap();

    let vdab_node = cert(&fed.vdab_ca, &ident("be.vdab", Role::Node, "gent-1"));
    let err = server_config(&vdab_node.cert_pem, &vdab_node.key_pem, &trust, &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "own certificate belongs to be.vdab, this node is tg.anpe"
    );
    let err = client_config(&vdab_node.cert_pem, &vdab_node.key_pem, &trust, None).unwrap_err();
    assert!(matches!(err, PkiError::OwnCertificate(_)), "{err}");

    let err = server_config(&fed.anpe_node.cert_pem, &publisher.key_pem, &trust, &[]).unwrap_err();
    assert!(matches!(err, PkiError::Tls(_)), "{err}");

    let err = server_config("", &fed.anpe_node.key_pem, &trust, &[]).unwrap_err();
    assert_eq!(err.to_string(), "own certificate: holds no certificate");
    let err = server_config(&fed.anpe_node.cert_pem, "", &trust, &[]).unwrap_err();
    assert_eq!(err.to_string(), "own key: holds no private key");
}

#[test]
fn client_refuses_a_tls12_only_server() {
    let fed = Fed::new();
    let provider = provider();
    let verifier = AgencyClientVerifier::new(&fed.anpe_trust(), &[], &provider).unwrap();
    let tls12_server = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(
            certs_from_pem(&fed.anpe_node.cert_pem, "t").unwrap(),
            parse_key(&fed.anpe_node.key_pem, "t").unwrap(),
        )
        .unwrap();
    let leaf = cert(&fed.anpe_ca, &ident("tg.anpe", Role::Analyst, "ama"));
    let client = client_config(&leaf.cert_pem, &leaf.key_pem, &fed.anpe_trust(), None).unwrap();
    let o = handshake(client, tls12_server, ANPE_HOST);
    assert!(
        o.client_err.is_some() || o.server_err.is_some(),
        "tls 1.2 negotiated"
    );
    assert_ne!(
        o.client.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
}

#[test]
fn peer_identity_needs_a_certificate() {
    assert!(matches!(
        peer_identity(&[]),
        Err(PkiError::NoPeerCertificate)
    ));
}

#[test]
fn install_crypto_provider_is_idempotent() {
    install_crypto_provider();
    install_crypto_provider();
    assert!(rustls::crypto::CryptoProvider::get_default().is_some());
}
