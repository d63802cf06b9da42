//! Shared fixtures and properties of the fuzz targets: sample records, fixed signing keys
//! and a node on the memory engine that trusts two partner agencies.
//!
//! Each target states what must hold for any input (no panic, and the properties checked
//! here); a violated property panics, which libFuzzer reports as a crash.

pub mod envelope;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::{Mutex, OnceLock};

use passerelle_model::codec::{decode_content, encode_content};
use passerelle_model::envelope::{encode_payload, Seal};
use passerelle_model::{AgencyId, Kind, Record, RecordKey, Rules};
use passerelle_node::{Node, NodeConfig, SignedRecord};
use passerelle_pki::{SigningKey, TrustEntry, TrustFile};
use passerelle_store::{AnyEngine, MemEngine};

/// The largest single allocation any target may make. Inputs are a few KiB, so a request
/// above this comes from a size read out of the input and trusted: an unbounded
/// allocation, reported as a crash (libFuzzer's own memory is not counted here).
pub const MAX_ALLOC: usize = 64 << 20;

struct Capped;

impl Capped {
    fn check(size: usize) {
        if size > MAX_ALLOC {
            // no formatting here: it could allocate
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"fuzz: single allocation above MAX_ALLOC (unbounded allocation)\n",
            );
            std::process::abort();
        }
    }
}

// SAFETY: forwards to the system allocator, after a size check that never allocates.
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::check(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::check(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::check(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Capped = Capped;

/// The node under test.
pub const NODE: &str = "tg.anpe";
/// A partner whose only valid signatures are those of [`genuine`]: the fuzzer never
/// holds its key, so nothing else of this origin may ever be stored.
pub const SEALED: &str = "be.vdab";
/// A trusted partner that signs whatever the fuzzer hands it (a buggy or hostile origin):
/// its records must still be validated before they are stored.
pub const HOSTILE: &str = "fr.francetravail";

const VACANCIES: &str = include_str!("../../samples/vdab-vacancies.jsonl");
const SHORTAGES: &str = include_str!("../../samples/vdab-shortages.csv");
const SUPPLY: &str = include_str!("../../samples/anpe-supply.csv");

pub fn prefix(kind: Kind) -> &'static str {
    passerelle_node::request_prefix(kind)
}

pub fn kind_of(b: u8) -> Kind {
    Kind::ALL[usize::from(b) % Kind::ALL.len()]
}

fn read(kind: Kind, format: passerelle::cli::files::Format, text: &str, n: usize) -> Vec<Record> {
    let input = Box::new(std::io::Cursor::new(text.as_bytes().to_vec()));
    passerelle::cli::files::read_records(kind, format, input)
        .expect("sample header")
        .take(n)
        .map(|l| l.record.expect("sample record"))
        .collect()
}

/// A few valid records of every kind from `samples/`, origin unset.
pub fn samples() -> &'static [Record] {
    static S: OnceLock<Vec<Record>> = OnceLock::new();
    S.get_or_init(|| {
        use passerelle::cli::files::Format::{Csv, Jsonl};
        let mut out = read(Kind::Vacancy, Jsonl, VACANCIES, 3);
        out.extend(read(Kind::Shortage, Csv, SHORTAGES, 2));
        out.extend(read(Kind::Supply, Csv, SUPPLY, 2));
        out
    })
}

/// PKCS#8 v1 of an Ed25519 key with a fixed seed, so runs and reproducers are stable.
fn fixed_key(seed_byte: u8) -> (Vec<u8>, SigningKey) {
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&[seed_byte; 32]);
    let key = SigningKey::from_pkcs8(&der).expect("fixed ed25519 key");
    (der, key)
}

/// The signing key of [`SEALED`]: only the harness uses it, to make [`genuine`].
pub fn sealed_key() -> &'static SigningKey {
    static K: OnceLock<SigningKey> = OnceLock::new();
    K.get_or_init(|| fixed_key(0xa1).1)
}

/// The signing key of [`HOSTILE`]: signs whatever a fuzz input asks.
pub fn hostile_key() -> &'static SigningKey {
    static K: OnceLock<SigningKey> = OnceLock::new();
    K.get_or_init(|| fixed_key(0xb2).1)
}

pub fn agency(s: &str) -> AgencyId {
    AgencyId::parse(s).expect("agency id")
}

/// A record version signed by its origin, as a peer delivers it.
pub fn sign(
    key: &SigningKey,
    rk: &RecordKey,
    revision: u64,
    at: i64,
    content: &[u8],
) -> SignedRecord {
    let payload = encode_payload(rk, revision, at, content);
    SignedRecord {
        key: rk.to_string(),
        revision,
        signature: key.sign(&payload).to_vec(),
        key_id: key.key_id(),
        payload,
    }
}

/// The only versions of [`SEALED`] that exist: samples re-keyed to it, signed once.
pub fn genuine() -> &'static [SignedRecord] {
    static G: OnceLock<Vec<SignedRecord>> = OnceLock::new();
    G.get_or_init(|| {
        let origin = agency(SEALED);
        samples()
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut r = r.clone();
                r.set_origin(&origin);
                let rk = r.key().expect("sample key");
                let revision = i as u64 + 1;
                sign(
                    sealed_key(),
                    &rk,
                    revision,
                    1_770_000_000_000_000 + i as i64,
                    &encode_content(&r),
                )
            })
            .collect()
    })
}

/// Folder with the node's CA, signing key and a trust file naming both partners.
fn node_config() -> &'static NodeConfig {
    static C: OnceLock<NodeConfig> = OnceLock::new();
    C.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir").keep();
        let ca = |a: &str| {
            passerelle_pki::new_agency_ca(&agency(a), 3650)
                .expect("ca")
                .cert_pem
        };
        std::fs::write(dir.join("ca.pem"), ca(NODE)).expect("write ca");
        let (own_der, _) = fixed_key(0x07);
        std::fs::write(
            dir.join("signing-key.pem"),
            passerelle_pki::pkcs8_to_pem(&own_der),
        )
        .expect("write signing key");
        let entry = |a: &str, k: &SigningKey| {
            TrustEntry::new(agency(a), &ca(a), &[k.public_key()]).expect("trust entry")
        };
        TrustFile {
            agency: vec![entry(SEALED, sealed_key()), entry(HOSTILE, hostile_key())],
        }
        .save(&dir.join("trust.toml"))
        .expect("write trust file");
        let mut cfg = NodeConfig::new(agency(NODE), dir);
        cfg.tls.trust = Some("trust.toml".into());
        cfg
    })
}

/// A node on an empty memory store. Opening one costs tens of milliseconds (the analytics
/// index interns the reference data), so targets share one and renew it every
/// [`NODE_RUNS`] runs, which keeps its store small.
pub fn fresh_node() -> Node {
    Node::open_on(node_config(), AnyEngine::Mem(MemEngine::new())).expect("open node")
}

pub const NODE_RUNS: u32 = 1000;

/// Runs `f` on the shared node (see [`fresh_node`]).
pub fn with_node<T>(f: impl FnOnce(&Node) -> T) -> T {
    static SHARED: Mutex<Option<(Node, u32)>> = Mutex::new(None);
    let mut guard = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if guard.as_ref().is_none_or(|(_, runs)| *runs >= NODE_RUNS) {
        *guard = Some((fresh_node(), 0));
    }
    let (node, runs) = guard.as_mut().expect("node just set");
    *runs += 1;
    f(node)
}

/// What a stored record must satisfy, whatever peers delivered; checked for every record
/// written after log position `since`: it carries a seal of its origin that verifies over
/// exactly the stored fields; a [`SEALED`] version is one of [`genuine`]; any content
/// decodes, validates and names its key; no origin in `refused_origins` is stored.
pub fn check_stored(node: &Node, since: u64, refused_origins: &[AgencyId]) {
    let trust = node.trust();
    let written = node
        .store()
        .log_since(since, usize::MAX)
        .expect("log reads");
    for e in written {
        let s = node
            .store()
            .get(&e.key)
            .expect("stored record reads")
            .expect("a log entry names a stored record");
        assert_eq!(s.seq, e.seq, "log entry and record disagree");
        let origin = s.key.origin.as_str();
        assert!(
            origin == SEALED || origin == HOSTILE,
            "{}: stored a record of origin {origin}",
            s.key
        );
        assert!(
            !refused_origins.contains(&s.key.origin),
            "{}: stored a record of a refused origin",
            s.key
        );
        let seal = Seal::decode(&s.seal).expect("stored seal decodes");
        let public = trust
            .signing_key(&s.key.origin, &seal.key_id)
            .expect("stored seal names a trusted key");
        let payload = encode_payload(&s.key, s.revision, s.updated_at_micros, &s.content);
        assert!(
            passerelle_pki::verify_signature(&public, &payload, &seal.signature),
            "{}: stored version is not the one its origin signed",
            s.key
        );
        if origin == SEALED {
            assert!(
                genuine()
                    .iter()
                    .any(|g| g.payload == payload && g.signature == seal.signature),
                "{}: accepted a {SEALED} version that {SEALED} never signed",
                s.key
            );
        }
        let rec = decode_content(s.key.kind, &s.content).expect("stored content decodes");
        assert_eq!(rec.id(), s.key.id, "stored content names another id");
        assert_eq!(rec.origin(), origin, "stored content names another origin");
        if let Err(v) = rec.validate(prefix(s.key.kind), &Rules::default()) {
            panic!("{}: stored an invalid record: {v}", s.key);
        }
    }
}

/// The canonical form is a fixed point: its bytes decode, and encoding again gives them back.
pub fn check_canonical(rec: &Record) {
    let bytes = encode_content(rec);
    let again = decode_content(rec.kind(), &bytes).expect("canonical content decodes");
    assert_eq!(
        encode_content(&again),
        bytes,
        "canonical content changes on a round trip"
    );
}

/// A record accepted by the node (validated) must read back from the store as valid.
pub fn check_storable(rec: &Record, rules: &Rules) {
    let bytes = encode_content(rec);
    let back = decode_content(rec.kind(), &bytes).expect("valid record decodes from the store");
    if let Err(v) = back.validate(prefix(rec.kind()), rules) {
        panic!("valid record is invalid after a store round trip: {v}");
    }
}

/// Canonical content with the origin-assigned fields cleared, for comparing two records
/// (NaN-safe, unlike `==`).
pub fn content_of(rec: &Record) -> Vec<u8> {
    let mut r = rec.clone();
    r.set_version(0, 0);
    encode_content(&r)
}

/// What the wire carries for a record comes back as the same record, with no violation.
pub fn check_wire_round_trip(rec: &Record) {
    use passerelle::convert::{record_in, record_out};
    let (back, violations) = record_in(record_out(rec), prefix(rec.kind()));
    assert!(
        violations.is_empty(),
        "conversion of a domain record found violations: {violations}"
    );
    assert_eq!(
        content_of(&back),
        content_of(rec),
        "record changes through the wire form"
    );
}
