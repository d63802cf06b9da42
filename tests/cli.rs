//! The `passerelle` binary as operators and publishers use it (PRODUCT.md section 6):
//! exit codes and output of init, serve, the record commands and the demo.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(120);

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples")
}

/// Runs `passerelle KIND SUBCOMMAND ARGS.. --profile PROFILE`.
fn records_cmd(kind: &str, sub: &str, args: &[&OsStr], profile: &Path) -> Run {
    let mut all: Vec<&OsStr> = vec![kind.as_ref(), sub.as_ref()];
    all.extend_from_slice(args);
    all.push("--profile".as_ref());
    all.push(profile.as_os_str());
    run_bin(all, T)
}

/// An agency folder made by `passerelle init` and its node, served by `passerelle serve`.
struct Node {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    _served: Served,
}

impl Node {
    fn start(agency: &str) -> Node {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(agency);
        init_with_binary(agency, &dir);
        let served = Served::start(&dir.join("node.toml"), &tmp.path().join("serve.log"));
        Node {
            _tmp: tmp,
            dir,
            _served: served,
        }
    }

    fn profile(&self, role: &str) -> PathBuf {
        self.dir.join(format!("clients/{role}.toml"))
    }

    fn run(&self, kind: &str, sub: &str, args: &[&OsStr]) -> Run {
        records_cmd(kind, sub, args, &self.profile("publisher"))
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

/// Every file under `dir` with its bytes and mode.
fn tree(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
                out.insert(p.clone(), (std::fs::read(&p).unwrap(), mode));
            }
        }
    }
    out
}

#[test]
fn init_creates_the_node_folder_and_never_overwrites_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vdab");
    let addr = init_with_binary("be.vdab", &dir);
    let files = tree(&dir);
    let rel = |p: &str| dir.join(p);
    for f in [
        "ca.pem",
        "ca-key.pem",
        "node.pem",
        "node-key.pem",
        "signing-key.pem",
        "node.toml",
        "trust.toml",
        "clients/publisher.toml",
        "clients/analyst.toml",
        "clients/operator.toml",
        "clients/publisher.pem",
        "clients/publisher-key.pem",
        "clients/analyst-key.pem",
        "clients/operator-key.pem",
    ] {
        assert!(
            files.contains_key(&rel(f)),
            "{f} missing; have {:?}",
            files.keys()
        );
    }
    // private keys are readable by the owner only; certificates by anybody
    for (path, (_, mode)) in &files {
        let name = path.file_name().unwrap().to_str().unwrap();
        if name.ends_with("-key.pem") {
            assert_eq!(*mode, 0o600, "{name} has mode {mode:o}");
        }
    }
    assert_eq!(files[&rel("ca.pem")].1, 0o644);
    assert_eq!(files[&rel("node.pem")].1, 0o644);
    for f in ["ca.pem", "node.pem", "clients/publisher.pem"] {
        let text = String::from_utf8(files[&rel(f)].0.clone()).unwrap();
        assert!(text.starts_with("-----BEGIN CERTIFICATE-----"), "{f}");
    }
    for f in ["node-key.pem", "signing-key.pem", "ca-key.pem"] {
        let text = String::from_utf8(files[&rel(f)].0.clone()).unwrap();
        assert!(text.contains("PRIVATE KEY-----"), "{f}");
    }
    // node.toml is what serve reads, with the agency and address given
    let cfg = passerelle_node::NodeConfig::load(&rel("node.toml")).unwrap();
    assert_eq!(cfg.agency.as_str(), "be.vdab");
    assert_eq!(cfg.listen, addr);
    // the profiles point at that node, with the role's certificate
    for role in ["publisher", "analyst", "operator"] {
        let p = passerelle::client::Profile::load(&rel(&format!("clients/{role}.toml"))).unwrap();
        assert_eq!(p.agency.as_str(), "be.vdab");
        assert_eq!(p.address, format!("https://{addr}"));
        let cert = std::fs::read_to_string(rel(&format!("clients/{role}.pem"))).unwrap();
        let der = passerelle_pki::certs_from_pem(&cert, role).unwrap();
        let id = passerelle_pki::identity_from_cert_der(&der[0]).unwrap();
        assert_eq!(id.uri(), format!("urn:passerelle:be.vdab:{role}:{role}"));
    }
    let node_cert = std::fs::read_to_string(rel("node.pem")).unwrap();
    let der = passerelle_pki::certs_from_pem(&node_cert, "node").unwrap();
    let id = passerelle_pki::identity_from_cert_der(&der[0]).unwrap();
    assert_eq!(id.uri(), "urn:passerelle:be.vdab:node:node");

    // a second init on the same folder fails, names node.toml and changes nothing
    let again = run_bin(
        [
            "init".as_ref(),
            "--agency".as_ref(),
            "be.vdab".as_ref(),
            "--dir".as_ref(),
            dir.as_os_str(),
        ] as [&OsStr; 5],
        T,
    );
    assert!(!again.ok(), "second init succeeded: {again:#?}");
    assert!(
        again
            .stderr
            .contains(&dir.join("node.toml").display().to_string()),
        "{again:#?}"
    );
    assert_eq!(tree(&dir), files, "the second init changed the folder");
    // even for another agency id
    let other = run_bin(
        [
            "init".as_ref(),
            "--agency".as_ref(),
            "tg.anpe".as_ref(),
            "--dir".as_ref(),
            dir.as_os_str(),
        ] as [&OsStr; 5],
        T,
    );
    assert!(!other.ok());
    assert!(other.stderr.contains("node.toml"), "{other:#?}");
    assert_eq!(tree(&dir), files);
}

/// Every field of `want` is in `got` with the same value (objects may have more fields).
fn assert_contains(got: &Value, want: &Value, path: &str) {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            for (k, v) in w {
                let p = format!("{path}.{k}");
                assert_contains(g.get(k).unwrap_or(&Value::Null), v, &p);
            }
        }
        (Value::Array(g), Value::Array(w)) => {
            assert_eq!(g.len(), w.len(), "length of {path}");
            for (i, (g, w)) in g.iter().zip(w).enumerate() {
                assert_contains(g, w, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(got, want, "field {path}"),
    }
}

fn sample_ids(path: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[test]
fn put_get_list_and_csv_round_trip() {
    let node = Node::start("be.vdab");
    let input = vacancy_json("V-1", 1);
    let file = node.file("v1.json", &serde_json::to_string_pretty(&input).unwrap());

    let put = node.run("vacancy", "put", &[file.as_os_str()]);
    assert!(put.ok(), "{put:#?}");
    assert_eq!(put.stdout.trim(), "stored revision 1");
    let again = node.run("vacancy", "put", &[file.as_os_str()]);
    assert!(again.ok(), "{again:#?}");
    assert!(again.stdout.contains("unchanged"), "{again:#?}");
    assert!(!again.stdout.contains("stored"), "{again:#?}");

    // get prints the record as JSON: what was put, plus what the node assigned
    let get = node.run("vacancy", "get", &["V-1".as_ref()]);
    assert!(get.ok(), "{get:#?}");
    let got: Value = serde_json::from_str(&get.stdout).expect("get prints JSON");
    assert_contains(&got, &input, "");
    assert_eq!(got["origin"], "be.vdab");
    assert_eq!(got["revision"], 1);
    assert!(got["updated_at_micros"].as_i64().unwrap() > 0, "{got}");
    // as another role, the same
    let as_analyst = records_cmd(
        "vacancy",
        "get",
        &["V-1".as_ref()],
        &node.profile("analyst"),
    );
    assert_eq!(as_analyst.stdout, get.stdout);
    let missing = node.run("vacancy", "get", &["V-NONE".as_ref()]);
    assert_eq!(missing.code, Some(1), "{missing:#?}");
    assert!(missing.stderr.contains("NOT_FOUND"), "{missing:#?}");

    // the sample file, then the listing in every format
    let sample = samples().join("vdab-vacancies.jsonl");
    let mut ids = sample_ids(&sample);
    let imp = node.run("vacancy", "import", &[sample.as_os_str()]);
    assert!(imp.ok(), "{imp:#?}");
    let n = ids.len();
    assert!(
        imp.stdout
            .contains(&format!("{n} records, {n} written, 0 unchanged, 0 refused")),
        "{imp:#?}"
    );
    ids.insert("V-1".into());
    let total = ids.len();

    let json = node.run("vacancy", "list", &["--format".as_ref(), "json".as_ref()]);
    assert!(json.ok(), "{json:#?}");
    let lines: Vec<Value> = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), total);
    let listed: BTreeSet<String> = lines
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, ids);
    assert!(lines
        .iter()
        .all(|v| v["revision"] == 1 && v["origin"] == "be.vdab"));

    let limited = node.run(
        "vacancy",
        "list",
        &[
            "--format".as_ref(),
            "json".as_ref(),
            "--limit".as_ref(),
            "5".as_ref(),
        ],
    );
    assert_eq!(limited.stdout.lines().count(), 5, "{limited:#?}");

    let table = node.run("vacancy", "list", &[]);
    assert!(table.ok(), "{table:#?}");
    let rows: Vec<&str> = table.stdout.lines().collect();
    let header: Vec<&str> = rows[0].split_whitespace().collect();
    for col in ["origin", "id", "rev", "status", "title"] {
        assert!(header.contains(&col), "header {:?} lacks {col}", rows[0]);
    }
    assert_eq!(rows.len(), total + 1, "{}", table.stdout);
    assert!(rows[1..].iter().all(|r| r.starts_with("be.vdab ")));

    let csv = node.run("vacancy", "list", &["--format".as_ref(), "csv".as_ref()]);
    assert!(csv.ok(), "{csv:#?}");
    assert_eq!(
        csv.stdout.lines().next().unwrap().split(',').next(),
        Some("id")
    );
    let out = node.file("out.csv", &csv.stdout);
    let reimport = node.run("vacancy", "import", &[out.as_os_str()]);
    assert!(reimport.ok(), "{reimport:#?}");
    assert!(
        reimport.stdout.contains(&format!(
            "{total} records, 0 written, {total} unchanged, 0 refused"
        )),
        "the CSV export does not re-import unchanged: {reimport:#?}"
    );
    // and the JSON lines re-import unchanged too
    let out = node.file("out.jsonl", &json.stdout);
    let reimport = node.run("vacancy", "import", &[out.as_os_str()]);
    assert!(
        reimport.stdout.contains(&format!(
            "{total} records, 0 written, {total} unchanged, 0 refused"
        )),
        "{reimport:#?}"
    );
}

#[test]
fn refused_put_names_every_violation() {
    let node = Node::start("be.vdab");
    let mut v = vacancy_json("V-BAD", 0);
    v["title"] = "".into();
    v["positions"] = 0.into();
    let file = node.file("bad.json", &v.to_string());
    let put = node.run("vacancy", "put", &[file.as_os_str()]);
    assert_eq!(put.code, Some(1), "{put:#?}");
    assert!(put.stdout.is_empty(), "{put:#?}");
    let violations: Vec<&str> = put
        .stderr
        .lines()
        .filter(|l| l.trim_start().starts_with("vacancy."))
        .collect();
    assert_eq!(violations.len(), 2, "{}", put.stderr);
    assert!(
        violations
            .iter()
            .any(|l| l.trim_start().starts_with("vacancy.title:")),
        "{}",
        put.stderr
    );
    assert!(
        violations
            .iter()
            .any(|l| l.trim_start().starts_with("vacancy.positions:")),
        "{}",
        put.stderr
    );
    assert!(put.stderr.contains("2 problem"), "{}", put.stderr);
    let get = node.run("vacancy", "get", &["V-BAD".as_ref()]);
    assert_eq!(get.code, Some(1));
    assert!(get.stderr.contains("NOT_FOUND"), "{get:#?}");

    // a file that is not a vacancy at all is refused before anything is sent
    let junk = node.file("junk.json", "{\"id\": \"V-J\", \"status\": \"SHUT\"}");
    let put = node.run("vacancy", "put", &[junk.as_os_str()]);
    assert!(!put.ok(), "{put:#?}");
    assert!(put.stderr.contains("status"), "{put:#?}");
}

/// The `line N` lines of an import's output, as (line number, rest).
fn refusals(stdout: &str) -> Vec<(u64, String)> {
    stdout
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("line ")?;
            let end = rest.find(|c: char| !c.is_ascii_digit())?;
            Some((rest[..end].parse().ok()?, rest[end..].to_owned()))
        })
        .collect()
}

#[test]
fn import_reports_refused_lines_and_stores_the_good_ones() {
    let node = Node::start("be.vdab");
    let good = |id: &str, i: usize| vacancy_json(id, i).to_string();
    let mut invalid = vacancy_json("J-4", 4);
    invalid["positions"] = 0.into();
    let jsonl = [
        good("J-1", 1),
        "{ not json".to_owned(),
        good("J-3", 3),
        invalid.to_string(),
        "{\"id\": \"J-5\", \"status\": \"SHUT\", \"title\": \"x\"}".to_owned(),
        good("J-6", 6),
    ]
    .join("\n");
    let file = node.file("mixed.jsonl", &jsonl);
    let imp = node.run("vacancy", "import", &[file.as_os_str()]);
    assert_eq!(imp.code, Some(1), "{imp:#?}");
    let lines = refusals(&imp.stdout);
    let numbers: BTreeSet<u64> = lines.iter().map(|l| l.0).collect();
    assert_eq!(numbers, BTreeSet::from([2, 4, 5]), "{}", imp.stdout);
    assert!(
        lines
            .iter()
            .any(|(n, rest)| *n == 4 && rest.contains("vacancy.positions")),
        "{}",
        imp.stdout
    );
    assert!(
        lines
            .iter()
            .any(|(n, rest)| *n == 5 && rest.contains("status")),
        "{}",
        imp.stdout
    );
    assert!(
        imp.stdout
            .contains("6 records, 3 written, 0 unchanged, 3 refused"),
        "{}",
        imp.stdout
    );
    for id in ["J-1", "J-3", "J-6"] {
        assert!(node.run("vacancy", "get", &[id.as_ref()]).ok(), "{id}");
    }
    for id in ["J-4", "J-5"] {
        assert_eq!(
            node.run("vacancy", "get", &[id.as_ref()]).code,
            Some(1),
            "{id}"
        );
    }

    // CSV: the header is line 1, a bad number and a failed rule are refused by line
    let csv = "id,status,title,language,occupation.isco08,location.country,positions,posted_on\n\
               C-1,OPEN,Lasser,nl,7212,BE,1,2026-03-01\n\
               C-2,OPEN,Lasser,nl,7212,BE,three,2026-03-01\n\
               C-3,OPEN,Lasser,nl,9999,BE,1,2026-03-01\n\
               C-4,OPEN,Lasser,nl,7212,BE,2,2026-03-01\n";
    let file = node.file("mixed.csv", csv);
    let imp = node.run("vacancy", "import", &[file.as_os_str()]);
    assert_eq!(imp.code, Some(1), "{imp:#?}");
    let lines = refusals(&imp.stdout);
    assert_eq!(
        lines.iter().map(|l| l.0).collect::<BTreeSet<_>>(),
        BTreeSet::from([3, 4]),
        "{}",
        imp.stdout
    );
    assert!(
        lines
            .iter()
            .any(|(n, rest)| *n == 3 && rest.contains("positions")),
        "{}",
        imp.stdout
    );
    assert!(
        lines
            .iter()
            .any(|(n, rest)| *n == 4 && rest.contains("vacancy.occupation.isco08")),
        "{}",
        imp.stdout
    );
    for id in ["C-1", "C-4"] {
        assert!(node.run("vacancy", "get", &[id.as_ref()]).ok(), "{id}");
    }
    for id in ["C-2", "C-3"] {
        assert_eq!(
            node.run("vacancy", "get", &[id.as_ref()]).code,
            Some(1),
            "{id}"
        );
    }

    // an unknown column refuses the whole file, naming the column
    let file = node.file(
        "colour.csv",
        "id,status,title,colour\nK-1,OPEN,Lasser,red\n",
    );
    let imp = node.run("vacancy", "import", &[file.as_os_str()]);
    assert!(!imp.ok(), "{imp:#?}");
    assert!(imp.stderr.contains("colour"), "{imp:#?}");
    assert_eq!(node.run("vacancy", "get", &["K-1".as_ref()]).code, Some(1));
}

fn data_lines(path: &Path) -> usize {
    std::fs::read_to_string(path).unwrap().lines().count() - 1
}

#[test]
fn sample_shortages_and_supply_import_into_their_agencies() {
    let vdab = Node::start("be.vdab");
    let anpe = Node::start("tg.anpe");
    let shortages = samples().join("vdab-shortages.csv");
    let n = data_lines(&shortages);
    let imp = vdab.run("shortage", "import", &[shortages.as_os_str()]);
    assert!(imp.ok(), "{imp:#?}");
    assert!(
        imp.stdout
            .contains(&format!("{n} records, {n} written, 0 unchanged, 0 refused")),
        "{imp:#?}"
    );
    let supply = samples().join("anpe-supply.csv");
    let m = data_lines(&supply);
    let imp = anpe.run("supply", "import", &[supply.as_os_str()]);
    assert!(imp.ok(), "{imp:#?}");
    assert!(
        imp.stdout
            .contains(&format!("{m} records, {m} written, 0 unchanged, 0 refused")),
        "{imp:#?}"
    );
    // each node holds its own agency's records
    let list = anpe.run("supply", "list", &["--format".as_ref(), "json".as_ref()]);
    let cells: Vec<Value> = list
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(cells.len(), m);
    assert!(cells.iter().all(|c| c["origin"] == "tg.anpe"));
    let list = vdab.run("shortage", "list", &["--format".as_ref(), "json".as_ref()]);
    assert_eq!(list.stdout.lines().count(), n, "{list:#?}");
    assert!(list
        .stdout
        .lines()
        .all(|l| l.contains("\"origin\":\"be.vdab\"")));
    // the nightly re-import writes nothing
    let imp = anpe.run("supply", "import", &[supply.as_os_str()]);
    assert!(
        imp.stdout
            .contains(&format!("{m} records, 0 written, {m} unchanged, 0 refused")),
        "{imp:#?}"
    );
    // a supply table names the occupations
    let table = anpe.run("supply", "list", &["--limit".as_ref(), "3".as_ref()]);
    assert!(table.stdout.lines().next().unwrap().starts_with("origin"));
    assert_eq!(table.stdout.lines().count(), 4, "{table:#?}");
}

#[test]
fn demo_runs_both_agencies_and_shows_refusals() {
    let tmp = tempfile::tempdir().unwrap();
    let run = run_bin(
        ["demo".as_ref(), "--dir".as_ref(), tmp.path().as_os_str()] as [&OsStr; 3],
        T,
    );
    assert!(run.ok(), "{run:#?}");
    let all = format!("{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("be.vdab"), "{all}");
    assert!(run.stdout.contains("tg.anpe"), "{all}");
    // the broken vacancy is refused with its problems, the analyst's write denied
    assert!(all.contains("refused, "), "{all}");
    assert!(all.contains("vacancy.positions"), "{all}");
    assert!(all.contains("PERMISSION_DENIED"), "{all}");
    // both node folders were made by init
    assert!(tmp.path().join("be.vdab/node.toml").exists());
    assert!(tmp.path().join("tg.anpe/node.toml").exists());
}

#[test]
fn refused_certificate_is_reported_with_its_reason() {
    let node = Node::start("be.vdab");
    let ca = read_pem(&node.dir.join("ca.pem"), &node.dir.join("ca-key.pem"));
    let now = time::OffsetDateTime::now_utc();
    let mut req = passerelle_pki::CertRequest::new(
        passerelle_pki::Identity::new(
            "be.vdab".parse().unwrap(),
            passerelle_pki::Role::Publisher,
            "old",
        )
        .unwrap(),
        1,
    );
    req.not_before = now - time::Duration::days(30);
    req.not_after = now - time::Duration::days(1);
    let expired = passerelle_pki::issue_cert(&ca, &req).unwrap();
    node.file("clients/old.pem", &expired.cert_pem);
    node.file("clients/old-key.pem", &expired.key_pem);
    let profile = node.file(
        "clients/old.toml",
        &std::fs::read_to_string(node.profile("publisher"))
            .unwrap()
            .replace("publisher.pem", "old.pem")
            .replace("publisher-key.pem", "old-key.pem"),
    );
    let file = node.file("v.json", &vacancy_json("V-OLD", 0).to_string());
    for (sub, arg) in [("put", file.as_os_str()), ("get", "V-OLD".as_ref())] {
        let run = records_cmd("vacancy", sub, &[arg], &profile);
        println!("{sub} with an expired certificate: {run:?}");
        assert!(!run.ok(), "{run:#?}");
        assert!(
            run.stderr.to_lowercase().contains("expired"),
            "the operator is not told why the node refused: {}",
            run.stderr
        );
    }
    assert_eq!(
        node.run("vacancy", "get", &["V-OLD".as_ref()]).code,
        Some(1)
    );
}
