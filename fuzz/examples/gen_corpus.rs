//! Writes the seed corpus of every fuzz target into `fuzz/corpus/<target>/`: valid inputs
//! made from `samples/` and the `init` template, and near-valid variants of them.
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --example gen_corpus
//!
//! Deterministic except for `envelope_verify`, whose seeds are found by decoding random
//! bytes as the target does until each wanted shape of input turns up (fixed seed, so
//! stable for one version of the `arbitrary` crate).

use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Unstructured};
use passerelle::cli::files::{record_to_json, write_csv};
use passerelle::convert::{record_out, WireRecord};
use passerelle_fuzz::envelope::{Delivery, Input};
use passerelle_fuzz::{agency, samples, NODE};
use passerelle_model::codec::encode_content;
use passerelle_model::{Kind, Record};
use prost::Message;

fn kind_byte(kind: Kind) -> u8 {
    Kind::ALL.iter().position(|k| *k == kind).expect("kind") as u8
}

struct Out {
    dir: PathBuf,
    n: usize,
}

impl Out {
    fn new(root: &Path, target: &str) -> Out {
        let dir = root.join(target);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).expect("clear corpus dir");
        }
        std::fs::create_dir_all(&dir).expect("corpus dir");
        Out { dir, n: 0 }
    }

    fn put(&mut self, name: &str, bytes: &[u8]) {
        self.n += 1;
        std::fs::write(self.dir.join(format!("{:02}-{name}", self.n)), bytes).expect("write seed");
    }

    fn with_kind(&mut self, name: &str, kind: Kind, bytes: &[u8]) {
        let mut b = vec![kind_byte(kind)];
        b.extend_from_slice(bytes);
        self.put(name, &b);
    }
}

/// One sample of each kind, origin set as the node sets it.
fn one_of_each() -> Vec<Record> {
    let mut out: Vec<Record> = Vec::new();
    for r in samples() {
        if !out.iter().any(|o| o.kind() == r.kind()) {
            let mut r = r.clone();
            r.set_origin(&agency(NODE));
            out.push(r);
        }
    }
    out
}

fn wire_bytes(r: &Record) -> Vec<u8> {
    match record_out(r) {
        WireRecord::Vacancy(v) => v.encode_to_vec(),
        WireRecord::Shortage(s) => s.encode_to_vec(),
        WireRecord::Supply(c) => c.encode_to_vec(),
    }
}

fn record_codec(root: &Path) {
    let mut o = Out::new(root, "record_codec");
    for r in one_of_each() {
        let c = encode_content(&r);
        o.with_kind(&format!("{}", r.kind()), r.kind(), &c);
        o.with_kind(
            &format!("{}-truncated", r.kind()),
            r.kind(),
            &c[..c.len() / 2],
        );
    }
    // a vacancy's bytes read as a shortage, and an unknown format byte
    let v = encode_content(&one_of_each()[0]);
    o.with_kind("vacancy-as-shortage", Kind::Shortage, &v);
    let mut f = v.clone();
    f[0] = 2;
    o.with_kind("format-2", Kind::Vacancy, &f);
}

fn record_protobuf(root: &Path) {
    let mut o = Out::new(root, "record_protobuf");
    for r in one_of_each() {
        o.with_kind(&format!("{}", r.kind()), r.kind(), &wire_bytes(&r));
    }
    let Record::Vacancy(v) = &one_of_each()[0] else {
        unreachable!("vacancies come first")
    };
    let mut p = passerelle::convert::vacancy_out(v);
    p.status = 0;
    p.contract = 99;
    o.with_kind("vacancy-bad-enums", Kind::Vacancy, &p.encode_to_vec());
    let mut p = passerelle::convert::vacancy_out(v);
    p.origin.clear();
    p.salary = None;
    p.skills.truncate(1);
    o.with_kind("vacancy-no-origin", Kind::Vacancy, &p.encode_to_vec());
}

fn import_jsonl(root: &Path) {
    let mut o = Out::new(root, "import_jsonl");
    for r in one_of_each() {
        let line = record_to_json(&r).to_string();
        o.with_kind(&format!("{}", r.kind()), r.kind(), line.as_bytes());
    }
    let v = record_to_json(&one_of_each()[0]).to_string();
    let file = format!("{v}\n\n  \n{}\n{v}", v.replace("\"OPEN\"", "\"SHUT\""));
    o.with_kind("vacancies-bad-status", Kind::Vacancy, file.as_bytes());
    o.with_kind(
        "vacancy-nested-error",
        Kind::Vacancy,
        br#"{"id":"V1","status":"OPEN","title":"x","salary":{"min":1,"max":2,"period":"MONTHLY"}}"#,
    );
    o.with_kind(
        "not-json",
        Kind::Supply,
        b"{\"id\": \"S1\", \"period\": 2026,\n[1,2\n",
    );
}

fn import_csv(root: &Path) {
    let mut o = Out::new(root, "import_csv");
    for r in one_of_each() {
        let mut out = Vec::new();
        write_csv(r.kind(), std::slice::from_ref(&r), &mut out).expect("write csv");
        o.with_kind(&format!("{}", r.kind()), r.kind(), &out);
    }
    let head = |name: &str, lines: usize| -> String {
        let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(name))
            .expect("sample file");
        text.lines().take(lines).collect::<Vec<_>>().join("\n") + "\n"
    };
    o.with_kind(
        "shortages",
        Kind::Shortage,
        head("../samples/vdab-shortages.csv", 3).as_bytes(),
    );
    o.with_kind(
        "supply",
        Kind::Supply,
        head("../samples/anpe-supply.csv", 3).as_bytes(),
    );
    o.with_kind(
        "vacancy-lists",
        Kind::Vacancy,
        b"id,status,title,skills,languages,location.country,positions,open_to_international,salary.min,salary.max,salary.currency,salary.period\n\
          V1,OPEN,Nurse,http://x/s1|care|true;http://x/s2||false,fr:B2;nl:A2,BE,2,true,100,200,EUR,MONTH\n\
          V2,OPEN,\"Nurse, night\",,fr,BE,three,maybe,1,2,EUR,MONTH\n",
    );
    o.with_kind("unknown-column", Kind::Vacancy, b"id,colour\nV1,red\n");
    o.with_kind(
        "ragged",
        Kind::Supply,
        b"id,period,country\nS1,2026\nS2,2026-Q5,TG,extra\n",
    );
}

fn node_config(root: &Path) {
    let mut o = Out::new(root, "node_config");
    let dir = tempfile::tempdir().expect("tempdir");
    let init = passerelle::cli::init::run(&passerelle::cli::init::InitArgs {
        agency: agency(NODE),
        dir: dir.path().join("node"),
        listen: "127.0.0.1:7443".parse().expect("addr"),
        hostname: Vec::new(),
        metrics_listen: "127.0.0.1:9464".parse().expect("addr"),
        days: 30,
    })
    .expect("init");
    let written = std::fs::read_to_string(&init.config).expect("node.toml");
    o.put("init.toml", written.as_bytes());
    o.put("minimal.toml", b"agency = \"tg.anpe\"\n");
    o.put(
        "peers.toml",
        b"agency = \"tg.anpe\"\n[sync]\nbatch_records = 10\n\n[[peers]]\nagency = \"be.vdab\"\n\
          endpoint = \"https://127.0.0.1:7444\"\nshare = [\"vacancy\", \"shortage\"]\nrelay = true\n\
          refuse_origins = [\"fr.francetravail\"]\n[peers.filter]\nopen_to_international = true\n\
          countries = [\"BE\"]\n\n[[peers]]\nagency = \"fr.francetravail\"\n",
    );
    o.put(
        "bad-values.toml",
        b"agency = \"tg.anpe\"\n[records]\nmin_cell_size = 2\n[sync]\nbackoff_min_ms = 0\n",
    );
    o.put(
        "twice.toml",
        b"agency = \"tg.anpe\"\n[[peers]]\nagency = \"be.vdab\"\n[[peers]]\nagency = \"be.vdab\"\n",
    );
    o.put(
        "unknown-key.toml",
        b"agency = \"tg.anpe\"\nlisten_addr = \"x\"\n",
    );
    o.put(
        "big-numbers.toml",
        b"agency = \"tg.anpe\"\n[store]\ncache_capacity_mb = 17592186044416\n\
          [sync]\ntombstone_retention_days = 9223372036854775807\nbatch_bytes = 4294967295\n",
    );
}

/// Decodes random bytes as the target does until an input of each wanted shape turns up.
fn envelope_verify(root: &Path) {
    let mut o = Out::new(root, "envelope_verify");
    type Shape = fn(&Input) -> bool;
    let shapes: [(&str, Shape); 4] = [
        (
            "genuine",
            |i| matches!(i.deliveries.as_slice(), [Delivery::Genuine { edits, .. }] if edits.is_empty()),
        ),
        (
            "genuine-edited",
            |i| matches!(i.deliveries.as_slice(), [Delivery::Genuine { edits, .. }] if !edits.is_empty()),
        ),
        ("hostile-sample", |i| {
            matches!(
                i.deliveries.as_slice(),
                [Delivery::Hostile {
                    content: passerelle_fuzz::envelope::Content::Sample {
                        origin: None,
                        id: None,
                        ..
                    },
                    origin: None,
                    claimed: None,
                    ..
                }]
            )
        }),
        ("mixed", |i| i.deliveries.len() >= 3),
    ];
    // xorshift: no dependency, same bytes on every run
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for (name, wanted) in shapes {
        let found = (0..1_000_000).find_map(|_| {
            let len = 16 + (next() % 112) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let input = Input::arbitrary_take_rest(Unstructured::new(&bytes)).ok()?;
            wanted(&input).then_some(bytes)
        });
        o.put(
            name,
            &found.unwrap_or_else(|| panic!("no seed of shape {name}")),
        );
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    record_codec(&root);
    record_protobuf(&root);
    import_jsonl(&root);
    import_csv(&root);
    node_config(&root);
    envelope_verify(&root);
    println!("seed corpus written to {}", root.display());
}
