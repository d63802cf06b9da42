//! ESCO, the EU's multilingual skills and occupations classification: URIs and English labels.

use std::sync::OnceLock;

use crate::table;

/// An ESCO skill or knowledge concept.
///
/// The `uri` is exact. The `label` is the English preferred label, rebuilt from the source
/// text for about 9 % of skills (see `SOURCES.md`), so show it to people but never match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EscoSkill {
    pub uri: &'static str,
    pub label: &'static str,
}

/// An ESCO occupation.
///
/// `isco` is the ISCO-08 unit group (4 digits) when the reference data gives one. The embedded
/// source has none, so it is `None` for now and means "no constraint" to callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EscoOccupation {
    pub uri: &'static str,
    pub label: &'static str,
    pub isco: Option<&'static str>,
}

fn skills() -> &'static [EscoSkill] {
    static SKILLS: OnceLock<Vec<EscoSkill>> = OnceLock::new();
    SKILLS.get_or_init(|| {
        let parsed = table::records(include_str!("../data/esco_skills.tsv"))
            .map(|[uri, label]| EscoSkill { uri, label })
            .collect();
        table::sorted(parsed, |s| s.uri)
    })
}

fn occupations() -> &'static [EscoOccupation] {
    static OCCUPATIONS: OnceLock<Vec<EscoOccupation>> = OnceLock::new();
    OCCUPATIONS.get_or_init(|| {
        let parsed = table::records(include_str!("../data/esco_occupations.tsv"))
            .map(|[uri, isco, label]| EscoOccupation {
                uri,
                label,
                isco: table::optional(isco),
            })
            .collect();
        table::sorted(parsed, |o| o.uri)
    })
}

/// The skill with this full URI, e.g. `http://data.europa.eu/esco/skill/<uuid>`.
pub fn esco_skill(uri: &str) -> Option<&'static EscoSkill> {
    table::find(skills(), uri, |s| s.uri)
}

/// All skills, sorted by URI.
pub fn esco_skills() -> &'static [EscoSkill] {
    skills()
}

/// The occupation with this full URI, e.g. `http://data.europa.eu/esco/occupation/<uuid>`.
pub fn esco_occupation(uri: &str) -> Option<&'static EscoOccupation> {
    table::find(occupations(), uri, |o| o.uri)
}

/// All occupations, sorted by URI.
pub fn esco_occupations() -> &'static [EscoOccupation] {
    occupations()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::is_isco_unit_group;

    const SKILL: &str = "http://data.europa.eu/esco/skill/";
    const OCCUPATION: &str = "http://data.europa.eu/esco/occupation/";

    fn is_uuid(s: &str) -> bool {
        s.len() == 36
            && s.char_indices().all(|(i, c)| {
                if [8, 13, 18, 23].contains(&i) {
                    c == '-'
                } else {
                    c.is_ascii_hexdigit() && !c.is_ascii_uppercase()
                }
            })
    }

    #[test]
    fn counts() {
        assert_eq!(esco_skills().len(), 13_939);
        assert_eq!(esco_occupations().len(), 3_039);
    }

    #[test]
    fn skills_are_sorted_unique_uuid_uris_with_labels() {
        let all = esco_skills();
        assert!(all.windows(2).all(|w| w[0].uri < w[1].uri));
        for s in all {
            let uuid = s.uri.strip_prefix(SKILL).unwrap_or_else(|| panic!("{s:?}"));
            assert!(is_uuid(uuid), "{s:?}");
            assert!(!s.label.is_empty() && s.label.trim() == s.label, "{s:?}");
        }
    }

    #[test]
    fn occupations_are_sorted_unique_uuid_uris_with_labels() {
        let all = esco_occupations();
        assert!(all.windows(2).all(|w| w[0].uri < w[1].uri));
        for o in all {
            let uuid = o
                .uri
                .strip_prefix(OCCUPATION)
                .unwrap_or_else(|| panic!("{o:?}"));
            assert!(is_uuid(uuid), "{o:?}");
            assert!(!o.label.is_empty() && o.label.trim() == o.label, "{o:?}");
        }
    }

    #[test]
    fn every_occupation_isco_code_is_a_unit_group() {
        for o in esco_occupations() {
            if let Some(code) = o.isco {
                assert!(is_isco_unit_group(code), "{o:?}");
            }
        }
    }

    #[test]
    fn known_skills() {
        let java =
            esco_skill("http://data.europa.eu/esco/skill/19a8293b-8e95-4de3-983f-77484079c389");
        assert_eq!(java.map(|s| s.label), Some("Java (computer programming)"));
        let staff =
            esco_skill("http://data.europa.eu/esco/skill/0005c151-5b5a-4a66-8aac-60e734beb1ab");
        assert_eq!(staff.map(|s| s.label), Some("manage musical staff"));
    }

    #[test]
    fn known_occupations() {
        let dev = esco_occupation(
            "http://data.europa.eu/esco/occupation/f2b15a0e-e65a-438a-affb-29b9d50b77d1",
        );
        assert_eq!(dev.map(|o| o.label), Some("software developer"));
        let director = esco_occupation(
            "http://data.europa.eu/esco/occupation/00030d09-2b3a-4efd-87cc-c4ea39d27c34",
        );
        assert_eq!(director.map(|o| o.label), Some("technical director"));
    }

    #[test]
    fn lookups_are_exact() {
        let java = "http://data.europa.eu/esco/skill/19a8293b-8e95-4de3-983f-77484079c389";
        assert!(esco_skill(&java.to_uppercase()).is_none());
        assert!(esco_skill(&format!("{java}/")).is_none());
        assert!(esco_skill("19a8293b-8e95-4de3-983f-77484079c389").is_none());
        // a skill URI is not an occupation and the other way round
        assert!(esco_occupation(java).is_none());
        assert!(esco_skill(
            "http://data.europa.eu/esco/occupation/f2b15a0e-e65a-438a-affb-29b9d50b77d1"
        )
        .is_none());
        assert!(esco_skill("").is_none());
    }
}
