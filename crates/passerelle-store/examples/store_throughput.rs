//! Store throughput on sled: bulk import, nightly re-import of the same file, re-import
//! of a changed file (each version compacts away its predecessor's log entry), full scan,
//! consistency check, digest, purge.
//!
//! `cargo run --release -p passerelle-store --example store_throughput -- [N]` (default
//! 100000 records) prints `metric=value` lines. Content is ~1.2 KB of varied text per
//! record, imported with `put_own_many` in batches of 1000, with a 72-byte seal standing
//! in for a key id and an Ed25519 signature.

use std::time::Instant;

use passerelle_model::RecordKey;
use passerelle_store::{RecordStore, SledEngine};

const BATCH: usize = 1000;
const CONTENT_LEN: usize = 1200;
const CACHE: u64 = 256 << 20;

/// Content of record `i` in edition `edition` of the file.
fn content(i: usize, edition: u64) -> Vec<u8> {
    const WORDS: [&str; 12] = [
        "soudeur",
        "verpleegkundige",
        "mechanic",
        "chauffeur",
        "analyste",
        "boulanger",
        "electricien",
        "logistiek",
        "welding",
        "installateur",
        "ploegbaas",
        "technicien",
    ];
    let mut state = (i as u64 ^ (edition << 48)).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut c = format!("{{\"id\":\"V-{i:08}\",\"title\":\"").into_bytes();
    while c.len() < CONTENT_LEN {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        c.extend_from_slice(WORDS[(state % WORDS.len() as u64) as usize].as_bytes());
        c.push(b' ');
    }
    c.truncate(CONTENT_LEN);
    c
}

fn key(i: usize) -> RecordKey {
    format!("be.vdab/vacancy/V-{i:08}").parse().unwrap()
}

fn seal(_: &RecordKey, _: u64, _: i64, _: &[u8]) -> Vec<u8> {
    vec![0x5a; 72]
}

fn batches(n: usize, edition: u64) -> impl Iterator<Item = Vec<(RecordKey, Vec<u8>, Option<u64>)>> {
    (0..n).step_by(BATCH).map(move |start| {
        (start..(start + BATCH).min(n))
            .map(|i| (key(i), content(i, edition), None))
            .collect()
    })
}

/// Runs `put_own_many` over all batches and returns the seconds spent in the store
/// (content generation excluded), including a final flush.
fn import(store: &RecordStore<SledEngine>, n: usize, edition: u64, expect_written: bool) -> f64 {
    let mut spent = 0.0;
    for batch in batches(n, edition) {
        let t = Instant::now();
        let results = store.put_own_many(batch, 1_700_000_000_000_000, seal);
        spent += t.elapsed().as_secs_f64();
        for r in results {
            assert_eq!(r.unwrap().is_written(), expect_written);
        }
    }
    let t = Instant::now();
    store.flush().unwrap();
    spent + t.elapsed().as_secs_f64()
}

fn main() {
    let n: usize = match std::env::args().nth(1) {
        Some(a) => a.parse().expect("N must be a number of records"),
        None => 100_000,
    };
    let dir = tempfile::tempdir().unwrap();
    let store = RecordStore::open(SledEngine::open(dir.path().join("db"), CACHE).unwrap()).unwrap();

    let secs = import(&store, n, 0, true);
    println!("records={n}");
    println!("content_bytes={CONTENT_LEN}");
    println!("batch={BATCH}");
    println!("import_records_per_s={:.0}", n as f64 / secs);
    let size = store.size_on_disk().unwrap();
    println!("bytes_on_disk={size}");
    println!("bytes_on_disk_per_record={:.0}", size as f64 / n as f64);

    let secs = import(&store, n, 0, false);
    println!("reimport_unchanged_records_per_s={:.0}", n as f64 / secs);
    assert_eq!(store.head_seq(), n as u64);

    // every record changes: new versions under new seqs, old entries compacted away
    let secs = import(&store, n, 1, true);
    println!("reimport_changed_records_per_s={:.0}", n as f64 / secs);
    assert_eq!(store.head_seq(), 2 * n as u64);
    assert_eq!(store.log_since(0, usize::MAX).unwrap().len(), n);
    let size = store.size_on_disk().unwrap();
    println!("bytes_on_disk_after_update={size}");

    let t = Instant::now();
    let mut scanned = 0usize;
    for r in store.iter(None) {
        scanned += r.unwrap().content.len().min(1);
    }
    assert_eq!(scanned, n);
    println!(
        "scan_records_per_s={:.0}",
        n as f64 / t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let report = store.check_consistency().unwrap();
    assert!(report.is_ok(), "{report}");
    println!("consistency_check_s={:.2}", t.elapsed().as_secs_f64());

    let t = Instant::now();
    store.digest().unwrap();
    println!("digest_s={:.2}", t.elapsed().as_secs_f64());

    // purge everything, in batches, as a retention sweep would
    let t = Instant::now();
    let mut purged = 0u64;
    for start in (0..n).step_by(BATCH) {
        let keys: Vec<RecordKey> = (start..(start + BATCH).min(n)).map(key).collect();
        purged += store.purge(&keys).unwrap();
    }
    store.flush().unwrap();
    assert_eq!(purged, n as u64);
    println!(
        "purge_records_per_s={:.0}",
        n as f64 / t.elapsed().as_secs_f64()
    );
    assert_eq!(store.purged_through_seq(), 2 * n as u64);
    assert!(store.check_consistency().unwrap().is_ok());
}
