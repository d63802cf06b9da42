//! Parsing of the generated TSV files and lookups in the sorted tables built from them.

/// Data lines of a generated file: `#` lines carry provenance and column names.
pub(crate) fn records<const N: usize>(
    text: &'static str,
) -> impl Iterator<Item = [&'static str; N]> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let mut fields = line.split('\t');
            let record = std::array::from_fn(|_| fields.next().unwrap_or_else(|| bad(line)));
            if fields.next().is_some() {
                bad(line)
            }
            record
        })
}

// The files are generated and covered by tests, so a malformed line is a build defect.
fn bad(line: &str) -> ! {
    panic!("malformed reference data line: {line:?}")
}

/// Sorts a freshly parsed table so that [`find`] can binary-search it.
pub(crate) fn sorted<T>(mut items: Vec<T>, key: fn(&T) -> &'static str) -> Vec<T> {
    items.sort_unstable_by_key(key);
    items
}

pub(crate) fn find<'a, T>(
    items: &'a [T],
    wanted: &str,
    key: fn(&T) -> &'static str,
) -> Option<&'a T> {
    items
        .binary_search_by(|item| key(item).cmp(wanted))
        .ok()
        .map(|i| &items[i])
}

/// Empty columns mean "not given" in the generated files.
pub(crate) fn optional(field: &'static str) -> Option<&'static str> {
    (!field.is_empty()).then_some(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_skip_comments_and_keep_empty_fields() {
        let rows: Vec<[&str; 3]> = records("# a\tb\tc\nx\t\tz\n\ny\t1\t2\n").collect();
        assert_eq!(rows, vec![["x", "", "z"], ["y", "1", "2"]]);
    }

    #[test]
    #[should_panic(expected = "malformed")]
    fn records_reject_a_missing_column() {
        let _ = records::<3>("x\ty\n").count();
    }

    #[test]
    #[should_panic(expected = "malformed")]
    fn records_reject_an_extra_column() {
        let _ = records::<2>("x\ty\tz\n").count();
    }

    #[test]
    fn find_is_exact() {
        let items = sorted(vec!["b", "a", "c"], |s| *s);
        assert_eq!(find(&items, "b", |s| *s), Some(&"b"));
        assert_eq!(find(&items, "B", |s| *s), None);
        assert_eq!(find(&items, "", |s| *s), None);
    }
}
