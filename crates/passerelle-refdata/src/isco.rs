//! ISCO-08, the ILO's occupation classification: the 619 groups and their English titles.

use std::sync::OnceLock;

use crate::table;

/// One ISCO-08 group; its level is the number of digits in `code` (1 major … 4 unit group).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IscoGroup {
    pub code: &'static str,
    pub label: &'static str,
}

fn groups() -> &'static [IscoGroup] {
    static GROUPS: OnceLock<Vec<IscoGroup>> = OnceLock::new();
    GROUPS.get_or_init(|| {
        let parsed = table::records(include_str!("../data/isco08.tsv"))
            .map(|[code, label]| IscoGroup { code, label })
            .collect();
        table::sorted(parsed, |g| g.code)
    })
}

/// The group with this code, at any level ("2", "25", "251", "2512").
pub fn isco(code: &str) -> Option<&'static IscoGroup> {
    table::find(groups(), code, |g| g.code)
}

/// All groups, sorted by code, so each group comes right before its subgroups.
pub fn isco_groups() -> &'static [IscoGroup] {
    groups()
}

/// Whether `code` is one of the 436 four-digit unit groups, the level a vacancy must use.
pub fn is_isco_unit_group(code: &str) -> bool {
    code.len() == 4 && isco(code).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_the_619_groups_of_isco_08() {
        let mut by_level = [0usize; 5];
        for g in isco_groups() {
            by_level[g.code.len()] += 1;
        }
        assert_eq!(by_level, [0, 10, 43, 130, 436]);
        assert_eq!(isco_groups().len(), 619);
    }

    #[test]
    fn codes_are_digits_sorted_unique_and_nested() {
        let groups = isco_groups();
        assert!(groups.windows(2).all(|w| w[0].code < w[1].code));
        for g in groups {
            assert!(g.code.bytes().all(|b| b.is_ascii_digit()), "{g:?}");
            assert!(!g.label.is_empty() && g.label.trim() == g.label, "{g:?}");
            if g.code.len() > 1 {
                let parent = &g.code[..g.code.len() - 1];
                assert!(isco(parent).is_some(), "{} has no parent group", g.code);
            }
        }
    }

    #[test]
    fn known_titles() {
        assert_eq!(isco("2512").map(|g| g.label), Some("Software developers"));
        assert_eq!(isco("0").map(|g| g.label), Some("Armed forces occupations"));
        assert_eq!(
            isco("25").map(|g| g.label),
            Some("Information and communications technology professionals")
        );
        assert_eq!(
            isco("9629").map(|g| g.label),
            Some("Elementary workers not elsewhere classified")
        );
    }

    #[test]
    fn unit_groups_are_exactly_the_four_digit_codes() {
        assert!(is_isco_unit_group("2512"));
        assert!(is_isco_unit_group("0110"));
        assert!(!is_isco_unit_group("251"));
        assert!(!is_isco_unit_group("2"));
        assert!(!is_isco_unit_group("2599"));
        assert!(!is_isco_unit_group("9999"));
        assert!(!is_isco_unit_group("25120"));
        assert!(!is_isco_unit_group(""));
        assert!(!is_isco_unit_group("x512"));
        assert_eq!(
            isco_groups()
                .iter()
                .filter(|g| is_isco_unit_group(g.code))
                .count(),
            436
        );
    }

    #[test]
    fn lookups_are_exact() {
        assert!(isco(" 2512").is_none());
        assert!(isco("02512").is_none());
        assert!(isco("").is_none());
    }
}
