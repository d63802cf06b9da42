//! An external TLS scan of a node (GitHub issue "Hardening", item 4): testssl.sh
//! against the real binary on loopback, asserting on its JSON findings.
//!
//! Needs testssl.sh (Debian: `apt-get install -y testssl.sh`, which installs it as
//! `testssl`); without it the test fails saying so, unless PASSERELLE_SKIP_TESTSSL=1.
//! PASSERELLE_TESTSSL names another executable. The scan runs offline (no DNS, the
//! node's CA given with `--add-ca`) and takes about 35 s.
//!
//! The node requires a client certificate, which testssl does not present: what it
//! checks at the handshake (protocols, cipher suites per protocol, key exchange, the
//! server certificate, the vulnerability probes) still works, because the node answers
//! the ClientHello before it asks for the client's certificate. Nothing behind the
//! handshake (HTTP headers and the like) is reachable, and is not meant to be.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Certificate findings testssl rates HIGH or CRITICAL that this deployment accepts.
const ACCEPTED: &[(&str, &str)] = &[(
    "cert_revocation",
    // Node certificates carry no CRL distribution point or OCSP URI: each agency runs a
    // private CA, and revocation is a CRL file configured on every node ([tls] crl,
    // PRODUCT.md section 3), reloaded without restart. Public-web revocation does not
    // apply.
    "Neither CRL nor OCSP URI provided",
)];

/// Probes of known TLS vulnerabilities that must have run, none rated HIGH or CRITICAL.
const VULNERABILITIES: &[&str] = &[
    "heartbleed",
    "CCS",
    "ticketbleed",
    "ROBOT",
    "secure_renego",
    "secure_client_renego",
    "CRIME_TLS",
    "POODLE_SSL",
    "fallback_SCSV",
    "FREAK",
    "DROWN",
    "LOGJAM",
    "BEAST",
    "LUCKY13",
    "RC4",
];

/// The testssl executable, or None when the test is to be skipped.
fn testssl() -> Option<PathBuf> {
    if std::env::var("PASSERELLE_SKIP_TESTSSL").is_ok_and(|v| v == "1") {
        eprintln!("PASSERELLE_SKIP_TESTSSL=1: skipped");
        return None;
    }
    if let Ok(p) = std::env::var("PASSERELLE_TESTSSL") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["testssl", "testssl.sh"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    panic!(
        "testssl.sh is not installed: `apt-get install -y testssl.sh` (Debian/Ubuntu, \
         installs `testssl`), or set PASSERELLE_TESTSSL to its path; \
         PASSERELLE_SKIP_TESTSSL=1 skips this test"
    );
}

/// One finding of testssl's flat JSON.
#[derive(Debug, Clone)]
struct Finding {
    id: String,
    severity: String,
    finding: String,
}

/// Runs the scan (at most 300 s); returns its findings by id (the first of each id)
/// and all of them in order.
fn scan(testssl: &Path, addr: std::net::SocketAddr, ca: &Path, out: &Path) -> Vec<Finding> {
    let json = out.join("testssl.json");
    let text = out.join("testssl.txt");
    let mut child = Command::new(testssl)
        .args([
            "--quiet",
            "--warnings",
            "off",
            "--color",
            "0",
            "--nodns",
            "none",
            "--connect-timeout",
            "10",
            "--openssl-timeout",
            "10",
            "--ip",
            "127.0.0.1",
        ])
        .arg("--add-ca")
        .arg(ca)
        // protocols, cipher suites per protocol, cipher categories, forward secrecy,
        // server preferences, server defaults (certificate), vulnerabilities
        .args(["-p", "-E", "-s", "-f", "-P", "-S", "-U"])
        .arg("--jsonfile")
        .arg(&json)
        .arg(addr.to_string())
        .current_dir(out)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&text).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", testssl.display()));
    let started = Instant::now();
    let status = wait_bounded(&mut child, Duration::from_secs(300));
    let report = std::fs::read_to_string(&text).unwrap_or_default();
    let status = status.unwrap_or_else(|| panic!("testssl ran over 300 s:\n{report}"));
    println!(
        "testssl finished in {:.0}s ({status}):\n{report}",
        started.elapsed().as_secs_f64()
    );
    let raw = std::fs::read_to_string(&json)
        .unwrap_or_else(|e| panic!("no JSON from testssl ({e}); its output:\n{report}"));
    let items: Vec<Value> = serde_json::from_str(&raw).expect("testssl JSON");
    items
        .iter()
        .map(|v| Finding {
            id: v["id"].as_str().unwrap_or_default().to_owned(),
            severity: v["severity"].as_str().unwrap_or_default().to_owned(),
            finding: v["finding"].as_str().unwrap_or_default().to_owned(),
        })
        .collect()
}

#[test]
fn testssl_finds_tls13_only_and_no_vulnerability() {
    let Some(testssl) = testssl() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("be.vdab");
    init_with_binary("be.vdab", &dir);
    let _server = Served::start(&dir.join("node.toml"), &tmp.path().join("serve.log"));
    let addr = _server.addr;
    let all = scan(&testssl, addr, &dir.join("ca.pem"), tmp.path());
    let by_id: BTreeMap<&str, &Finding> = all.iter().rev().map(|f| (f.id.as_str(), f)).collect();
    let finding = |id: &str| -> &Finding {
        by_id
            .get(id)
            .copied()
            .unwrap_or_else(|| panic!("testssl reported no {id}: {all:#?}"))
    };

    // the scan reached the node: a scan that could not connect reports nothing offered
    assert_eq!(
        finding("TLS1_3").finding,
        "offered with final",
        "{:?}",
        finding("TLS1_3")
    );
    // TLS 1.3 only
    for id in ["SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2"] {
        assert_eq!(finding(id).finding, "not offered", "{:?}", finding(id));
    }
    // every suite offered is a TLS 1.3 AEAD suite; none of any other protocol
    let suites: Vec<&Finding> = all.iter().filter(|f| f.id.starts_with("cipher-")).collect();
    assert!(!suites.is_empty(), "no cipher suites reported: {all:#?}");
    for s in &suites {
        assert!(s.id.starts_with("cipher-tls1_3_x13"), "{s:?}");
    }
    for id in [
        "cipherlist_NULL",
        "cipherlist_aNULL",
        "cipherlist_EXPORT",
        "cipherlist_LOW",
        "cipherlist_3DES_IDEA",
        "cipherlist_AVERAGE",
    ] {
        assert_eq!(finding(id).finding, "not offered", "{:?}", finding(id));
    }
    assert_eq!(finding("cipherlist_STRONG").finding, "offered");
    assert_eq!(finding("PFS").finding, "offered");
    // the node's certificate chains to its agency CA and names the address scanned
    assert_eq!(finding("cert_chain_of_trust").finding, "passed.");
    assert!(
        finding("cert_trust").finding.starts_with("Ok via SAN"),
        "{:?}",
        finding("cert_trust")
    );

    // every vulnerability probe ran, and none found anything
    for id in VULNERABILITIES {
        let f = finding(id);
        assert!(
            matches!(f.severity.as_str(), "OK" | "INFO"),
            "vulnerability {id}: {f:?}"
        );
    }

    // nothing HIGH or CRITICAL anywhere, but for the accepted certificate findings; no
    // scan problem either
    let mut serious = Vec::new();
    for f in &all {
        let accepted = ACCEPTED
            .iter()
            .any(|(id, text)| f.id == *id && f.finding == *text);
        if matches!(f.severity.as_str(), "HIGH" | "CRITICAL" | "FATAL") && !accepted {
            serious.push(f);
        }
        assert!(!f.id.starts_with("scanProblem"), "{f:?}");
    }
    assert!(serious.is_empty(), "serious findings: {serious:#?}");

    // what a security review reads: every finding above INFO that is not OK
    println!("findings to review:");
    for f in all
        .iter()
        .filter(|f| !matches!(f.severity.as_str(), "OK" | "INFO" | "DEBUG"))
    {
        println!("  {} {}: {}", f.severity, f.id, f.finding);
    }
}
