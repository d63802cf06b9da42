//! The 436 ISCO-08 unit groups as dense indexes in code order, so that a code prefix is a range.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::OnceLock;

use passerelle_refdata as refdata;

struct Units {
    codes: Vec<&'static str>,
    index: HashMap<&'static str, u16>,
}

fn units() -> &'static Units {
    static UNITS: OnceLock<Units> = OnceLock::new();
    UNITS.get_or_init(|| {
        // refdata keeps the groups sorted by code, so the unit groups come out sorted too
        let codes: Vec<&'static str> = refdata::isco_groups()
            .iter()
            .filter(|g| g.code.len() == 4)
            .map(|g| g.code)
            .collect();
        let index = codes
            .iter()
            .enumerate()
            .map(|(i, c)| (*c, i as u16))
            .collect();
        Units { codes, index }
    })
}

/// How many unit groups there are (436).
pub(crate) fn count() -> usize {
    units().codes.len()
}

/// The dense index of a 4-digit unit group.
pub(crate) fn index(code: &str) -> Option<u16> {
    units().index.get(code).copied()
}

/// The code of the unit group at `index`.
pub(crate) fn code(index: usize) -> &'static str {
    units().codes[index]
}

/// The indexes of the unit groups whose code starts with `prefix` (all of them for "").
pub(crate) fn prefix_range(prefix: &str) -> Range<usize> {
    let codes = &units().codes;
    let lo = codes.partition_point(|c| *c < prefix);
    let hi = lo + codes[lo..].partition_point(|c| c.starts_with(prefix));
    lo..hi
}

/// The English title of a group at any level, empty for an unknown code.
pub(crate) fn label(code: &str) -> String {
    refdata::isco(code)
        .map(|g| g.label.to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_contiguous_ranges() {
        assert_eq!(count(), 436);
        assert_eq!(prefix_range(""), 0..436);
        let r = prefix_range("251");
        let codes: Vec<&str> = r.map(code).collect();
        assert_eq!(codes, ["2511", "2512", "2513", "2514", "2519"]);
        assert_eq!(prefix_range("2512").len(), 1);
        assert!(prefix_range("2599").is_empty());
        assert_eq!(index("0110"), Some(0));
        assert_eq!(index("251"), None);
    }
}
