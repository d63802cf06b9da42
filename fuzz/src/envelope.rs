//! Input of the `envelope_verify` target: a batch of signed versions a peer delivers,
//! built from genuine versions, made-up fields and versions a trusted origin signs.

use arbitrary::Arbitrary;
use passerelle_model::codec::encode_content;
use passerelle_model::{Kind, RecordKey};
use passerelle_node::{ApplyReport, SignedRecord};

use crate::{
    agency, check_stored, genuine, hostile_key, kind_of, samples, sign, with_node, HOSTILE, SEALED,
};

#[derive(Arbitrary, Debug)]
pub enum Edit {
    Key(String),
    Revision(u64),
    KeyId(String),
    PayloadByte { at: u16, xor: u8 },
    SignatureByte { at: u8, xor: u8 },
    PayloadTruncate(u16),
    PayloadAppend(Vec<u8>),
    PayloadFrom(u8),
    SignatureFrom(u8),
    KeyFrom(u8),
}

#[derive(Arbitrary, Debug)]
pub enum Content {
    /// A sample record; `origin` and `id` replace its own when given.
    Sample {
        pick: u8,
        origin: Option<String>,
        id: Option<String>,
    },
    Bytes(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
pub enum Delivery {
    /// A genuine `be.vdab` version, edited.
    Genuine { pick: u8, edits: Vec<Edit> },
    /// Every field made up.
    Raw {
        key: String,
        revision: u64,
        payload: Vec<u8>,
        key_id: String,
        signature: Vec<u8>,
    },
    /// Signed by `fr.francetravail` over a key, revision and content of the fuzzer's choice;
    /// `claimed` is the key and revision written beside the payload when they differ.
    Hostile {
        kind: u8,
        id: String,
        origin: Option<String>,
        revision: u64,
        at: i64,
        content: Content,
        claimed: Option<(String, u64)>,
    },
    /// Any bytes as the payload, signed by `fr.francetravail`.
    HostilePayload {
        key: String,
        revision: u64,
        payload: Vec<u8>,
    },
}

#[derive(Arbitrary, Debug)]
pub struct Input {
    pub deliveries: Vec<Delivery>,
    pub refuse_hostile: bool,
    pub from_hostile: bool,
    pub cursor: u64,
}

fn pick<T>(list: &[T], i: u8) -> &T {
    &list[usize::from(i) % list.len()]
}

fn genuine_edited(p: u8, edits: Vec<Edit>) -> SignedRecord {
    let all = genuine();
    let mut r = pick(all, p).clone();
    for e in edits {
        match e {
            Edit::Key(k) => r.key = k,
            Edit::Revision(n) => r.revision = n,
            Edit::KeyId(k) => r.key_id = k,
            Edit::PayloadByte { at, xor } => {
                if !r.payload.is_empty() {
                    let i = usize::from(at) % r.payload.len();
                    r.payload[i] ^= xor;
                }
            }
            Edit::SignatureByte { at, xor } => {
                if !r.signature.is_empty() {
                    let i = usize::from(at) % r.signature.len();
                    r.signature[i] ^= xor;
                }
            }
            Edit::PayloadTruncate(n) => r.payload.truncate(usize::from(n)),
            Edit::PayloadAppend(b) => r.payload.extend_from_slice(&b),
            Edit::PayloadFrom(i) => r.payload = pick(all, i).payload.clone(),
            Edit::SignatureFrom(i) => r.signature = pick(all, i).signature.clone(),
            Edit::KeyFrom(i) => {
                let g = pick(all, i);
                r.key = g.key.clone();
                r.revision = g.revision;
            }
        }
    }
    r
}

fn hostile(
    kind: Kind,
    id: String,
    origin: Option<String>,
    revision: u64,
    at: i64,
    content: Content,
    claimed: Option<(String, u64)>,
) -> Option<SignedRecord> {
    let origin = match origin {
        Some(o) => passerelle_model::AgencyId::parse(&o).ok()?,
        None => agency(HOSTILE),
    };
    let rk = RecordKey::new(origin, kind, id).ok()?;
    let bytes = match content {
        Content::Bytes(b) => b,
        Content::Sample {
            pick: p,
            origin,
            id,
        } => {
            let mut rec = pick(samples(), p).clone();
            let o = origin.unwrap_or_else(|| rk.origin.to_string());
            let i = id.unwrap_or_else(|| rk.id.clone());
            match &mut rec {
                passerelle_model::Record::Vacancy(v) => (v.origin, v.id) = (o, i),
                passerelle_model::Record::Shortage(s) => (s.origin, s.id) = (o, i),
                passerelle_model::Record::Supply(c) => (c.origin, c.id) = (o, i),
            }
            encode_content(&rec)
        }
    };
    let mut r = sign(hostile_key(), &rk, revision, at, &bytes);
    if let Some((key, rev)) = claimed {
        r.key = key;
        r.revision = rev;
    }
    Some(r)
}

/// Delivers the input's batch to the shared node, checks what it stored, and returns
/// what the node reported.
pub fn run(input: Input) -> ApplyReport {
    let records: Vec<SignedRecord> = input
        .deliveries
        .into_iter()
        .take(16)
        .filter_map(|d| match d {
            Delivery::Genuine { pick, edits } => Some(genuine_edited(pick, edits)),
            Delivery::Raw {
                key,
                revision,
                payload,
                key_id,
                signature,
            } => Some(SignedRecord {
                key,
                revision,
                payload,
                key_id,
                signature,
            }),
            Delivery::Hostile {
                kind,
                id,
                origin,
                revision,
                at,
                content,
                claimed,
            } => hostile(kind_of(kind), id, origin, revision, at, content, claimed),
            Delivery::HostilePayload {
                key,
                revision,
                payload,
            } => Some(SignedRecord {
                key,
                revision,
                signature: hostile_key().sign(&payload).to_vec(),
                key_id: hostile_key().key_id(),
                payload,
            }),
        })
        .collect();
    let refused = if input.refuse_hostile {
        vec![agency(HOSTILE)]
    } else {
        Vec::new()
    };
    let peer = agency(if input.from_hostile { HOSTILE } else { SEALED });
    let n = records.len() as u64;
    with_node(|node| {
        let since = node.store().head_seq();
        let report = node
            .apply_from_peer(&peer, &refused, records, input.cursor)
            .expect("memory store does not fail");
        assert_eq!(
            report.applied + report.ignored + report.own + report.refused_total(),
            n,
            "every delivered record is counted once"
        );
        assert_eq!(
            node.store().cursor(peer.as_str()).expect("cursor reads"),
            Some(input.cursor),
            "the peer's cursor moves with the batch"
        );
        check_stored(node, since, &refused);
        report
    })
}
