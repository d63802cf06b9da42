//! Query inputs: the filter and requests as the wire carries them, and their validation into
//! the typed [`DemandQuery`] the engine runs.
//!
//! Field paths in violations are those of `passerelle/v1/analytics.proto` (`filter.isco_prefix`,
//! `filter.countries[1]`, `level`, `destination` …). Proto3 cannot tell an absent number from 0,
//! so `top` 0 means the documented default 50, `level` 0 the default 4 and `year` 0 the latest
//! year; an empty `as_of` means today (UTC).

use passerelle_model::ids::is_agency_id;
use passerelle_model::violations::path;
use passerelle_model::{Date, Violations};
use passerelle_refdata as refdata;

/// `top` when the request leaves it 0.
pub const DEFAULT_TOP: u32 = 50;
/// The largest `top` accepted.
pub const MAX_TOP: u32 = 1000;
/// `level` when the request leaves it 0.
pub const DEFAULT_LEVEL: u32 = 4;

/// A validated filter. Every query applies all of it, except that `DemandTrend` ignores
/// `as_of` (it counts vacancies by posting month whatever their state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemandQuery {
    /// ISO 3166-1 alpha-2 countries of the vacancy location (empty: all).
    pub countries: Vec<String>,
    /// ISO 3166-2 subdivisions of the location; each includes its children (empty: all).
    /// A vacancy without a subdivision never matches a non-empty list.
    pub subdivisions: Vec<String>,
    /// ISCO-08 code prefix, 0 to 4 digits (empty: all).
    pub isco_prefix: String,
    /// Record origins (empty: all).
    pub origins: Vec<String>,
    pub open_to_international: Option<bool>,
    /// Inclusive window on `posted_on`.
    pub posted_from: Option<Date>,
    pub posted_to: Option<Date>,
    /// "Open" means open at this date.
    pub as_of: Date,
}

impl DemandQuery {
    /// The unfiltered query at `as_of`.
    pub fn new(as_of: Date) -> Self {
        DemandQuery {
            countries: Vec::new(),
            subdivisions: Vec::new(),
            isco_prefix: String::new(),
            origins: Vec::new(),
            open_to_international: None,
            posted_from: None,
            posted_to: None,
            as_of,
        }
    }
}

/// The filter as the wire carries it (message `DemandFilter`); empty strings mean "not set".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DemandFilter {
    pub countries: Vec<String>,
    pub subdivisions: Vec<String>,
    pub isco_prefix: String,
    pub origins: Vec<String>,
    pub open_to_international: Option<bool>,
    pub posted_from: String,
    pub posted_to: String,
    pub as_of: String,
}

impl DemandFilter {
    /// Checks every field and builds the query; `today` stands in for an empty `as_of`.
    /// Country and subdivision codes are upper-cased and origins lower-cased first.
    pub fn parse(&self, today: Date) -> Result<DemandQuery, Violations> {
        let mut v = Violations::new();
        let q = self.check("filter", today, &mut v);
        v.into_result().map(|()| q)
    }

    fn check(&self, prefix: &str, today: Date, v: &mut Violations) -> DemandQuery {
        let field = |name: &str| path(prefix, name);
        let countries: Vec<String> = self
            .countries
            .iter()
            .map(|c| c.trim().to_ascii_uppercase())
            .collect();
        for (i, c) in countries.iter().enumerate() {
            check_country(&format!("{}[{i}]", field("countries")), c, v);
        }
        let subdivisions: Vec<String> = self
            .subdivisions
            .iter()
            .map(|s| s.trim().to_ascii_uppercase())
            .collect();
        for (i, s) in subdivisions.iter().enumerate() {
            if refdata::subdivision(s).is_none() {
                v.push(
                    format!("{}[{i}]", field("subdivisions")),
                    format!("{s:?} is not an ISO 3166-2 subdivision code"),
                );
            }
        }
        let isco_prefix = self.isco_prefix.trim().to_owned();
        let isco_ok = isco_prefix.len() <= 4
            && isco_prefix.bytes().all(|b| b.is_ascii_digit())
            && (isco_prefix.is_empty() || refdata::isco(&isco_prefix).is_some());
        if !isco_ok {
            v.push(
                field("isco_prefix"),
                format!("{isco_prefix:?} is not an ISCO-08 group (1 to 4 digits)"),
            );
        }
        let origins: Vec<String> = self
            .origins
            .iter()
            .map(|o| o.trim().to_ascii_lowercase())
            .collect();
        for (i, o) in origins.iter().enumerate() {
            if !is_agency_id(o) {
                v.push(
                    format!("{}[{i}]", field("origins")),
                    format!("{o:?} is not an agency id like 'tg.anpe'"),
                );
            }
        }
        let posted_from = optional_date(&field("posted_from"), &self.posted_from, v);
        let posted_to = optional_date(&field("posted_to"), &self.posted_to, v);
        if let (Some(from), Some(to)) = (posted_from, posted_to) {
            if to < from {
                v.push(
                    field("posted_to"),
                    format!("must be on or after posted_from ({from})"),
                );
            }
        }
        let as_of = as_of_date(&field("as_of"), &self.as_of, today, v);
        DemandQuery {
            countries,
            subdivisions,
            isco_prefix,
            origins,
            open_to_international: self.open_to_international,
            posted_from,
            posted_to,
            as_of,
        }
    }
}

/// Message `SkillsDemandRequest`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SkillsDemandRequest {
    pub filter: DemandFilter,
    /// 0: [`DEFAULT_TOP`]; at most [`MAX_TOP`].
    pub top: u32,
}

impl SkillsDemandRequest {
    /// The query and the number of rows to return.
    pub fn validate(&self, today: Date) -> Result<(DemandQuery, usize), Violations> {
        let mut v = Violations::new();
        let q = self.filter.check("filter", today, &mut v);
        let top = if self.top == 0 { DEFAULT_TOP } else { self.top };
        if top > MAX_TOP {
            v.push("top", format!("must be at most {MAX_TOP} (got {top})"));
        }
        v.into_result().map(|()| (q, top as usize))
    }
}

/// Message `OccupationDemandRequest`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OccupationDemandRequest {
    pub filter: DemandFilter,
    /// 0: [`DEFAULT_LEVEL`]; else 1..4.
    pub level: u32,
}

impl OccupationDemandRequest {
    pub fn validate(&self, today: Date) -> Result<(DemandQuery, u8), Violations> {
        let mut v = Violations::new();
        let q = self.filter.check("filter", today, &mut v);
        let level = check_level("level", self.level, &mut v);
        v.into_result().map(|()| (q, level))
    }
}

/// Message `ShortageOverviewRequest`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShortageOverviewRequest {
    pub country: String,
    /// 0: the latest year the country has.
    pub year: u32,
    pub as_of: String,
}

/// A validated `ShortageOverviewRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShortageOverviewQuery {
    pub country: String,
    pub year: Option<u32>,
    pub as_of: Date,
}

impl ShortageOverviewRequest {
    pub fn validate(&self, today: Date) -> Result<ShortageOverviewQuery, Violations> {
        let mut v = Violations::new();
        let country = self.country.trim().to_ascii_uppercase();
        check_required_country("country", &country, &mut v);
        let (min, max) = (
            passerelle_model::validate::MIN_YEAR,
            passerelle_model::validate::MAX_YEAR,
        );
        if self.year != 0 && !(min..=max).contains(&self.year) {
            v.push(
                "year",
                format!(
                    "must be 0 (latest) or a year {min}..{max} (got {})",
                    self.year
                ),
            );
        }
        let as_of = as_of_date("as_of", &self.as_of, today, &mut v);
        v.into_result().map(|()| ShortageOverviewQuery {
            country,
            year: (self.year != 0).then_some(self.year),
            as_of,
        })
    }
}

/// Message `SupplyGapRequest`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SupplyGapRequest {
    pub destination: String,
    pub source: String,
    /// 0: [`DEFAULT_LEVEL`]; else 1..4.
    pub level: u32,
    pub as_of: String,
}

/// A validated `SupplyGapRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupplyGapQuery {
    pub destination: String,
    pub source: String,
    pub level: u8,
    pub as_of: Date,
}

impl SupplyGapRequest {
    pub fn validate(&self, today: Date) -> Result<SupplyGapQuery, Violations> {
        let mut v = Violations::new();
        let destination = self.destination.trim().to_ascii_uppercase();
        check_required_country("destination", &destination, &mut v);
        let source = self.source.trim().to_ascii_uppercase();
        check_required_country("source", &source, &mut v);
        let level = check_level("level", self.level, &mut v);
        let as_of = as_of_date("as_of", &self.as_of, today, &mut v);
        v.into_result().map(|()| SupplyGapQuery {
            destination,
            source,
            level,
            as_of,
        })
    }
}

/// Message `DemandTrendRequest`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DemandTrendRequest {
    pub filter: DemandFilter,
    /// An ESCO skill URI (empty: none).
    pub skill_uri: String,
}

impl DemandTrendRequest {
    /// The query and the skill, if any. `filter.as_of` is checked but plays no part.
    pub fn validate(&self, today: Date) -> Result<(DemandQuery, Option<String>), Violations> {
        let mut v = Violations::new();
        let q = self.filter.check("filter", today, &mut v);
        let uri = self.skill_uri.trim();
        if !uri.is_empty() && refdata::esco_skill(uri).is_none() {
            v.push(
                "skill_uri",
                format!("{uri:?} is not a known ESCO skill URI"),
            );
        }
        let skill = (!uri.is_empty()).then(|| uri.to_owned());
        v.into_result().map(|()| (q, skill))
    }
}

fn check_country(field: &str, code: &str, v: &mut Violations) {
    if refdata::country(code).is_none() {
        v.push(
            field,
            format!("{code:?} is not an ISO 3166-1 alpha-2 country code"),
        );
    }
}

fn check_required_country(field: &str, code: &str, v: &mut Violations) {
    if code.is_empty() {
        v.push(field, "required (ISO 3166-1 alpha-2 code)");
    } else {
        check_country(field, code, v);
    }
}

/// 0 becomes [`DEFAULT_LEVEL`]; anything outside 1..4 is a violation (and 4 is returned).
fn check_level(field: &str, level: u32, v: &mut Violations) -> u8 {
    match level {
        0 => DEFAULT_LEVEL as u8,
        1..=4 => level as u8,
        _ => {
            v.push(field, format!("must be an ISCO level 1..4 (got {level})"));
            DEFAULT_LEVEL as u8
        }
    }
}

fn optional_date(field: &str, s: &str, v: &mut Violations) -> Option<Date> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let d = Date::parse(s);
    if d.is_none() {
        v.push(field, format!("{s:?} is not a date YYYY-MM-DD"));
    }
    d
}

fn as_of_date(field: &str, s: &str, today: Date, v: &mut Violations) -> Date {
    optional_date(field, s, v).unwrap_or(today)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(r: Result<impl std::fmt::Debug, Violations>) -> Vec<String> {
        r.expect_err("should be refused")
            .iter()
            .map(|v| v.field.clone())
            .collect()
    }

    fn today() -> Date {
        Date::parse("2026-03-10").unwrap()
    }

    #[test]
    fn a_good_filter_is_normalised() {
        let f = DemandFilter {
            countries: vec!["be".into(), " TG ".into()],
            subdivisions: vec!["be-vlg".into()],
            isco_prefix: "25".into(),
            origins: vec!["BE.VDAB".into()],
            open_to_international: Some(true),
            posted_from: "2026-01-01".into(),
            posted_to: "2026-01-01".into(),
            as_of: String::new(),
        };
        let q = f.parse(today()).unwrap();
        assert_eq!(q.countries, ["BE", "TG"]);
        assert_eq!(q.subdivisions, ["BE-VLG"]);
        assert_eq!(q.origins, ["be.vdab"]);
        assert_eq!(q.as_of, today());
        assert_eq!(q.posted_from, q.posted_to);
    }

    #[test]
    fn every_bad_field_is_named() {
        let f = DemandFilter {
            countries: vec!["BE".into(), "XX".into()],
            subdivisions: vec!["BE-ZZZ".into()],
            isco_prefix: "2599".into(),
            origins: vec!["vdab".into()],
            open_to_international: None,
            posted_from: "2026-02-01".into(),
            posted_to: "2026-01-31".into(),
            as_of: "2026-02-30".into(),
        };
        assert_eq!(
            fields(f.parse(today())),
            [
                "filter.countries[1]",
                "filter.subdivisions[0]",
                "filter.isco_prefix",
                "filter.origins[0]",
                "filter.posted_to",
                "filter.as_of"
            ]
        );
        for bad in ["x", "25a", "12345"] {
            let f = DemandFilter {
                isco_prefix: bad.into(),
                ..Default::default()
            };
            assert_eq!(fields(f.parse(today())), ["filter.isco_prefix"], "{bad}");
        }
    }

    #[test]
    fn request_numbers() {
        let ok = SkillsDemandRequest::default().validate(today()).unwrap();
        assert_eq!(ok.1, 50);
        let r = SkillsDemandRequest {
            top: 1001,
            ..Default::default()
        };
        assert_eq!(fields(r.validate(today())), ["top"]);
        let ok = OccupationDemandRequest::default()
            .validate(today())
            .unwrap();
        assert_eq!(ok.1, 4);
        let r = OccupationDemandRequest {
            level: 5,
            ..Default::default()
        };
        assert_eq!(fields(r.validate(today())), ["level"]);
        let r = SupplyGapRequest {
            destination: "BE".into(),
            source: "QQ".into(),
            level: 9,
            as_of: "x".into(),
        };
        assert_eq!(fields(r.validate(today())), ["source", "level", "as_of"]);
        let r = SupplyGapRequest::default();
        assert_eq!(fields(r.validate(today())), ["destination", "source"]);
        let r = ShortageOverviewRequest {
            country: "be".into(),
            year: 1700,
            as_of: String::new(),
        };
        assert_eq!(fields(r.validate(today())), ["year"]);
        let ok = ShortageOverviewRequest {
            country: "be".into(),
            ..Default::default()
        }
        .validate(today())
        .unwrap();
        assert_eq!((ok.country.as_str(), ok.year), ("BE", None));
        let r = DemandTrendRequest {
            skill_uri: "http://data.europa.eu/esco/skill/nope".into(),
            ..Default::default()
        };
        assert_eq!(fields(r.validate(today())), ["skill_uri"]);
    }
}
