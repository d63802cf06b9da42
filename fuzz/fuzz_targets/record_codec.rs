//! Canonical content bytes (what the store keeps and origins sign) → record → validation.
//!
//! Input: one byte choosing the kind, then the content bytes. Properties: decoding never
//! panics; what decodes re-encodes to a canonical form that is a fixed point; validation
//! gives the same verdict on the round-tripped record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passerelle_fuzz::{check_canonical, check_storable, kind_of, prefix};
use passerelle_model::codec::{decode_content, encode_content};
use passerelle_model::Rules;

fuzz_target!(|data: &[u8]| {
    let Some((&k, bytes)) = data.split_first() else {
        return;
    };
    let kind = kind_of(k);
    let Ok(rec) = decode_content(kind, bytes) else {
        return;
    };
    assert_eq!(rec.kind(), kind);
    let rules = Rules::default();
    let verdict = rec.validate(prefix(kind), &rules);
    check_canonical(&rec);
    let again = decode_content(kind, &encode_content(&rec)).expect("canonical bytes decode");
    assert_eq!(
        verdict.is_ok(),
        again.validate(prefix(kind), &rules).is_ok(),
        "validation depends on the encoding"
    );
    if verdict.is_ok() {
        check_storable(&rec, &rules);
    }
});
