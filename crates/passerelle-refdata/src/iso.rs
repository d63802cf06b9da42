//! ISO 3166 countries and subdivisions, ISO 4217 currencies and ISO 639 languages, with the
//! NUTS country prefixes that go with the countries.

use std::sync::OnceLock;

use crate::table;

/// An ISO 3166-1 country, keyed by its upper-case alpha-2 code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Country {
    pub alpha2: &'static str,
    pub name: &'static str,
}

/// An ISO 3166-2 subdivision such as `BE-VAN` (Antwerpen) within `BE-VLG` (Vlaams Gewest).
///
/// `country` is the alpha-2 prefix of `code`. `parent` is the full code of the enclosing
/// subdivision, or `None` at the top level. `name` is the local name given by ISO 3166-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subdivision {
    pub code: &'static str,
    pub country: &'static str,
    pub parent: Option<&'static str>,
    pub name: &'static str,
}

/// An ISO 4217 currency, keyed by its alpha-3 code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    pub code: &'static str,
    pub name: &'static str,
}

/// A language, keyed by its lower-case ISO 639-1 (2 letters) or ISO 639-3 (3 letters) code.
/// A language with both codes has one entry under each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Language {
    pub code: &'static str,
    pub name: &'static str,
}

fn countries() -> &'static [Country] {
    static COUNTRIES: OnceLock<Vec<Country>> = OnceLock::new();
    COUNTRIES.get_or_init(|| {
        let parsed = table::records(include_str!("../data/countries.tsv"))
            .map(|[alpha2, name]| Country { alpha2, name })
            .collect();
        table::sorted(parsed, |c| c.alpha2)
    })
}

fn subdivisions() -> &'static [Subdivision] {
    static SUBDIVISIONS: OnceLock<Vec<Subdivision>> = OnceLock::new();
    SUBDIVISIONS.get_or_init(|| {
        let parsed = table::records(include_str!("../data/subdivisions.tsv"))
            .map(|[code, parent, name]| Subdivision {
                code,
                country: code.split_once('-').map_or(code, |(country, _)| country),
                parent: table::optional(parent),
                name,
            })
            .collect();
        table::sorted(parsed, |s| s.code)
    })
}

fn currencies() -> &'static [Currency] {
    static CURRENCIES: OnceLock<Vec<Currency>> = OnceLock::new();
    CURRENCIES.get_or_init(|| {
        let parsed = table::records(include_str!("../data/currencies.tsv"))
            .map(|[code, name]| Currency { code, name })
            .collect();
        table::sorted(parsed, |c| c.code)
    })
}

fn languages() -> &'static [Language] {
    static LANGUAGES: OnceLock<Vec<Language>> = OnceLock::new();
    LANGUAGES.get_or_init(|| {
        let parsed = table::records(include_str!("../data/languages.tsv"))
            .map(|[code, name]| Language { code, name })
            .collect();
        table::sorted(parsed, |l| l.code)
    })
}

/// The country with this upper-case alpha-2 code, e.g. `"BE"`.
pub fn country(alpha2: &str) -> Option<&'static Country> {
    table::find(countries(), alpha2, |c| c.alpha2)
}

/// The subdivision with this ISO 3166-2 code, e.g. `"BE-VLG"` or `"BE-VAN"`.
pub fn subdivision(code: &str) -> Option<&'static Subdivision> {
    table::find(subdivisions(), code, |s| s.code)
}

/// Whether subdivision `code` is `ancestor` or lies within it, through any number of parents.
/// It is false when `code` is not a known subdivision.
pub fn subdivision_within(code: &str, ancestor: &str) -> bool {
    let mut current = subdivision(code);
    // iso-codes nests two levels deep; the bound only guards against a cycle in a bad data file
    for _ in 0..8 {
        match current {
            Some(s) if s.code == ancestor => return true,
            Some(s) => current = s.parent.and_then(subdivision),
            None => return false,
        }
    }
    false
}

/// The NUTS code prefix of a country. Eurostat uses the alpha-2 code, except `EL` for Greece
/// and `UK` for the United Kingdom. `None` for codes that are not ISO 3166-1 countries.
pub fn nuts_prefix(alpha2: &str) -> Option<&'static str> {
    match country(alpha2)?.alpha2 {
        "GR" => Some("EL"),
        "GB" => Some("UK"),
        other => Some(other),
    }
}

/// The currency with this ISO 4217 alpha-3 code, e.g. `"EUR"`.
pub fn currency(code: &str) -> Option<&'static Currency> {
    table::find(currencies(), code, |c| c.code)
}

/// The language with this lower-case ISO 639-1 or ISO 639-3 code, e.g. `"nl"` or `"kbp"`.
pub fn language(code: &str) -> Option<&'static Language> {
    table::find(languages(), code, |l| l.code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countries() {
        assert_eq!(super::countries().len(), 249);
        assert_eq!(country("TG").map(|c| c.name), Some("Togo"));
        assert_eq!(country("BE").map(|c| c.name), Some("Belgium"));
        assert!(country("be").is_none());
        assert!(country("XX").is_none());
        assert!(country("BEL").is_none());
        assert!(country("").is_none());
        for c in super::countries() {
            assert!(
                c.alpha2.len() == 2 && c.alpha2.bytes().all(|b| b.is_ascii_uppercase()),
                "{c:?}"
            );
        }
    }

    #[test]
    fn subdivisions_nest_within_their_country() {
        let all = subdivisions();
        assert!(all.len() > 5000);
        assert!(all.windows(2).all(|w| w[0].code < w[1].code));
        for s in all {
            assert!(country(s.country).is_some(), "{s:?}");
            assert!(s.code.starts_with(&format!("{}-", s.country)), "{s:?}");
            if let Some(parent) = s.parent {
                let p = subdivision(parent).unwrap_or_else(|| panic!("unknown parent: {s:?}"));
                assert_eq!(p.country, s.country, "{s:?}");
                assert!(subdivision_within(s.code, parent));
            }
        }
    }

    #[test]
    fn flemish_and_togolese_subdivisions() {
        let antwerp = subdivision("BE-VAN").expect("BE-VAN");
        assert_eq!(antwerp.country, "BE");
        assert_eq!(antwerp.parent, Some("BE-VLG"));
        assert_eq!(antwerp.name, "Antwerpen");
        assert_eq!(subdivision("BE-VLG").map(|s| s.parent), Some(None));
        assert_eq!(subdivision("TG-M").map(|s| s.country), Some("TG"));
        assert!(subdivision("be-van").is_none());
        assert!(subdivision("VAN").is_none());
    }

    #[test]
    fn within_follows_parents_transitively() {
        assert!(subdivision_within("BE-VAN", "BE-VLG"));
        assert!(subdivision_within("BE-VLG", "BE-VLG"));
        assert!(!subdivision_within("BE-VLG", "BE-VAN"));
        assert!(!subdivision_within("BE-VAN", "BE-WAL"));
        assert!(!subdivision_within("BE-VAN", "BE"));
        assert!(!subdivision_within("XX-YY", "XX-YY"));
        // the within check walks parents rather than comparing code prefixes
        assert!(subdivision_within("FR-69", "FR-ARA"));
        assert!(!subdivision_within("FR-ARA", "FR-69"));
    }

    #[test]
    fn nuts_prefixes() {
        assert_eq!(nuts_prefix("GR"), Some("EL"));
        assert_eq!(nuts_prefix("GB"), Some("UK"));
        assert_eq!(nuts_prefix("BE"), Some("BE"));
        assert_eq!(nuts_prefix("TG"), Some("TG"));
        assert_eq!(nuts_prefix("XX"), None);
        assert_eq!(nuts_prefix("EL"), None);
        assert_eq!(nuts_prefix("be"), None);
    }

    #[test]
    fn currencies() {
        assert_eq!(currency("EUR").map(|c| c.name), Some("Euro"));
        assert_eq!(currency("XOF").map(|c| c.name), Some("CFA Franc BCEAO"));
        assert!(currency("eur").is_none());
        assert!(currency("EU").is_none());
        for c in super::currencies() {
            assert!(
                c.code.len() == 3 && c.code.bytes().all(|b| b.is_ascii_uppercase()),
                "{c:?}"
            );
        }
    }

    #[test]
    fn languages() {
        assert_eq!(language("kbp").map(|l| l.name), Some("Kabiyè"));
        assert_eq!(language("nl").map(|l| l.name), Some("Dutch"));
        assert_eq!(language("nld").map(|l| l.name), Some("Dutch"));
        assert_eq!(language("fr").map(|l| l.name), Some("French"));
        assert_eq!(language("ee").map(|l| l.name), Some("Ewe"));
        assert!(language("NL").is_none());
        assert!(
            language("fre").is_none(),
            "ISO 639-2/B codes are not ISO 639-3"
        );
        assert!(language("french").is_none());
        let two_letter = super::languages()
            .iter()
            .filter(|l| l.code.len() == 2)
            .count();
        assert!(
            (180..=190).contains(&two_letter),
            "{two_letter} ISO 639-1 codes"
        );
        for l in super::languages() {
            assert!(matches!(l.code.len(), 2 | 3), "{l:?}");
            assert!(l.code.bytes().all(|b| b.is_ascii_lowercase()), "{l:?}");
        }
    }
}
