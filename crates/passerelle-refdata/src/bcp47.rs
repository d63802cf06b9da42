//! BCP 47 language tags (RFC 5646), as used for the language of a vacancy's text.

use crate::iso::language;

/// Whether `tag` is a well-formed RFC 5646 language tag whose primary language subtag is a known
/// ISO 639-1 or ISO 639-3 code.
///
/// Accepts `language[-extlang][-script][-region][-variant]*[-extension]*[-privateuse]`,
/// case-insensitively. Rejects tags that repeat a variant or an extension singleton, which
/// RFC 5646 forbids in valid tags. Rejects private-use-only tags (`x-…`) and the grandfathered
/// tags, because neither has a primary language that a reader can act on.
pub fn is_bcp47(tag: &str) -> bool {
    let subtags: Vec<&str> = tag.split('-').collect();
    if subtags
        .iter()
        .any(|s| s.is_empty() || s.len() > 8 || !s.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return false;
    }
    let mut rest = subtags.as_slice();

    let Some((primary, tail)) = rest.split_first() else {
        return false;
    };
    if !matches!(primary.len(), 2 | 3)
        || !is_alpha(primary)
        || language(&primary.to_ascii_lowercase()).is_none()
    {
        return false;
    }
    rest = tail;

    let mut extlangs = 0;
    while extlangs < 3 && rest.first().is_some_and(|s| s.len() == 3 && is_alpha(s)) {
        rest = &rest[1..];
        extlangs += 1;
    }
    if rest.first().is_some_and(|s| s.len() == 4 && is_alpha(s)) {
        rest = &rest[1..];
    }
    if rest
        .first()
        .is_some_and(|s| (s.len() == 2 && is_alpha(s)) || (s.len() == 3 && is_digit(s)))
    {
        rest = &rest[1..];
    }

    let mut variants: Vec<String> = Vec::new();
    while let Some(s) = rest.first().filter(|s| is_variant(s)) {
        let v = s.to_ascii_lowercase();
        if variants.contains(&v) {
            return false;
        }
        variants.push(v);
        rest = &rest[1..];
    }

    let mut singletons: Vec<u8> = Vec::new();
    while let Some(s) = rest
        .first()
        .filter(|s| s.len() == 1 && !s.eq_ignore_ascii_case("x"))
    {
        let singleton = s.as_bytes()[0].to_ascii_lowercase();
        if singletons.contains(&singleton) {
            return false;
        }
        singletons.push(singleton);
        rest = &rest[1..];
        let body = rest.iter().take_while(|s| s.len() >= 2).count();
        if body == 0 {
            return false;
        }
        rest = &rest[body..];
    }

    if let Some((x, body)) = rest.split_first() {
        // private use swallows everything after it, subtags of 1 to 8 characters
        return x.eq_ignore_ascii_case("x") && !body.is_empty();
    }
    true
}

fn is_alpha(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphabetic())
}

fn is_digit(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

fn is_variant(s: &str) -> bool {
    (5..=8).contains(&s.len()) || (s.len() == 4 && s.as_bytes()[0].is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_tags_the_federation_uses() {
        for tag in [
            "fr",
            "nl",
            "en",
            "kbp",
            "ee",
            "nl-BE",
            "fr-BE",
            "fr-TG",
            "en-GB",
            "zh-Hant-TW",
        ] {
            assert!(is_bcp47(tag), "{tag}");
        }
    }

    #[test]
    fn accepts_every_part_of_the_grammar() {
        for tag in [
            "NL-be",
            "es-419",
            "sr-Latn",
            "zh-yue-HK",
            "zh-cmn-Hans-CN",
            "sl-rozaj-biske",
            "de-CH-1901",
            "de-DE-u-co-phonebk",
            "en-a-bbb-x-a-ccc",
            "fr-x-private",
            "en-US-x-twain",
            "hy-Latn-IT-arevela",
        ] {
            assert!(is_bcp47(tag), "{tag}");
        }
    }

    #[test]
    fn rejects_malformed_tags() {
        for tag in [
            "",
            "-",
            "xx-",
            "fr-",
            "-fr",
            "fr--BE",
            "french",
            "fr_BE",
            "fr BE",
            "fr-BE-",
            "é",
            "fr-Be_x",
            "fr-abcdefghi",
            "fr-BE-a",
            "fr-x",
            "fr-a-x-y",
            "fr-1",
            "fr-12",
            "fr-BE-FR",
            "fr-Latn-Latn",
        ] {
            assert!(!is_bcp47(tag), "{tag:?}");
        }
    }

    #[test]
    fn rejects_unknown_or_non_iso_primary_languages() {
        for tag in [
            "xx",
            "qq-BE",
            "fre",
            "dut-NL",
            "x-private",
            "i-klingon",
            "abcd",
            "q",
        ] {
            assert!(!is_bcp47(tag), "{tag:?}");
        }
    }

    #[test]
    fn rejects_repeated_variants_and_singletons() {
        assert!(!is_bcp47("de-1901-1901"));
        assert!(!is_bcp47("de-DE-1901-1901"));
        assert!(!is_bcp47("en-a-bbb-a-ccc"));
        assert!(!is_bcp47("en-a-bbb-A-ccc"));
        assert!(is_bcp47("en-a-bbb-b-ccc"));
    }
}
