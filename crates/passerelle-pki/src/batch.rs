//! Checking many Ed25519 signatures at once.
//!
//! A node receiving an initial sync checks one signature per record; one by one (ring) that is
//! about 55 µs each on the reference machine, half of the receiver's work. A batch check
//! (ed25519-dalek's `verify_batch`: one multiscalar multiplication for the whole batch, with
//! coefficients derived from the batch itself, so no random source) costs about half as much
//! per signature. When a batch fails, each of its signatures is checked alone with
//! [`verify_signature`], so the answer names exactly the bad ones.
//!
//! The batch equation is cofactored: a signature its own key holder built with a small-order
//! component can pass in a batch and fail alone. Nobody but the holder of the key can make
//! such a signature, so it proves the same thing (SECURITY.md, record signatures).

use ed25519_dalek::{Signature, VerifyingKey};

use crate::issue::verify_signature;

/// Below this many well-formed signatures a batch saves nothing.
const BATCH_FROM: usize = 4;

/// One signature to check.
#[derive(Debug, Clone, Copy)]
pub struct SignatureCheck<'a> {
    pub public_key: &'a [u8],
    pub msg: &'a [u8],
    pub sig: &'a [u8],
}

/// For each item in order, whether its signature is a valid Ed25519 signature of its message
/// by its key. Run on one thread: callers split a large set over cores themselves.
pub fn verify_signatures(items: &[SignatureCheck<'_>]) -> Vec<bool> {
    let mut ok = vec![false; items.len()];
    // decompressing a key costs a few µs: the records of a batch share a handful of keys
    let mut keys: Vec<([u8; 32], Option<VerifyingKey>)> = Vec::new();
    let mut batch = Vec::with_capacity(items.len());
    let mut vks = Vec::with_capacity(items.len());
    let mut sigs = Vec::with_capacity(items.len());
    let mut msgs: Vec<&[u8]> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let (Ok(pk), Ok(sig)) = (
            <[u8; 32]>::try_from(item.public_key),
            <[u8; 64]>::try_from(item.sig),
        ) else {
            continue; // malformed: false
        };
        let vk = match keys.iter().find(|(k, _)| *k == pk) {
            Some((_, vk)) => *vk,
            None => {
                let vk = VerifyingKey::from_bytes(&pk).ok();
                keys.push((pk, vk));
                vk
            }
        };
        let Some(vk) = vk else { continue };
        batch.push(i);
        vks.push(vk);
        sigs.push(Signature::from_bytes(&sig));
        msgs.push(item.msg);
    }
    if batch.len() >= BATCH_FROM && ed25519_dalek::verify_batch(&msgs, &sigs, &vks).is_ok() {
        for i in batch {
            ok[i] = true;
        }
        return ok;
    }
    for i in batch {
        let it = &items[i];
        ok[i] = verify_signature(it.public_key, it.msg, it.sig);
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issue::SigningKey;

    fn signed(key: &SigningKey, n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        (0..n)
            .map(|i| {
                let msg = format!("be.vdab/vacancy/V-{i}@1").into_bytes();
                let sig = key.sign(&msg).to_vec();
                (msg, sig)
            })
            .collect()
    }

    fn checks<'a>(pk: &'a [u8], items: &'a [(Vec<u8>, Vec<u8>)]) -> Vec<SignatureCheck<'a>> {
        items
            .iter()
            .map(|(m, s)| SignatureCheck {
                public_key: pk,
                msg: m,
                sig: s,
            })
            .collect()
    }

    #[test]
    fn a_good_batch_passes_and_each_bad_signature_is_named() {
        let key = SigningKey::from_pkcs8(&SigningKey::generate().unwrap()).unwrap();
        let other = SigningKey::from_pkcs8(&SigningKey::generate().unwrap()).unwrap();
        let pk = key.public_key();
        for n in [0usize, 1, 3, 4, 50] {
            let items = signed(&key, n);
            assert!(verify_signatures(&checks(&pk, &items)).iter().all(|b| *b));
        }
        let mut items = signed(&key, 40);
        items[3].0.push(b'!'); // altered message
        items[17].1[5] ^= 1; // altered signature
        items[30].1 = other.sign(&items[30].0).to_vec(); // signed by someone else
        items[31].1.pop(); // truncated signature
        let verdicts = verify_signatures(&checks(&pk, &items));
        let bad: Vec<usize> = (0..40).filter(|i| !verdicts[*i]).collect();
        assert_eq!(bad, vec![3, 17, 30, 31]);
    }

    #[test]
    fn several_keys_in_one_batch_and_malformed_keys() {
        let a = SigningKey::from_pkcs8(&SigningKey::generate().unwrap()).unwrap();
        let b = SigningKey::from_pkcs8(&SigningKey::generate().unwrap()).unwrap();
        let (pa, pb) = (a.public_key(), b.public_key());
        let (ia, ib) = (signed(&a, 10), signed(&b, 10));
        let mut all = checks(&pa, &ia);
        all.extend(checks(&pb, &ib));
        assert!(verify_signatures(&all).iter().all(|v| *v));
        // b's records claimed under a's key all fail, a's stay good
        let mut mixed = checks(&pa, &ia);
        mixed.extend(checks(&pa, &ib));
        let v = verify_signatures(&mixed);
        assert!(v[..10].iter().all(|x| *x) && v[10..].iter().all(|x| !*x));
        // a key of the wrong length, and 32 bytes that are not a curve point
        let short = &pa[..31];
        let not_a_point = [0xffu8; 32];
        let mut odd = checks(short, &ia[..2]);
        odd.extend(checks(&not_a_point, &ia[2..4]));
        odd.extend(checks(&pa, &ia[4..10]));
        let v = verify_signatures(&odd);
        assert_eq!(v, [vec![false; 4], vec![true; 6]].concat());
    }

    #[test]
    fn agrees_with_the_single_check_on_random_corruptions() {
        let key = SigningKey::from_pkcs8(&SigningKey::generate().unwrap()).unwrap();
        let pk = key.public_key();
        let base = signed(&key, 64);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _round in 0..20 {
            let mut items = base.clone();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x % 64) as usize;
                let j = ((x >> 8) % 64) as usize;
                items[i].1[j] ^= 1 << ((x >> 16) % 8);
            }
            let got = verify_signatures(&checks(&pk, &items));
            let want: Vec<bool> = items
                .iter()
                .map(|(m, s)| verify_signature(&pk, m, s))
                .collect();
            assert_eq!(got, want);
        }
    }
}
