//! CSV import (`read_records` with `Format::Csv`), as `passerelle import` reads a file.
//!
//! Input: one byte choosing the kind, then the file. Properties: reading never panics
//! (a bad header is an error, a bad row an item error); every record read survives the
//! wire form the CLI sends it in; a valid record is storable, and one that the CSV form
//! can express comes back unchanged through `write_csv` (what `get -o csv` writes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use passerelle::cli::files::{read_records, write_csv, Format};
use passerelle_fuzz::{
    check_canonical, check_storable, check_wire_round_trip, content_of, kind_of, prefix,
};
use passerelle_model::{Record, Rules};

/// Skill labels are written `uri|label|essential` inside a `;`-separated list, and list
/// items are trimmed on import: labels holding `;` or `|`, or padded with spaces, cannot
/// come back (a limit of the format, reported separately).
fn expressible(rec: &Record) -> bool {
    let skills = match rec {
        Record::Vacancy(v) => &v.skills,
        Record::Shortage(s) => &s.skills,
        Record::Supply(_) => return true,
    };
    skills
        .iter()
        .all(|s| !s.label.contains([';', '|']) && s.label.trim() == s.label)
}

fuzz_target!(|data: &[u8]| {
    let Some((&k, file)) = data.split_first() else {
        return;
    };
    let kind = kind_of(k);
    let input = Box::new(std::io::Cursor::new(file.to_vec()));
    let Ok(lines) = read_records(kind, Format::Csv, input) else {
        return;
    };
    let rules = Rules::default();
    for line in lines {
        let Ok(rec) = line.record else {
            continue;
        };
        assert_eq!(rec.kind(), kind);
        check_canonical(&rec);
        check_wire_round_trip(&rec);
        if rec.validate(prefix(kind), &rules).is_err() {
            continue;
        }
        check_storable(&rec, &rules);
        if !expressible(&rec) {
            continue;
        }
        let mut out = Vec::new();
        write_csv(kind, std::slice::from_ref(&rec), &mut out).expect("valid record writes as CSV");
        let back: Vec<Record> =
            read_records(kind, Format::Csv, Box::new(std::io::Cursor::new(out)))
                .expect("written CSV has a known header")
                .map(|l| l.record.expect("written CSV row reads"))
                .collect();
        assert_eq!(back.len(), 1, "one record written, one read");
        assert_eq!(
            content_of(&back[0]),
            content_of(&rec),
            "CSV round trip changes the record"
        );
    }
});
