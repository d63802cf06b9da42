//! JSON Lines import (`read_records` with `Format::Jsonl`), as `passerelle import` reads a file.
//!
//! Input: one byte choosing the kind, then the file. Properties: reading never panics and
//! yields one item per non-blank line, numbered in order; every record read survives the
//! wire form the CLI sends it in, and JSON export then import; a valid one is storable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passerelle::cli::files::{
    read_records, record_from_json, record_from_str, record_to_json, Format,
};
use passerelle_fuzz::{
    check_canonical, check_storable, check_wire_round_trip, content_of, kind_of, prefix,
};
use passerelle_model::Rules;

fuzz_target!(|data: &[u8]| {
    let Some((&k, file)) = data.split_first() else {
        return;
    };
    let kind = kind_of(k);
    let input = Box::new(std::io::Cursor::new(file.to_vec()));
    let lines = read_records(kind, Format::Jsonl, input).expect("jsonl has no header to refuse");
    let mut last = 0;
    for line in lines {
        assert!(line.line > last, "line numbers increase");
        last = line.line;
        let Ok(rec) = line.record else {
            continue;
        };
        assert_eq!(rec.kind(), kind);
        check_canonical(&rec);
        check_wire_round_trip(&rec);
        let json = record_to_json(&rec);
        let text = json.to_string();
        let back = record_from_json(kind, json).expect("exported JSON imports");
        assert_eq!(
            content_of(&back),
            content_of(&rec),
            "JSON round trip changes the record"
        );
        let back = record_from_str(kind, &text).expect("exported JSON text imports");
        assert_eq!(
            content_of(&back),
            content_of(&rec),
            "JSON text round trip changes the record"
        );
        let rules = Rules::default();
        if rec.validate(prefix(kind), &rules).is_ok() {
            check_storable(&rec, &rules);
        }
    }
});
