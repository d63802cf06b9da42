//! Protobuf bytes → `pb::Vacancy` / `pb::Shortage` / `pb::SupplyCell` → domain record →
//! validation, as the Put and Import services do it.
//!
//! Input: one byte choosing the message, then the encoded message. Properties: nothing
//! panics; a record the node would accept survives the store's encoding and the wire form
//! (domain → wire → domain) unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passerelle::convert::{bad_request, record_in, WireRecord};
use passerelle::pb::v1 as pb;
use passerelle_fuzz::{
    agency, check_canonical, check_storable, check_wire_round_trip, kind_of, prefix, NODE,
};
use passerelle_model::Rules;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Some((&k, bytes)) = data.split_first() else {
        return;
    };
    let kind = kind_of(k);
    let wire = match kind {
        passerelle_model::Kind::Vacancy => pb::Vacancy::decode(bytes).map(WireRecord::Vacancy),
        passerelle_model::Kind::Shortage => pb::Shortage::decode(bytes).map(WireRecord::Shortage),
        passerelle_model::Kind::Supply => pb::SupplyCell::decode(bytes).map(WireRecord::Supply),
    };
    let Ok(wire) = wire else {
        return;
    };
    let (mut rec, pre) = record_in(wire, prefix(kind));
    let _ = bad_request(&pre);
    // as Node::check does: the origin defaults to the node's agency, the version is cleared
    if rec.origin().is_empty() {
        rec.set_origin(&agency(NODE));
    }
    rec.set_version(0, 0);
    check_canonical(&rec);
    let rules = Rules::default();
    if let Err(v) = rec.validate(prefix(kind), &rules) {
        let _ = bad_request(&v);
        return;
    }
    if pre.is_empty() {
        check_storable(&rec, &rules);
        check_wire_round_trip(&rec);
    }
});
