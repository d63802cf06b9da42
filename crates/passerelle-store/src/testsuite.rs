//! The behaviour every [`Engine`] must have, as one test suite run against each engine.

use crate::engine::{Engine, Scan, WriteBatch};

fn put_all<E: Engine + ?Sized>(engine: &E, pairs: &[(&[u8], &[u8])]) {
    let mut b = WriteBatch::new();
    for (k, v) in pairs {
        b.put(k.to_vec(), v.to_vec());
    }
    engine.apply(b).expect("apply");
}

fn keys(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<Vec<u8>> {
    entries.iter().map(|(k, _)| k.clone()).collect()
}

fn kv(k: &[u8], v: &[u8]) -> (Vec<u8>, Vec<u8>) {
    (k.to_vec(), v.to_vec())
}

/// Runs the whole suite. `engine` must be empty; it is left modified.
pub fn engine_suite<E: Engine + ?Sized>(engine: &E) {
    // empty engine
    assert_eq!(engine.get(b"missing").unwrap(), None);
    assert!(engine.scan(b"", b"", 10).unwrap().is_empty());
    assert_eq!(engine.last_with_prefix(b"").unwrap(), None);
    assert_eq!(engine.count_prefix(b"").unwrap(), 0);
    engine.apply(WriteBatch::new()).unwrap();

    // put, get, overwrite
    put_all(engine, &[(b"a1", b"x"), (b"a2", b"y"), (b"b1", b"z")]);
    assert_eq!(engine.get(b"a1").unwrap(), Some(b"x".to_vec()));
    put_all(engine, &[(b"a1", b"x2")]);
    assert_eq!(engine.get(b"a1").unwrap(), Some(b"x2".to_vec()));
    assert_eq!(engine.get(b"a").unwrap(), None);

    // prefix scans are bounded by the prefix, ascending, from an inclusive start
    assert_eq!(
        engine.scan(b"a", b"", 10).unwrap(),
        vec![kv(b"a1", b"x2"), kv(b"a2", b"y")]
    );
    assert_eq!(keys(&engine.scan(b"a", b"a2", 10).unwrap()), vec![b"a2"]);
    assert_eq!(keys(&engine.scan(b"a", b"a1\0", 10).unwrap()), vec![b"a2"]);
    assert_eq!(keys(&engine.scan(b"a", b"a1", 1).unwrap()), vec![b"a1"]);
    assert!(engine.scan(b"a", b"a3", 10).unwrap().is_empty());
    assert!(engine.scan(b"a", b"zzz", 10).unwrap().is_empty());
    assert!(engine.scan(b"c", b"", 10).unwrap().is_empty());
    assert!(engine.scan(b"a", b"", 0).unwrap().is_empty());
    assert_eq!(engine.scan(b"", b"", 10).unwrap().len(), 3);
    assert_eq!(
        keys(&engine.scan(b"", b"a2", 10).unwrap()),
        vec![b"a2", b"b1"]
    );
    assert_eq!(engine.count_prefix(b"a").unwrap(), 2);
    assert_eq!(engine.count_prefix(b"b").unwrap(), 1);
    assert_eq!(engine.count_prefix(b"").unwrap(), 3);

    // last entry with a prefix, with keys on both sides of the prefix range
    assert_eq!(
        engine.last_with_prefix(b"a").unwrap(),
        Some(kv(b"a2", b"y"))
    );
    assert_eq!(engine.last_with_prefix(b"").unwrap(), Some(kv(b"b1", b"z")));
    assert_eq!(engine.last_with_prefix(b"a3").unwrap(), None);
    assert_eq!(engine.last_with_prefix(b"0").unwrap(), None);

    // a batch applies puts and deletes together; the later op on a key wins
    let mut b = WriteBatch::new();
    b.delete(b"a2".to_vec());
    b.delete(b"never-there".to_vec());
    b.put(b"c1".to_vec(), b"1".to_vec());
    b.put(b"c2".to_vec(), b"first".to_vec());
    b.delete(b"c2".to_vec());
    b.delete(b"c3".to_vec());
    b.put(b"c3".to_vec(), b"last".to_vec());
    b.put(b"c4".to_vec(), b"first".to_vec());
    b.put(b"c4".to_vec(), b"last".to_vec());
    assert_eq!(b.len(), 9);
    engine.apply(b).unwrap();
    assert_eq!(engine.get(b"a2").unwrap(), None);
    assert_eq!(engine.get(b"c1").unwrap(), Some(b"1".to_vec()));
    assert_eq!(engine.get(b"c2").unwrap(), None);
    assert_eq!(engine.get(b"c3").unwrap(), Some(b"last".to_vec()));
    assert_eq!(engine.get(b"c4").unwrap(), Some(b"last".to_vec()));
    assert_eq!(
        keys(&engine.scan(b"c", b"", 10).unwrap()),
        vec![b"c1", b"c3", b"c4"]
    );

    // keys are compared as unsigned bytes, including 0x00 and 0xff edges
    put_all(
        engine,
        &[
            (&[0xff], b"1"),
            (&[0xff, 0x00], b"2"),
            (&[0xff, 0xff, 0x01], b"3"),
            (&[0xfe, 0xff], b"4"),
        ],
    );
    assert_eq!(
        keys(&engine.scan(&[0xff], &[], 10).unwrap()),
        vec![vec![0xff], vec![0xff, 0x00], vec![0xff, 0xff, 0x01]]
    );
    assert_eq!(
        engine.last_with_prefix(&[0xff]).unwrap(),
        Some(kv(&[0xff, 0xff, 0x01], b"3"))
    );
    assert_eq!(
        engine.last_with_prefix(&[0xfe]).unwrap(),
        Some(kv(&[0xfe, 0xff], b"4"))
    );
    assert_eq!(engine.count_prefix(&[0xff, 0xff]).unwrap(), 1);

    // the lazy iterator crosses chunk boundaries without loss or repetition
    let mut b = WriteBatch::new();
    for i in 0u32..25 {
        b.put(
            [b"i".as_slice(), &i.to_be_bytes()].concat(),
            i.to_le_bytes().to_vec(),
        );
    }
    engine.apply(b).unwrap();
    for chunk in [1, 3, 5, 24, 25, 26, 1000] {
        let got: Vec<u32> = Scan::new(engine, b"i", b"", chunk)
            .map(|item| u32::from_le_bytes(item.unwrap().1.try_into().unwrap()))
            .collect();
        assert_eq!(got, (0..25).collect::<Vec<_>>(), "chunk {chunk}");
    }
    let ten = [b"i".as_slice(), &10u32.to_be_bytes()].concat();
    let from_ten: Vec<Vec<u8>> = Scan::new(engine, b"i", &ten, 4)
        .map(|item| item.unwrap().0)
        .collect();
    assert_eq!(from_ten.len(), 15);
    assert_eq!(from_ten[0], ten);
    assert_eq!(engine.count_prefix(b"i").unwrap(), 25);

    // larger values round-trip byte for byte
    let big: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    put_all(engine, &[(b"big", &big)]);
    assert_eq!(engine.get(b"big").unwrap(), Some(big));

    engine.flush().unwrap();
    engine.size_on_disk().unwrap();
}
