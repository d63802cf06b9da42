//! `node.toml` text → `NodeConfig::parse`.
//!
//! Properties: parsing never panics; an accepted file satisfies the checks `parse` promises
//! (minimum cell size, non-zero timings and batches, distinct peers other than itself).
#![no_main]

use libfuzzer_sys::fuzz_target;
use passerelle_node::NodeConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cfg) = NodeConfig::parse(text) else {
        return;
    };
    assert!(cfg.records.min_cell_size >= passerelle_model::validate::DEFAULT_MIN_CELL_SIZE);
    assert!(cfg.sync.backoff_min_ms >= 1 && cfg.sync.backoff_max_secs >= 1);
    assert!(cfg.sync.batch_records >= 1);
    assert!(cfg.tls.handshake_timeout_secs >= 1);
    let mut seen = std::collections::HashSet::new();
    for p in &cfg.peers {
        assert!(seen.insert(&p.agency), "peer listed twice");
        assert_ne!(p.agency, cfg.agency, "own agency as a peer");
    }
    // the store is opened with this many bytes of cache (Node::open): it must be a number
    assert!(
        cfg.store
            .cache_capacity_mb
            .checked_mul(1024 * 1024)
            .is_some(),
        "store.cache_capacity_mb overflows when turned into bytes"
    );
    // the sweep turns the retention into microseconds before `now` (Node::purge_tombstones)
    assert!(
        i64::try_from(cfg.sync.tombstone_retention_days)
            .ok()
            .and_then(|d| d.checked_mul(86_400_000_000))
            .is_some(),
        "sync.tombstone_retention_days overflows when turned into microseconds"
    );
});
