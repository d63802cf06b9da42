//! "Analytics equals brute-force recomputation": random change sequences (insert, update,
//! status changes, purge, day roll-overs) over a small universe of codes, then every query
//! with random filters is compared with a plain recomputation from the final records,
//! written from PRODUCT.md sections 5 and 7 without any index.
//!
//! Cases: 64 by default; set `ANALYTICS_PROPTEST_CASES` for more.

use std::collections::{BTreeMap, BTreeSet};

use passerelle_analytics::{
    Analytics, DemandQuery, Figure, GapRow, OccupationRow, ShortageOverview, ShortageRow, SkillRow,
    SkillsDemand, TrendRow,
};
use passerelle_model::{
    Date, Kind, Location, Occupation, Record, RecordKey, Shortage, ShortageCause, Skill,
    SupplyCell, Vacancy, VacancyStatus,
};
use passerelle_refdata as refdata;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};

// ---------------------------------------------------------------------------------------
// the universe

const ORIGINS: [&str; 3] = ["be.vdab", "be.forem", "fr.france-travail"];
const ISCO: [&str; 6] = ["2511", "2512", "2521", "3512", "7212", "9112"];
const SKILLS: [&str; 6] = [
    "http://data.europa.eu/esco/skill/19a8293b-8e95-4de3-983f-77484079c389",
    "http://data.europa.eu/esco/skill/598de5b0-5b58-4ea7-8058-a4bc4d18c742",
    "http://data.europa.eu/esco/skill/6d3edede-8951-4621-a835-e04323300fa0",
    "http://data.europa.eu/esco/skill/ccd0a1d9-afda-43d9-b901-96344886e14d",
    "http://data.europa.eu/esco/skill/3cd569a2-4f88-4c1e-9995-8dce8c5e51a7",
    "http://data.europa.eu/esco/skill/a5b0cd5c-e13a-4ab3-8d93-4d242adcfb01",
];
const LABELS: [&str; 4] = ["", "a", "b", "B"];
const PLACES: [(&str, &str); 11] = [
    ("BE", ""),
    ("BE", "BE-VAN"),
    ("BE", "BE-VOV"),
    ("BE", "BE-VLG"),
    ("BE", "BE-BRU"),
    ("BE", "BE-WHT"),
    ("FR", ""),
    ("FR", "FR-75"),
    ("FR", "FR-IDF"),
    ("TG", ""),
    ("TG", "TG-M"),
];
const SUPPLY_CODES: [&str; 15] = [
    "2", "25", "251", "2512", "2511", "252", "2521", "7", "72", "721", "7212", "9", "91", "9112",
    "3512",
];
const PERIODS: [&str; 6] = [
    "2025", "2025-Q4", "2025-12", "2026-Q1", "2026-01", "2025-09",
];
const CAUSES: [ShortageCause; 3] = [
    ShortageCause::Quantitative,
    ShortageCause::Qualitative,
    ShortageCause::WorkingConditions,
];

/// Days after 2025-12-01 that records and queries use.
fn day(offset: i32) -> Date {
    Date(Date::parse("2025-12-01").unwrap().0 + offset)
}

fn skills() -> impl Strategy<Value = Vec<Skill>> {
    subsequence(SKILLS.to_vec(), 0..=4).prop_flat_map(|uris| {
        let n = uris.len();
        (
            Just(uris),
            proptest::collection::vec((any::<bool>(), select(LABELS.to_vec())), n),
        )
            .prop_map(|(uris, extra)| {
                uris.into_iter()
                    .zip(extra)
                    .map(|(u, (essential, label))| Skill {
                        esco_uri: u.into(),
                        label: label.into(),
                        essential,
                    })
                    .collect()
            })
    })
}

fn vacancy() -> impl Strategy<Value = Record> {
    (
        (select(ORIGINS.to_vec()), 0..8u8),
        prop_oneof![
            3 => Just(VacancyStatus::Open),
            1 => Just(VacancyStatus::Filled),
            1 => Just(VacancyStatus::Withdrawn),
            1 => Just(VacancyStatus::Expired),
        ],
        select(ISCO.to_vec()),
        select(PLACES.to_vec()),
        any::<bool>(),
        1..5u32,
        (0..100i32, proptest::option::of(0..40i32)),
        skills(),
    )
        .prop_map(
            |(
                (origin, id),
                status,
                isco,
                (country, sub),
                intl,
                positions,
                (posted, open_for),
                skills,
            )| {
                Record::Vacancy(Vacancy {
                    id: format!("V{id}"),
                    origin: origin.into(),
                    revision: 1,
                    status,
                    title: "t".into(),
                    description: String::new(),
                    language: "en".into(),
                    occupation: Occupation {
                        isco08: isco.into(),
                        esco_uri: String::new(),
                    },
                    skills,
                    location: Location {
                        country: country.into(),
                        subdivision: sub.into(),
                        nuts: String::new(),
                        locality: String::new(),
                    },
                    employer_name: String::new(),
                    contract: None,
                    schedule: None,
                    positions,
                    salary: None,
                    languages: Vec::new(),
                    isced_level: None,
                    experience_months: 0,
                    posted_on: day(posted).to_string(),
                    closes_on: open_for.map_or(String::new(), |n| day(posted + n).to_string()),
                    open_to_international: intl,
                    programmes: Vec::new(),
                    updated_at_micros: 0,
                })
            },
        )
}

fn shortage() -> impl Strategy<Value = Record> {
    (
        (select(ORIGINS.to_vec()), 0..6u8),
        select(vec!["l1", "l2"]),
        select(vec![2025u32, 2026]),
        select(PLACES.to_vec()),
        select(ISCO.to_vec()),
        select(vec!["", "x"]),
        subsequence(CAUSES.to_vec(), 1..=3),
        skills(),
    )
        .prop_map(
            |((origin, id), list, year, (country, sub), isco, code, causes, skills)| {
                Record::Shortage(Shortage {
                    id: format!("S{id}"),
                    origin: origin.into(),
                    revision: 1,
                    list: list.into(),
                    year,
                    country: country.into(),
                    subdivision: sub.into(),
                    occupation: Occupation {
                        isco08: isco.into(),
                        esco_uri: String::new(),
                    },
                    national_code: code.into(),
                    causes,
                    skills,
                    unfilled_vacancies: None,
                    median_days_open: None,
                    jobseekers_per_100_vacancies: None,
                    updated_at_micros: 0,
                })
            },
        )
}

fn supply() -> impl Strategy<Value = Record> {
    (
        (select(vec!["tg.anpe", "be.vdab"]), 0..10u8),
        select(PERIODS.to_vec()),
        select(vec!["TG", "BE"]),
        select(SUPPLY_CODES.to_vec()),
        prop_oneof![1 => Just(None), 3 => prop_oneof![Just(0u64), 5..60u64].prop_map(Some)],
    )
        .prop_map(|((origin, id), period, country, code, counts)| {
            let registered = counts.unwrap_or(0);
            let willing = if registered / 2 >= 5 {
                registered / 2
            } else {
                0
            };
            Record::Supply(SupplyCell {
                id: format!("C{id}"),
                origin: origin.into(),
                revision: 1,
                period: period.into(),
                country: country.into(),
                subdivision: String::new(),
                occupation: Occupation {
                    isco08: code.into(),
                    esco_uri: String::new(),
                },
                isced_level: None,
                registered_jobseekers: registered,
                willing_to_migrate: willing,
                suppressed: counts.is_none(),
                updated_at_micros: 0,
            })
        })
}

#[derive(Debug, Clone)]
enum Op {
    Put(Box<Record>),
    Purge(RecordKey),
    Roll(i32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => vacancy().prop_map(|r| Op::Put(Box::new(r))),
        2 => shortage().prop_map(|r| Op::Put(Box::new(r))),
        2 => supply().prop_map(|r| Op::Put(Box::new(r))),
        2 => (select(ORIGINS.to_vec()), 0..8u8, select(vec![Kind::Vacancy, Kind::Shortage]))
            .prop_map(|(o, id, kind)| {
                let prefix = if kind == Kind::Vacancy { "V" } else { "S" };
                Op::Purge(RecordKey::new(o.parse().unwrap(), kind, format!("{prefix}{id}")).unwrap())
            }),
        1 => (select(vec!["tg.anpe", "be.vdab"]), 0..10u8)
            .prop_map(|(o, id)| Op::Purge(RecordKey::new(o.parse().unwrap(), Kind::Supply, format!("C{id}")).unwrap())),
        1 => (0..110i32).prop_map(Op::Roll),
    ]
}

/// A filter; `as_of` None means "the roll day", to exercise the aggregates.
#[derive(Debug, Clone)]
struct Q {
    countries: Vec<&'static str>,
    subdivisions: Vec<&'static str>,
    isco_prefix: &'static str,
    origins: Vec<&'static str>,
    intl: Option<bool>,
    from: Option<i32>,
    to: Option<i32>,
    as_of: Option<i32>,
}

fn window_end() -> impl Strategy<Value = Option<i32>> {
    // month ends and starts (offsets of 2026-01-01, 2026-01-31, 2026-02-01, 2026-02-28)
    // keep the trend's aggregated path busy; other days cut a month
    prop_oneof![
        4 => Just(None),
        1 => select(vec![31, 61, 62, 89]).prop_map(Some),
        1 => (0..100i32).prop_map(Some),
    ]
}

fn query() -> impl Strategy<Value = Q> {
    (
        prop_oneof![2 => Just(vec![]), 1 => subsequence(vec!["BE", "FR", "TG", "NL"], 1..=2)],
        prop_oneof![3 => Just(vec![]), 1 => subsequence(vec!["BE-VLG", "BE-VAN", "BE-BRU", "FR-IDF", "TG-M", "BE-WAL"], 1..=2)],
        select(vec!["", "", "2", "25", "251", "2512", "7", "7212", "9112", "3", "5"]),
        prop_oneof![2 => Just(vec![]), 1 => subsequence(ORIGINS.to_vec(), 1..=2)],
        proptest::option::of(any::<bool>()),
        window_end(),
        window_end(),
        prop_oneof![2 => Just(None), 1 => (0..110i32).prop_map(Some)],
    )
        .prop_map(|(countries, subdivisions, isco_prefix, origins, intl, from, to, as_of)| Q {
            countries,
            subdivisions,
            isco_prefix,
            origins,
            intl,
            from,
            to,
            as_of,
        })
}

impl Q {
    fn build(&self, roll_day: Date) -> DemandQuery {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        DemandQuery {
            countries: strings(&self.countries),
            subdivisions: strings(&self.subdivisions),
            isco_prefix: self.isco_prefix.into(),
            origins: strings(&self.origins),
            open_to_international: self.intl,
            posted_from: self.from.map(day),
            posted_to: self.to.map(day),
            as_of: self.as_of.map_or(roll_day, day),
        }
    }
}

#[derive(Debug, Clone)]
struct Checks {
    queries: Vec<Q>,
    top: usize,
    level: u8,
    skill: Option<&'static str>,
    overview: (&'static str, Option<u32>, Option<i32>),
    gap: (&'static str, &'static str, u8, Option<i32>),
}

fn checks() -> impl Strategy<Value = Checks> {
    (
        proptest::collection::vec(query(), 1..5),
        1..8usize,
        1..=4u8,
        prop_oneof![
            2 => Just(None),
            3 => select(SKILLS.to_vec()).prop_map(Some),
            1 => Just(Some("http://data.europa.eu/esco/skill/4463a721-69f3-413d-8321-43e3af13a4f1")),
        ],
        (
            select(vec!["BE", "FR", "TG", "NL"]),
            select(vec![None, None, Some(2025u32), Some(2026), Some(2024)]),
            prop_oneof![2 => Just(None), 1 => (0..110i32).prop_map(Some)],
        ),
        (
            select(vec!["BE", "FR", "TG"]),
            select(vec!["TG", "BE", "NL"]),
            1..=4u8,
            prop_oneof![2 => Just(None), 1 => (0..110i32).prop_map(Some)],
        ),
    )
        .prop_map(|(queries, top, level, skill, overview, gap)| Checks {
            queries,
            top,
            level,
            skill,
            overview,
            gap,
        })
}

// ---------------------------------------------------------------------------------------
// the brute force, from the specification text

type Records = BTreeMap<RecordKey, Record>;

fn vacancies(r: &Records) -> impl Iterator<Item = &Vacancy> {
    r.values().filter_map(|r| match r {
        Record::Vacancy(v) => Some(v),
        _ => None,
    })
}

fn shortages(r: &Records) -> impl Iterator<Item = (&RecordKey, &Shortage)> {
    r.iter().filter_map(|(k, r)| match r {
        Record::Shortage(s) => Some((k, s)),
        _ => None,
    })
}

fn posted(v: &Vacancy) -> Date {
    Date::parse(&v.posted_on).unwrap()
}

/// Status OPEN, posted_on ≤ D, closes_on empty or ≥ D.
fn open_at(v: &Vacancy, d: Date) -> bool {
    v.status == VacancyStatus::Open
        && posted(v) <= d
        && (v.closes_on.is_empty() || Date::parse(&v.closes_on).unwrap() >= d)
}

/// Every filter but "open".
fn matches(v: &Vacancy, q: &DemandQuery) -> bool {
    let sub = &v.location.subdivision;
    (q.countries.is_empty() || q.countries.contains(&v.location.country))
        && (q.subdivisions.is_empty()
            || (!sub.is_empty()
                && q.subdivisions
                    .iter()
                    .any(|s| refdata::subdivision_within(sub, s))))
        && v.occupation.isco08.starts_with(&q.isco_prefix)
        && (q.origins.is_empty() || q.origins.contains(&v.origin))
        && q.open_to_international
            .is_none_or(|w| w == v.open_to_international)
        && q.posted_from.is_none_or(|f| posted(v) >= f)
        && q.posted_to.is_none_or(|t| posted(v) <= t)
}

fn label(r: &Records, uri: &str) -> String {
    let mut votes: BTreeMap<String, u64> = BTreeMap::new();
    let mut vote = |skills: &[Skill]| {
        if let Some(s) = skills.iter().find(|s| s.esco_uri == uri) {
            if !s.label.is_empty() {
                *votes.entry(s.label.clone()).or_default() += 1;
            }
        }
    };
    for rec in r.values() {
        match rec {
            Record::Vacancy(v) => vote(&v.skills),
            Record::Shortage(s) => vote(&s.skills),
            Record::Supply(_) => {}
        }
    }
    // most votes; among equals the smallest label (BTreeMap iterates in label order)
    let mut best: Option<(String, u64)> = None;
    for (l, n) in votes {
        if best.as_ref().is_none_or(|(_, m)| n > *m) {
            best = Some((l, n));
        }
    }
    match best {
        Some((l, _)) => l,
        None => refdata::esco_skill(uri).unwrap().label.to_owned(),
    }
}

fn skills_demand(r: &Records, q: &DemandQuery, top: usize) -> SkillsDemand {
    let open: Vec<&Vacancy> = vacancies(r)
        .filter(|v| matches(v, q) && open_at(v, q.as_of))
        .collect();
    let mut per: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
    for v in &open {
        for s in &v.skills {
            let e = per.entry(&s.esco_uri).or_default();
            e.0 += 1;
            e.1 += u64::from(v.positions);
            e.2 += u64::from(s.essential);
        }
    }
    let mut rows: Vec<SkillRow> = per
        .into_iter()
        .map(|(uri, (n, p, e))| SkillRow {
            esco_uri: uri.into(),
            label: label(r, uri),
            vacancies: n,
            positions: p,
            essential: e,
            share: n as f64 / open.len() as f64,
        })
        .collect();
    rows.sort_by(|a, b| {
        b.vacancies
            .cmp(&a.vacancies)
            .then(a.esco_uri.cmp(&b.esco_uri))
    });
    rows.truncate(top);
    SkillsDemand {
        matching_vacancies: open.len() as u64,
        rows,
    }
}

fn latest_year(r: &Records, country: &str) -> Option<u32> {
    shortages(r)
        .filter(|(_, s)| s.country == country)
        .map(|(_, s)| s.year)
        .max()
}

/// Causes of lines of the country's latest year whose unit group lies in `group`, and
/// whether there is any such line.
fn causes_in(r: &Records, country: &str, group: &str) -> (BTreeSet<ShortageCause>, bool) {
    let mut causes = BTreeSet::new();
    let mut listed = false;
    if let Some(y) = latest_year(r, country) {
        for (_, s) in shortages(r) {
            if s.country == country && s.year == y && s.occupation.isco08.starts_with(group) {
                listed = true;
                causes.extend(s.causes.iter().copied());
            }
        }
    }
    (causes, listed)
}

fn isco_label(code: &str) -> String {
    refdata::isco(code).unwrap().label.to_owned()
}

fn occupation_demand(r: &Records, q: &DemandQuery, level: u8) -> Vec<OccupationRow> {
    let mut per: BTreeMap<String, (u64, u64, u64, BTreeSet<String>)> = BTreeMap::new();
    for v in vacancies(r).filter(|v| matches(v, q) && open_at(v, q.as_of)) {
        let e = per
            .entry(v.occupation.isco08[..level as usize].to_owned())
            .or_default();
        e.0 += 1;
        e.1 += u64::from(v.positions);
        e.2 += u64::from(v.open_to_international);
        e.3.insert(v.location.country.clone());
    }
    let mut rows: Vec<OccupationRow> = per
        .into_iter()
        .map(|(code, (n, p, i, countries))| {
            let countries: Vec<String> = if q.countries.is_empty() {
                countries.into_iter().collect()
            } else {
                q.countries.clone()
            };
            let mut causes = BTreeSet::new();
            for c in countries {
                causes.extend(causes_in(r, &c, &code).0);
            }
            OccupationRow {
                label: isco_label(&code),
                isco08: code,
                vacancies: n,
                positions: p,
                international: i,
                shortage_causes: causes.into_iter().collect(),
            }
        })
        .collect();
    rows.sort_by(|a, b| b.vacancies.cmp(&a.vacancies).then(a.isco08.cmp(&b.isco08)));
    rows
}

fn shortage_overview(
    r: &Records,
    country: &str,
    year: Option<u32>,
    as_of: Date,
) -> ShortageOverview {
    let Some(y) = year.or_else(|| latest_year(r, country)) else {
        return ShortageOverview::default();
    };
    let mut lines: Vec<(&RecordKey, &Shortage)> = shortages(r)
        .filter(|(_, s)| s.country == country && s.year == y)
        .collect();
    lines.sort_by(|(ka, a), (kb, b)| {
        (
            &a.occupation.isco08,
            &a.list,
            &a.subdivision,
            &a.national_code,
            ka,
        )
            .cmp(&(
                &b.occupation.isco08,
                &b.list,
                &b.subdivision,
                &b.national_code,
                kb,
            ))
    });
    let rows = lines
        .into_iter()
        .map(|(_, s)| {
            let mut vac = 0;
            let mut pos = 0;
            for v in vacancies(r) {
                let sub = &v.location.subdivision;
                let inside = v.location.country == country
                    && (s.subdivision.is_empty()
                        || (!sub.is_empty() && refdata::subdivision_within(sub, &s.subdivision)));
                if inside && v.occupation.isco08 == s.occupation.isco08 && open_at(v, as_of) {
                    vac += 1;
                    pos += u64::from(v.positions);
                }
            }
            let mut causes = s.causes.clone();
            causes.sort();
            ShortageRow {
                isco08: s.occupation.isco08.clone(),
                label: isco_label(&s.occupation.isco08),
                list: s.list.clone(),
                subdivision: s.subdivision.clone(),
                national_code: s.national_code.clone(),
                causes,
                open_vacancies: vac,
                open_positions: pos,
            }
        })
        .collect();
    ShortageOverview { year: y, rows }
}

/// (last day, first day) of `YYYY`, `YYYY-Qn`, `YYYY-MM`.
fn period_bounds(p: &str) -> (Date, Date) {
    let y: i32 = p[..4].parse().unwrap();
    let (first_month, months) = if p.len() == 4 {
        (1, 12)
    } else if &p[5..6] == "Q" {
        let q: u32 = p[6..].parse().unwrap();
        (3 * q - 2, 3)
    } else {
        (p[5..].parse().unwrap(), 1)
    };
    let start = Date::from_ymd(y, first_month, 1).unwrap();
    let next = first_month + months;
    let after = if next > 12 {
        Date::from_ymd(y + 1, next - 12, 1).unwrap()
    } else {
        Date::from_ymd(y, next, 1).unwrap()
    };
    let end = Date(after.0 - 1);
    (end, start)
}

fn supply_gap(r: &Records, dest: &str, source: &str, level: u8, as_of: Date) -> Vec<GapRow> {
    let cells: Vec<&SupplyCell> = r
        .values()
        .filter_map(|r| match r {
            Record::Supply(c) if c.country == source => Some(c),
            _ => None,
        })
        .collect();
    let latest = cells.iter().map(|c| period_bounds(&c.period)).max();
    let period = latest
        .and_then(|b| cells.iter().find(|c| period_bounds(&c.period) == b))
        .map_or(String::new(), |c| c.period.clone());
    let mut rows = Vec::new();
    for g in refdata::isco_groups()
        .iter()
        .filter(|g| g.code.len() == level as usize)
    {
        let open: Vec<&Vacancy> = vacancies(r)
            .filter(|v| {
                v.location.country == dest
                    && v.occupation.isco08.starts_with(g.code)
                    && open_at(v, as_of)
            })
            .collect();
        let positions: u64 = open.iter().map(|v| u64::from(v.positions)).sum();
        let (causes, in_shortage) = causes_in(r, dest, g.code);
        let contributing: Vec<&&SupplyCell> = cells
            .iter()
            .filter(|c| {
                !period.is_empty()
                    && c.period == period
                    && c.occupation.isco08.len() >= level as usize
                    && c.occupation.isco08.starts_with(g.code)
            })
            .collect();
        let figure = |f: fn(&SupplyCell) -> u64| {
            if contributing.is_empty() {
                None
            } else if contributing.iter().any(|c| c.suppressed) {
                Some(Figure::Suppressed)
            } else {
                Some(Figure::Count(contributing.iter().map(|c| f(c)).sum()))
            }
        };
        let registered = figure(|c| c.registered_jobseekers);
        let has_supply = match registered {
            Some(Figure::Suppressed) => true,
            Some(Figure::Count(n)) => n > 0,
            None => false,
        };
        if open.is_empty() && !in_shortage && !has_supply {
            continue;
        }
        rows.push(GapRow {
            isco08: g.code.into(),
            label: g.label.into(),
            open_vacancies: open.len() as u64,
            open_positions: positions,
            shortage_causes: causes.into_iter().collect(),
            registered_jobseekers: registered,
            willing_to_migrate: figure(|c| c.willing_to_migrate),
            period: period.clone(),
            matched: in_shortage && has_supply,
        });
    }
    rows.sort_by(|a, b| {
        b.matched
            .cmp(&a.matched)
            .then(b.open_positions.cmp(&a.open_positions))
            .then(a.isco08.cmp(&b.isco08))
    });
    rows
}

fn demand_trend(r: &Records, q: &DemandQuery, skill: Option<&str>) -> Vec<TrendRow> {
    let mut per: BTreeMap<(String, String), u64> = BTreeMap::new();
    for v in vacancies(r) {
        let has_skill = skill.is_none_or(|s| v.skills.iter().any(|x| x.esco_uri == s));
        if matches(v, q) && has_skill {
            *per.entry((posted(v).month(), v.location.country.clone()))
                .or_default() += 1;
        }
    }
    per.into_iter()
        .map(|((month, country), n)| TrendRow {
            month,
            country,
            vacancies: n,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------

fn cases() -> u32 {
    std::env::var("ANALYTICS_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn analytics_equals_brute_force(
        first_day in 0..110i32,
        ops in proptest::collection::vec(op(), 1..80),
        checks in checks(),
    ) {
        let a = Analytics::with_day(day(first_day));
        let mut records = Records::new();
        for op in &ops {
            match op {
                Op::Put(r) => {
                    let k = r.key().unwrap();
                    a.apply(&k, Some(r));
                    records.insert(k, (**r).clone());
                }
                Op::Purge(k) => {
                    a.apply(k, None);
                    records.remove(k);
                }
                Op::Roll(d) => a.roll_day(day(*d)),
            }
        }
        let roll_day = a.day();
        for q in &checks.queries {
            let q = q.build(roll_day);
            prop_assert_eq!(a.skills_demand(&q, checks.top), skills_demand(&records, &q, checks.top), "skills {:?}", q);
            prop_assert_eq!(a.occupation_demand(&q, checks.level), occupation_demand(&records, &q, checks.level), "occupations {:?}", q);
            prop_assert_eq!(a.demand_trend(&q, checks.skill), demand_trend(&records, &q, checks.skill), "trend {:?}", q);
        }
        let (country, year, as_of) = checks.overview;
        let as_of = as_of.map_or(roll_day, day);
        prop_assert_eq!(a.shortage_overview(country, year, as_of), shortage_overview(&records, country, year, as_of));
        let (dest, source, level, as_of) = checks.gap;
        let as_of = as_of.map_or(roll_day, day);
        prop_assert_eq!(a.supply_gap(dest, source, level, as_of), supply_gap(&records, dest, source, level, as_of));
        let stats = a.stats();
        prop_assert_eq!(stats.vacancies, vacancies(&records).count() as u64);
        prop_assert_eq!(stats.open_vacancies, vacancies(&records).filter(|v| open_at(v, roll_day)).count() as u64);
    }
}
