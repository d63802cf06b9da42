//! Federation: the `Federation` service partners pull from, and the peer loops that pull from partners.

pub mod peer;
pub mod service;

use passerelle_node::SignedRecord;

use crate::pb::v1 as pb;

/// The federation protocol this node speaks (Hello refuses another).
pub const PROTOCOL_VERSION: u32 = 1;

pub fn signed_out(r: SignedRecord) -> pb::SignedRecord {
    pb::SignedRecord {
        key: r.key,
        revision: r.revision,
        payload: r.payload,
        key_id: r.key_id,
        signature: r.signature,
    }
}

pub fn signed_in(r: pb::SignedRecord) -> SignedRecord {
    SignedRecord {
        key: r.key,
        revision: r.revision,
        payload: r.payload,
        key_id: r.key_id,
        signature: r.signature,
    }
}
