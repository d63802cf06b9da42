//! Reproducers of what the fuzz targets in `fuzz/` found, as ordinary tests.
//!
//! The `node_config` target checks that every number `NodeConfig::parse` accepts can be
//! used where the node uses it. Two could not: the store cache (MiB turned into bytes, in
//! `Node::open`) and the tombstone retention (days turned into microseconds, in
//! `Node::purge_tombstones`) overflowed. That panics in a debug build; a release build
//! wraps, and a huge retention then purged every tombstone at the first sweep.

mod common;

use passerelle_model::{Kind, Record};
use passerelle_node::NodeConfig;

const MICROS_PER_DAY: i64 = 86_400_000_000;

fn config_with(section: &str, key: &str, value: u64) -> Result<NodeConfig, String> {
    NodeConfig::parse(&format!(
        "agency = \"tg.anpe\"\n[{section}]\n{key} = {value}\n"
    ))
}

#[test]
fn node_config_refuses_a_cache_size_whose_bytes_overflow() {
    let largest = u64::MAX >> 20;
    let cfg = config_with("store", "cache_capacity_mb", largest).expect("largest cache parses");
    assert!(cfg
        .store
        .cache_capacity_mb
        .checked_mul(1024 * 1024)
        .is_some());
    let err = config_with("store", "cache_capacity_mb", largest + 1).unwrap_err();
    assert!(err.contains("store.cache_capacity_mb"), "{err}");
    // 2^44 MiB is exactly 2^64 bytes
    assert!(config_with("store", "cache_capacity_mb", 1 << 44).is_err());
}

#[test]
fn node_config_refuses_a_retention_whose_microseconds_overflow() {
    let largest = (i64::MAX / MICROS_PER_DAY) as u64;
    config_with("sync", "tombstone_retention_days", largest).expect("largest retention parses");
    // TOML integers stop at i64::MAX
    for days in [largest + 1, 200_000_000, i64::MAX as u64] {
        let err = config_with("sync", "tombstone_retention_days", days).unwrap_err();
        assert!(
            err.contains("sync.tombstone_retention_days"),
            "{days}: {err}"
        );
    }
}

/// The sweep with the longest retention the file accepts keeps a fresh tombstone (before
/// the fix, 200 000 000 days wrapped around and purged it in a release build).
#[test]
fn longest_accepted_retention_keeps_tombstones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let largest = (i64::MAX / MICROS_PER_DAY) as u64;
    let node = common::mem_node(dir.path(), "be.vdab", |cfg| {
        cfg.sync.tombstone_retention_days = largest;
    });
    let first = Record::Vacancy(common::sample_vacancy());
    let id = first.id().to_owned();
    node.put(first, None).expect("put");
    node.withdraw(&id, None).expect("withdraw");

    let purged = node
        .purge_tombstones(largest, passerelle_node::now_micros())
        .expect("sweep");
    assert_eq!(
        purged, 0,
        "a fresh tombstone outlives the longest retention"
    );
    assert_eq!(node.store().count(Kind::Vacancy).expect("count"), 1);
}
