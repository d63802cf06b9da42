//! Signed record versions delivered by a peer → `Node::apply_from_peer` (signature check
//! against the trust file, payload decoding, key and revision binding, content validation).
//!
//! The node trusts two partners with fixed keys: `be.vdab`, whose only signatures are
//! those of a fixed genuine set (the fuzzer edits them, mixes their parts, or makes up
//! fields), and `fr.francetravail`, which signs whatever the fuzzer gives it. Properties:
//! nothing panics; every delivered record is counted once; afterwards the store holds only
//! versions their origin signed, only genuine `be.vdab` versions, and only valid content.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passerelle_fuzz::envelope::{run, Input};

fuzz_target!(|input: Input| {
    run(input);
});
