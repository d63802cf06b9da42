//! Bad input: every rule of PRODUCT.md section 1 (and the details of section 7) broken
//! on its own, through Put and through Import, against a real node; plus the records
//! just inside each limit, and property tests of the length and minimum-cell-size rules.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use passerelle::error::violations_of;
use passerelle::pb::v1 as pb;
use pb::import_item_result::Outcome;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tonic::transport::Channel;
use tonic::{Code, Status};

/// A broken rule: its name, how it breaks a complete valid record, the field paths expected.
type Case<T> = (&'static str, fn(&mut T), &'static [&'static str]);
/// A record just inside the rules: its name and how it changes a complete valid record.
type Fine<T> = (&'static str, fn(&mut T));

// ---------------------------------------------------------------- record helpers

fn skills(n: usize) -> Vec<pb::Skill> {
    skill_uris(n)
        .into_iter()
        .map(|(esco_uri, label)| pb::Skill {
            esco_uri,
            label,
            essential: false,
        })
        .collect()
}

fn unknown_skill() -> pb::Skill {
    pb::Skill {
        esco_uri: "http://data.europa.eu/esco/skill/00000000-0000-0000-0000-000000000000".into(),
        label: "nothing".into(),
        essential: true,
    }
}

fn salary(v: &mut pb::Vacancy) -> &mut pb::Salary {
    v.salary.as_mut().expect("full vacancy has a salary")
}

fn location(v: &mut pb::Vacancy) -> &mut pb::Location {
    v.location.as_mut().expect("full vacancy has a location")
}

fn isco(o: &mut Option<pb::Occupation>) -> &mut String {
    &mut o.as_mut().expect("full record has an occupation").isco08
}

fn programmes(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("programme-{i}")).collect()
}

fn languages(n: usize) -> Vec<pb::LanguageRequirement> {
    [
        "nl", "fr", "en", "de", "es", "it", "pt", "ee", "ewe", "kbp", "ar", "zh",
    ]
    .iter()
    .chain(["ru", "ja", "ko", "pl", "ro", "sv", "da", "fi", "el", "cs"].iter())
    .take(n)
    .map(|code| pb::LanguageRequirement {
        code: (*code).into(),
        level: pb::CefrLevel::B2 as i32,
    })
    .collect()
}

const UNKNOWN_OCCUPATION: &str =
    "http://data.europa.eu/esco/occupation/00000000-0000-0000-0000-000000000000";

// ---------------------------------------------------------------- the tables

fn vacancy_cases() -> Vec<Case<pb::Vacancy>> {
    use pb::VacancyStatus as St;
    let cases: &[Case<pb::Vacancy>] = &[
        ("id empty", |v| v.id.clear(), &["vacancy.id"]),
        ("id 65 chars", |v| v.id = "V".repeat(65), &["vacancy.id"]),
        ("id with slash", |v| v.id = "V/1".into(), &["vacancy.id"]),
        ("id with space", |v| v.id = "V 1".into(), &["vacancy.id"]),
        ("id not ascii", |v| v.id = "Vé".into(), &["vacancy.id"]),
        (
            "status unspecified",
            |v| v.status = St::Unspecified as i32,
            &["vacancy.status"],
        ),
        ("status 99", |v| v.status = 99, &["vacancy.status"]),
        ("status negative", |v| v.status = -1, &["vacancy.status"]),
        ("title empty", |v| v.title.clear(), &["vacancy.title"]),
        (
            "title 301 chars",
            |v| v.title = "t".repeat(301),
            &["vacancy.title"],
        ),
        (
            "title 301 multibyte chars",
            |v| v.title = "é".repeat(301),
            &["vacancy.title"],
        ),
        (
            "title control char",
            |v| v.title = "Lasser\u{7}".into(),
            &["vacancy.title"],
        ),
        (
            "title newline",
            |v| v.title = "Lasser\nTIG".into(),
            &["vacancy.title"],
        ),
        (
            "description 20001 chars",
            |v| v.description = "d".repeat(20_001),
            &["vacancy.description"],
        ),
        (
            "description NUL",
            |v| v.description = "a\u{0}b".into(),
            &["vacancy.description"],
        ),
        (
            "description escape",
            |v| v.description = "\u{1b}[31mred".into(),
            &["vacancy.description"],
        ),
        (
            "language empty",
            |v| v.language.clear(),
            &["vacancy.language"],
        ),
        (
            "language a word",
            |v| v.language = "dutch".into(),
            &["vacancy.language"],
        ),
        (
            "language underscore",
            |v| v.language = "nl_BE".into(),
            &["vacancy.language"],
        ),
        (
            "language unknown primary",
            |v| v.language = "zz".into(),
            &["vacancy.language"],
        ),
        (
            "language empty subtag",
            |v| v.language = "nl--BE".into(),
            &["vacancy.language"],
        ),
        (
            "occupation missing",
            |v| v.occupation = None,
            &["vacancy.occupation.isco08"],
        ),
        (
            "isco empty",
            |v| isco(&mut v.occupation).clear(),
            &["vacancy.occupation.isco08"],
        ),
        (
            "isco level 2",
            |v| *isco(&mut v.occupation) = "72".into(),
            &["vacancy.occupation.isco08"],
        ),
        (
            "isco level 1",
            |v| *isco(&mut v.occupation) = "7".into(),
            &["vacancy.occupation.isco08"],
        ),
        (
            "isco unknown",
            |v| *isco(&mut v.occupation) = "9999".into(),
            &["vacancy.occupation.isco08"],
        ),
        (
            "isco 5 digits",
            |v| *isco(&mut v.occupation) = "72120".into(),
            &["vacancy.occupation.isco08"],
        ),
        (
            "isco letters",
            |v| *isco(&mut v.occupation) = "72a2".into(),
            &["vacancy.occupation.isco08"],
        ),
        (
            "esco occupation unknown",
            |v| v.occupation.as_mut().unwrap().esco_uri = UNKNOWN_OCCUPATION.into(),
            &["vacancy.occupation.esco_uri"],
        ),
        (
            "esco occupation is a skill",
            |v| v.occupation.as_mut().unwrap().esco_uri = skill_uris(1)[0].0.clone(),
            &["vacancy.occupation.esco_uri"],
        ),
        ("51 skills", |v| v.skills = skills(51), &["vacancy.skills"]),
        (
            "skill unknown",
            |v| v.skills[1] = unknown_skill(),
            &["vacancy.skills[1].esco_uri"],
        ),
        (
            "skill uri empty",
            |v| v.skills[0].esco_uri.clear(),
            &["vacancy.skills[0].esco_uri"],
        ),
        (
            "skill is an occupation",
            |v| v.skills[2].esco_uri = first_esco_occupation(),
            &["vacancy.skills[2].esco_uri"],
        ),
        (
            "skill duplicate",
            |v| v.skills[2].esco_uri = v.skills[0].esco_uri.clone(),
            &["vacancy.skills[2]"],
        ),
        (
            "skill duplicate with another label",
            |v| {
                let mut again = v.skills[1].clone();
                again.label = "other words".into();
                again.essential = !again.essential;
                v.skills.push(again);
            },
            &["vacancy.skills[3]"],
        ),
        (
            "skill label 301 chars",
            |v| v.skills[0].label = "l".repeat(301),
            &["vacancy.skills[0].label"],
        ),
        (
            "skill label control",
            |v| v.skills[1].label = "a\tb".into(),
            &["vacancy.skills[1].label"],
        ),
        (
            "location missing",
            |v| v.location = None,
            &["vacancy.location.country"],
        ),
        (
            "country empty",
            |v| location(v).country.clear(),
            &["vacancy.location.country"],
        ),
        (
            "country unknown",
            |v| location(v).country = "XX".into(),
            &["vacancy.location.country"],
        ),
        (
            "country lowercase",
            |v| location(v).country = "be".into(),
            &["vacancy.location.country"],
        ),
        (
            "country alpha-3",
            |v| location(v).country = "BEL".into(),
            &["vacancy.location.country"],
        ),
        (
            "subdivision of another country",
            |v| location(v).subdivision = "TG-M".into(),
            &["vacancy.location.subdivision"],
        ),
        (
            "subdivision unknown",
            |v| location(v).subdivision = "BE-XXX".into(),
            &["vacancy.location.subdivision"],
        ),
        (
            "subdivision lowercase",
            |v| location(v).subdivision = "be-van".into(),
            &["vacancy.location.subdivision"],
        ),
        (
            "nuts of another country",
            |v| location(v).nuts = "FR101".into(),
            &["vacancy.location.nuts"],
        ),
        (
            "nuts lowercase",
            |v| location(v).nuts = "be211".into(),
            &["vacancy.location.nuts"],
        ),
        (
            "nuts too long",
            |v| location(v).nuts = "BE2111".into(),
            &["vacancy.location.nuts"],
        ),
        (
            "nuts one char",
            |v| location(v).nuts = "B".into(),
            &["vacancy.location.nuts"],
        ),
        (
            "nuts with dash",
            |v| location(v).nuts = "BE-21".into(),
            &["vacancy.location.nuts"],
        ),
        (
            "nuts of Greece is EL",
            |v| {
                *location(v) = pb::Location {
                    country: "GR".into(),
                    nuts: "GR30".into(),
                    ..Default::default()
                }
            },
            &["vacancy.location.nuts"],
        ),
        (
            "locality 201 chars",
            |v| location(v).locality = "a".repeat(201),
            &["vacancy.location.locality"],
        ),
        (
            "employer 201 chars",
            |v| v.employer_name = "e".repeat(201),
            &["vacancy.employer_name"],
        ),
        (
            "employer control",
            |v| v.employer_name = "nv\r".into(),
            &["vacancy.employer_name"],
        ),
        ("contract 99", |v| v.contract = 99, &["vacancy.contract"]),
        ("schedule 99", |v| v.schedule = 99, &["vacancy.schedule"]),
        ("positions 0", |v| v.positions = 0, &["vacancy.positions"]),
        (
            "salary min negative",
            |v| salary(v).min = -1.0,
            &["vacancy.salary.min"],
        ),
        (
            "salary min NaN",
            |v| salary(v).min = f64::NAN,
            &["vacancy.salary.min"],
        ),
        (
            "salary max infinite",
            |v| salary(v).max = f64::INFINITY,
            &["vacancy.salary.max"],
        ),
        (
            "salary max below min",
            |v| salary(v).max = 2599.99,
            &["vacancy.salary.max"],
        ),
        (
            "salary both negative",
            |v| {
                salary(v).min = -2.0;
                salary(v).max = -1.0;
            },
            &["vacancy.salary.min", "vacancy.salary.max"],
        ),
        (
            "currency unknown",
            |v| salary(v).currency = "ABC".into(),
            &["vacancy.salary.currency"],
        ),
        (
            "currency lowercase",
            |v| salary(v).currency = "eur".into(),
            &["vacancy.salary.currency"],
        ),
        (
            "currency missing",
            |v| salary(v).currency.clear(),
            &["vacancy.salary.currency"],
        ),
        (
            "salary period missing",
            |v| salary(v).period = 0,
            &["vacancy.salary.period"],
        ),
        (
            "salary period 99",
            |v| salary(v).period = 99,
            &["vacancy.salary.period"],
        ),
        (
            "salary present but empty",
            |v| v.salary = Some(pb::Salary::default()),
            &["vacancy.salary.currency", "vacancy.salary.period"],
        ),
        (
            "language code unknown",
            |v| v.languages[0].code = "xx".into(),
            &["vacancy.languages[0].code"],
        ),
        (
            "language code uppercase",
            |v| v.languages[0].code = "NL".into(),
            &["vacancy.languages[0].code"],
        ),
        (
            "language code a tag",
            |v| v.languages[1].code = "nl-BE".into(),
            &["vacancy.languages[1].code"],
        ),
        (
            "language code empty",
            |v| v.languages[1].code.clear(),
            &["vacancy.languages[1].code"],
        ),
        (
            "language level unspecified",
            |v| v.languages[1].level = 0,
            &["vacancy.languages[1].level"],
        ),
        (
            "language level 99",
            |v| v.languages[0].level = 99,
            &["vacancy.languages[0].level"],
        ),
        (
            "language duplicate",
            |v| v.languages[1].code = "nl".into(),
            &["vacancy.languages[1]"],
        ),
        (
            "21 languages",
            |v| v.languages = languages(21),
            &["vacancy.languages"],
        ),
        (
            "isced 9",
            |v| v.isced_level = Some(9),
            &["vacancy.isced_level"],
        ),
        (
            "isced huge",
            |v| v.isced_level = Some(u32::MAX),
            &["vacancy.isced_level"],
        ),
        (
            "experience 601",
            |v| v.experience_months = 601,
            &["vacancy.experience_months"],
        ),
        (
            "posted_on missing",
            |v| v.posted_on.clear(),
            &["vacancy.posted_on"],
        ),
        (
            "posted_on 2026-02-30",
            |v| v.posted_on = "2026-02-30".into(),
            &["vacancy.posted_on"],
        ),
        (
            "posted_on 2026-02-29",
            |v| v.posted_on = "2026-02-29".into(),
            &["vacancy.posted_on"],
        ),
        (
            "posted_on month 13",
            |v| v.posted_on = "2026-13-01".into(),
            &["vacancy.posted_on"],
        ),
        (
            "posted_on short",
            |v| v.posted_on = "2026-3-01".into(),
            &["vacancy.posted_on"],
        ),
        (
            "posted_on European",
            |v| v.posted_on = "01-03-2026".into(),
            &["vacancy.posted_on"],
        ),
        (
            "posted_on timestamp",
            |v| v.posted_on = "2026-03-01T00:00:00Z".into(),
            &["vacancy.posted_on"],
        ),
        (
            "closes_on before posted_on",
            |v| v.closes_on = "2026-02-28".into(),
            &["vacancy.closes_on"],
        ),
        (
            "closes_on invalid",
            |v| v.closes_on = "2026-12-32".into(),
            &["vacancy.closes_on"],
        ),
        (
            "both dates invalid",
            |v| {
                v.posted_on = "yesterday".into();
                v.closes_on = "tomorrow".into();
            },
            &["vacancy.posted_on", "vacancy.closes_on"],
        ),
        (
            "programme with space",
            |v| v.programmes = vec!["be tg".into()],
            &["vacancy.programmes[0]"],
        ),
        (
            "programme empty",
            |v| v.programmes.push(String::new()),
            &["vacancy.programmes[1]"],
        ),
        (
            "programme 65 chars",
            |v| v.programmes = vec!["p".repeat(65)],
            &["vacancy.programmes[0]"],
        ),
        (
            "programme duplicate",
            |v| v.programmes.push(v.programmes[0].clone()),
            &["vacancy.programmes[1]"],
        ),
        (
            "21 programmes",
            |v| v.programmes = programmes(21),
            &["vacancy.programmes"],
        ),
    ];
    cases.to_vec()
}

fn vacancy_fine() -> Vec<Fine<pb::Vacancy>> {
    use pb::VacancyStatus as St;
    let fine: &[Fine<pb::Vacancy>] = &[
        ("as built", |_| {}),
        ("id 64 chars of every allowed kind", |v| {
            v.id = format!("{}.-_x", "Az09".repeat(15))
        }),
        ("status filled", |v| v.status = St::Filled as i32),
        ("status withdrawn", |v| v.status = St::Withdrawn as i32),
        ("status expired", |v| v.status = St::Expired as i32),
        ("title 1 char", |v| v.title = "X".into()),
        ("title 300 chars", |v| v.title = "t".repeat(300)),
        ("title 300 four-byte chars", |v| v.title = "😀".repeat(300)),
        ("description empty", |v| v.description.clear()),
        ("description 20000 chars", |v| {
            v.description = "d".repeat(20_000)
        }),
        ("description with tabs and CRLF", |v| {
            v.description = "a\tb\r\nc\n".into()
        }),
        ("language 639-3", |v| v.language = "kbp".into()),
        ("language with script and region", |v| {
            v.language = "zh-Hant-TW".into()
        }),
        ("esco occupation empty", |v| {
            v.occupation.as_mut().unwrap().esco_uri.clear()
        }),
        ("no skills", |v| v.skills.clear()),
        ("50 skills", |v| v.skills = skills(50)),
        ("skill label empty", |v| v.skills[0].label.clear()),
        ("skill label 300 chars", |v| {
            v.skills[0].label = "l".repeat(300)
        }),
        ("location country only", |v| {
            *location(v) = pb::Location {
                country: "TG".into(),
                ..Default::default()
            }
        }),
        ("nuts of Greece", |v| {
            *location(v) = pb::Location {
                country: "GR".into(),
                nuts: "EL30".into(),
                ..Default::default()
            }
        }),
        ("nuts country level", |v| location(v).nuts = "BE".into()),
        ("subdivision region", |v| {
            location(v).subdivision = "BE-VLG".into()
        }),
        ("employer 200 chars", |v| v.employer_name = "e".repeat(200)),
        ("contract and schedule unspecified", |v| {
            v.contract = 0;
            v.schedule = 0;
        }),
        ("positions 1", |v| v.positions = 1),
        ("positions max", |v| v.positions = u32::MAX),
        ("no salary", |v| v.salary = None),
        ("salary zero range", |v| {
            salary(v).min = 0.0;
            salary(v).max = 0.0;
        }),
        ("salary min equals max", |v| salary(v).max = 2600.0),
        ("salary in XOF per hour", |v| {
            salary(v).currency = "XOF".into();
            salary(v).period = pb::SalaryPeriod::Hour as i32;
        }),
        ("no languages", |v| v.languages.clear()),
        ("20 languages", |v| v.languages = languages(20)),
        ("isced absent", |v| v.isced_level = None),
        ("isced 8", |v| v.isced_level = Some(8)),
        ("experience 600", |v| v.experience_months = 600),
        ("posted_on leap day", |v| v.posted_on = "2024-02-29".into()),
        ("closes_on empty", |v| v.closes_on.clear()),
        ("closes_on equals posted_on", |v| {
            v.closes_on = v.posted_on.clone()
        }),
        ("no programmes", |v| v.programmes.clear()),
        ("20 programmes", |v| v.programmes = programmes(20)),
    ];
    fine.to_vec()
}

fn shortage_cases() -> Vec<Case<pb::Shortage>> {
    use pb::ShortageCause as Ca;
    let cases: &[Case<pb::Shortage>] = &[
        ("id empty", |s| s.id.clear(), &["shortage.id"]),
        ("id 65 chars", |s| s.id = "S".repeat(65), &["shortage.id"]),
        ("id bad chars", |s| s.id = "S#1".into(), &["shortage.id"]),
        ("list empty", |s| s.list.clear(), &["shortage.list"]),
        (
            "list with space",
            |s| s.list = "vdab knelpunt".into(),
            &["shortage.list"],
        ),
        (
            "list 65 chars",
            |s| s.list = "l".repeat(65),
            &["shortage.list"],
        ),
        ("year 0", |s| s.year = 0, &["shortage.year"]),
        ("year 1989", |s| s.year = 1989, &["shortage.year"]),
        ("year 2101", |s| s.year = 2101, &["shortage.year"]),
        ("year 20260", |s| s.year = 20260, &["shortage.year"]),
        (
            "country empty",
            |s| s.country.clear(),
            &["shortage.country"],
        ),
        (
            "country unknown",
            |s| s.country = "XX".into(),
            &["shortage.country"],
        ),
        (
            "subdivision of another country",
            |s| s.subdivision = "TG-M".into(),
            &["shortage.subdivision"],
        ),
        (
            "subdivision unknown",
            |s| s.subdivision = "BE-XXX".into(),
            &["shortage.subdivision"],
        ),
        (
            "occupation missing",
            |s| s.occupation = None,
            &["shortage.occupation.isco08"],
        ),
        (
            "isco level 2",
            |s| *isco(&mut s.occupation) = "22".into(),
            &["shortage.occupation.isco08"],
        ),
        (
            "isco unknown",
            |s| *isco(&mut s.occupation) = "9999".into(),
            &["shortage.occupation.isco08"],
        ),
        (
            "esco occupation unknown",
            |s| s.occupation.as_mut().unwrap().esco_uri = UNKNOWN_OCCUPATION.into(),
            &["shortage.occupation.esco_uri"],
        ),
        (
            "national_code 65 chars",
            |s| s.national_code = "k".repeat(65),
            &["shortage.national_code"],
        ),
        (
            "national_code control",
            |s| s.national_code = "K\u{0}".into(),
            &["shortage.national_code"],
        ),
        ("causes empty", |s| s.causes.clear(), &["shortage.causes"]),
        (
            "cause unspecified",
            |s| s.causes[1] = Ca::Unspecified as i32,
            &["shortage.causes[1]"],
        ),
        ("cause 99", |s| s.causes[0] = 99, &["shortage.causes[0]"]),
        (
            "cause repeated",
            |s| s.causes[1] = s.causes[0],
            &["shortage.causes[1]"],
        ),
        (
            "cause repeated later",
            |s| s.causes.push(Ca::WorkingConditions as i32),
            &["shortage.causes[2]"],
        ),
        ("51 skills", |s| s.skills = skills(51), &["shortage.skills"]),
        (
            "skill unknown",
            |s| s.skills[0] = unknown_skill(),
            &["shortage.skills[0].esco_uri"],
        ),
        (
            "skill duplicate",
            |s| s.skills[1].esco_uri = s.skills[0].esco_uri.clone(),
            &["shortage.skills[1]"],
        ),
        (
            "skill label 301 chars",
            |s| s.skills[1].label = "l".repeat(301),
            &["shortage.skills[1].label"],
        ),
        (
            "median days 3651",
            |s| s.median_days_open = Some(3651),
            &["shortage.median_days_open"],
        ),
        (
            "jobseekers per 100 negative",
            |s| s.jobseekers_per_100_vacancies = Some(-0.5),
            &["shortage.jobseekers_per_100_vacancies"],
        ),
        (
            "jobseekers per 100 NaN",
            |s| s.jobseekers_per_100_vacancies = Some(f64::NAN),
            &["shortage.jobseekers_per_100_vacancies"],
        ),
        (
            "jobseekers per 100 infinite",
            |s| s.jobseekers_per_100_vacancies = Some(f64::INFINITY),
            &["shortage.jobseekers_per_100_vacancies"],
        ),
    ];
    cases.to_vec()
}

fn shortage_fine() -> Vec<Fine<pb::Shortage>> {
    let fine: &[Fine<pb::Shortage>] = &[
        ("as built", |_| {}),
        ("year 1990", |s| s.year = 1990),
        ("year 2100", |s| s.year = 2100),
        ("no subdivision", |s| s.subdivision.clear()),
        ("esco occupation known", |s| {
            s.occupation.as_mut().unwrap().esco_uri = first_esco_occupation()
        }),
        ("national_code empty", |s| s.national_code.clear()),
        ("national_code 64 chars", |s| {
            s.national_code = "k".repeat(64)
        }),
        ("one cause", |s| {
            s.causes = vec![pb::ShortageCause::Qualitative as i32]
        }),
        ("no skills", |s| s.skills.clear()),
        ("50 skills", |s| s.skills = skills(50)),
        ("no figures", |s| {
            s.unfilled_vacancies = None;
            s.median_days_open = None;
            s.jobseekers_per_100_vacancies = None;
        }),
        ("zero figures", |s| {
            s.unfilled_vacancies = Some(0);
            s.median_days_open = Some(0);
            s.jobseekers_per_100_vacancies = Some(0.0);
        }),
        ("median days 3650", |s| s.median_days_open = Some(3650)),
    ];
    fine.to_vec()
}

fn supply_cases() -> Vec<Case<pb::SupplyCell>> {
    let cases: &[Case<pb::SupplyCell>] = &[
        ("id empty", |c| c.id.clear(), &["cell.id"]),
        ("id bad chars", |c| c.id = "C:1".into(), &["cell.id"]),
        ("period empty", |c| c.period.clear(), &["cell.period"]),
        (
            "period quarter 5",
            |c| c.period = "2026-Q5".into(),
            &["cell.period"],
        ),
        (
            "period quarter 0",
            |c| c.period = "2026-Q0".into(),
            &["cell.period"],
        ),
        (
            "period lowercase quarter",
            |c| c.period = "2026-q1".into(),
            &["cell.period"],
        ),
        (
            "period month 13",
            |c| c.period = "2026-13".into(),
            &["cell.period"],
        ),
        (
            "period month 00",
            |c| c.period = "2026-00".into(),
            &["cell.period"],
        ),
        (
            "period month one digit",
            |c| c.period = "2026-1".into(),
            &["cell.period"],
        ),
        (
            "period two-digit year",
            |c| c.period = "26".into(),
            &["cell.period"],
        ),
        (
            "period year 1989",
            |c| c.period = "1989".into(),
            &["cell.period"],
        ),
        (
            "period year 2101",
            |c| c.period = "2101-Q1".into(),
            &["cell.period"],
        ),
        (
            "period a date",
            |c| c.period = "2026-03-01".into(),
            &["cell.period"],
        ),
        (
            "period without dash",
            |c| c.period = "2026Q1".into(),
            &["cell.period"],
        ),
        (
            "period half year",
            |c| c.period = "2026-H1".into(),
            &["cell.period"],
        ),
        ("country empty", |c| c.country.clear(), &["cell.country"]),
        (
            "country unknown",
            |c| c.country = "XX".into(),
            &["cell.country"],
        ),
        (
            "subdivision of another country",
            |c| c.subdivision = "BE-VAN".into(),
            &["cell.subdivision"],
        ),
        (
            "subdivision unknown",
            |c| c.subdivision = "TG-X".into(),
            &["cell.subdivision"],
        ),
        (
            "occupation missing",
            |c| c.occupation = None,
            &["cell.occupation.isco08"],
        ),
        (
            "isco 5 digits",
            |c| *isco(&mut c.occupation) = "99999".into(),
            &["cell.occupation.isco08"],
        ),
        (
            "isco 0000",
            |c| *isco(&mut c.occupation) = "0000".into(),
            &["cell.occupation.isco08"],
        ),
        (
            "isco unknown unit",
            |c| *isco(&mut c.occupation) = "7299".into(),
            &["cell.occupation.isco08"],
        ),
        (
            "isco unknown major",
            |c| *isco(&mut c.occupation) = "00".into(),
            &["cell.occupation.isco08"],
        ),
        (
            "isco letter",
            |c| *isco(&mut c.occupation) = "X".into(),
            &["cell.occupation.isco08"],
        ),
        (
            "esco occupation unknown",
            |c| c.occupation.as_mut().unwrap().esco_uri = UNKNOWN_OCCUPATION.into(),
            &["cell.occupation.esco_uri"],
        ),
        (
            "isced 9",
            |c| c.isced_level = Some(9),
            &["cell.isced_level"],
        ),
        (
            "registered 1",
            |c| {
                c.registered_jobseekers = 1;
                c.willing_to_migrate = 0;
            },
            &["cell.registered_jobseekers"],
        ),
        (
            "registered 3",
            |c| {
                c.registered_jobseekers = 3;
                c.willing_to_migrate = 0;
            },
            &["cell.registered_jobseekers"],
        ),
        (
            "registered 4",
            |c| {
                c.registered_jobseekers = 4;
                c.willing_to_migrate = 0;
            },
            &["cell.registered_jobseekers"],
        ),
        (
            "willing 4",
            |c| c.willing_to_migrate = 4,
            &["cell.willing_to_migrate"],
        ),
        (
            "both 3",
            |c| {
                c.registered_jobseekers = 3;
                c.willing_to_migrate = 3;
            },
            &["cell.registered_jobseekers", "cell.willing_to_migrate"],
        ),
        (
            "suppressed with counts",
            |c| c.suppressed = true,
            &["cell.registered_jobseekers", "cell.willing_to_migrate"],
        ),
        (
            "suppressed with registered",
            |c| {
                c.suppressed = true;
                c.willing_to_migrate = 0;
            },
            &["cell.registered_jobseekers"],
        ),
        (
            "suppressed with a small willing",
            |c| {
                c.suppressed = true;
                c.registered_jobseekers = 0;
                c.willing_to_migrate = 2;
            },
            &["cell.willing_to_migrate"],
        ),
        (
            "willing above registered",
            |c| c.willing_to_migrate = 121,
            &["cell.willing_to_migrate"],
        ),
        (
            "willing without registered",
            |c| {
                c.registered_jobseekers = 0;
                c.willing_to_migrate = 10;
            },
            &["cell.willing_to_migrate"],
        ),
    ];
    cases.to_vec()
}

fn supply_fine() -> Vec<Fine<pb::SupplyCell>> {
    let fine: &[Fine<pb::SupplyCell>] = &[
        ("as built", |_| {}),
        ("period year", |c| c.period = "2026".into()),
        ("period Q1", |c| c.period = "2026-Q1".into()),
        ("period Q4", |c| c.period = "2026-Q4".into()),
        ("period January", |c| c.period = "2026-01".into()),
        ("period December", |c| c.period = "2026-12".into()),
        ("period 1990", |c| c.period = "1990".into()),
        ("period 2100-12", |c| c.period = "2100-12".into()),
        ("isco level 1", |c| *isco(&mut c.occupation) = "7".into()),
        ("isco level 3", |c| *isco(&mut c.occupation) = "721".into()),
        ("isco level 4", |c| *isco(&mut c.occupation) = "7212".into()),
        ("isco armed forces 0", |c| {
            *isco(&mut c.occupation) = "0".into()
        }),
        ("isco armed forces 0110", |c| {
            *isco(&mut c.occupation) = "0110".into()
        }),
        ("esco occupation known", |c| {
            c.occupation.as_mut().unwrap().esco_uri = first_esco_occupation()
        }),
        ("no subdivision", |c| c.subdivision.clear()),
        ("isced absent", |c| c.isced_level = None),
        ("isced 0", |c| c.isced_level = Some(0)),
        ("isced 8", |c| c.isced_level = Some(8)),
        ("both 0", |c| {
            c.registered_jobseekers = 0;
            c.willing_to_migrate = 0;
        }),
        ("registered 5", |c| {
            c.registered_jobseekers = 5;
            c.willing_to_migrate = 0;
        }),
        ("both 5", |c| {
            c.registered_jobseekers = 5;
            c.willing_to_migrate = 5;
        }),
        ("willing equals registered", |c| c.willing_to_migrate = 120),
        ("suppressed with zeros", |c| {
            c.suppressed = true;
            c.registered_jobseekers = 0;
            c.willing_to_migrate = 0;
        }),
        ("huge counts", |c| {
            c.registered_jobseekers = u64::MAX;
            c.willing_to_migrate = u64::MAX;
        }),
    ];
    fine.to_vec()
}

// ---------------------------------------------------------------- wire helpers

fn distinct_fields(s: &Status) -> BTreeSet<String> {
    violations_of(s).into_iter().map(|(f, _)| f).collect()
}

fn set(fields: &[&str]) -> BTreeSet<String> {
    fields.iter().map(|f| f.to_string()).collect()
}

/// Checks one refused Put: INVALID_ARGUMENT, exactly the expected field paths, each with a reason.
fn judge(
    name: &str,
    r: Result<pb::PutResponse, Status>,
    expected: &[&str],
    failures: &mut Vec<String>,
) {
    match r {
        Ok(ok) => failures.push(format!("{name}: accepted as {ok:?}")),
        Err(s) if s.code() != Code::InvalidArgument => {
            failures.push(format!("{name}: code {:?} ({})", s.code(), s.message()))
        }
        Err(s) => {
            let got = distinct_fields(&s);
            if got != set(expected) {
                failures.push(format!("{name}: fields {got:?}, expected {expected:?}"));
            }
            if let Some((f, _)) = violations_of(&s).iter().find(|(_, d)| d.is_empty()) {
                failures.push(format!("{name}: no reason given for {f}"));
            }
        }
    }
}

async fn put_vacancy(
    c: &mut VacanciesClient<Channel>,
    v: pb::Vacancy,
) -> Result<pb::PutResponse, Status> {
    c.put(pb::PutVacancyRequest {
        vacancy: Some(v),
        expected_revision: None,
    })
    .await
    .map(|r| r.into_inner())
}

async fn put_shortage(
    c: &mut ShortagesClient<Channel>,
    s: pb::Shortage,
) -> Result<pb::PutResponse, Status> {
    c.put(pb::PutShortageRequest {
        shortage: Some(s),
        expected_revision: None,
    })
    .await
    .map(|r| r.into_inner())
}

async fn put_cell(
    c: &mut SupplyClient<Channel>,
    cell: pb::SupplyCell,
) -> Result<pb::PutResponse, Status> {
    c.put(pb::PutSupplyRequest {
        cell: Some(cell),
        expected_revision: None,
    })
    .await
    .map(|r| r.into_inner())
}

/// Nothing of a refused record may be stored: no log entry, no record under its id.
fn nothing_stored(
    name: &str,
    node: &TestNode,
    head: u64,
    get: Result<(), Status>,
    failures: &mut Vec<String>,
) {
    if node.head_seq() != head {
        failures.push(format!(
            "{name}: head_seq moved from {head} to {}",
            node.head_seq()
        ));
    }
    match get {
        Err(s) if s.code() == Code::NotFound => {}
        other => failures.push(format!("{name}: Get after refusal gave {other:?}")),
    }
}

#[track_caller]
fn assert_no_failures(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn item_error_fields(r: &pb::ImportItemResult) -> Option<BTreeSet<String>> {
    match &r.outcome {
        Some(Outcome::Error(b)) => {
            Some(b.field_violations.iter().map(|f| f.field.clone()).collect())
        }
        _ => None,
    }
}

/// Checks an Import summary of bad items only: each refused, in order, with its id and fields.
fn judge_import(
    summary: &pb::ImportSummary,
    expected: &[(String, &[&str])],
    failures: &mut Vec<String>,
) {
    let n = expected.len() as u64;
    if (
        summary.received,
        summary.written,
        summary.unchanged,
        summary.rejected,
    ) != (n, 0, 0, n)
    {
        failures.push(format!(
            "summary received {} written {} unchanged {} rejected {}, expected {n} refused",
            summary.received, summary.written, summary.unchanged, summary.rejected
        ));
    }
    if summary.results.len() != expected.len() {
        failures.push(format!(
            "{} results for {} items",
            summary.results.len(),
            expected.len()
        ));
    }
    for (i, (r, (id, fields))) in summary.results.iter().zip(expected).enumerate() {
        if r.index != i as u64 || &r.id != id || r.changed {
            failures.push(format!(
                "item {i}: index {} id {:?} changed {}",
                r.index, r.id, r.changed
            ));
        }
        match item_error_fields(r) {
            Some(got) if got == set(fields) => {}
            other => failures.push(format!("item {i} ({id}): {other:?}, expected {fields:?}")),
        }
    }
}

// ---------------------------------------------------------------- Put: one broken rule at a time

#[tokio::test]
async fn every_broken_vacancy_rule_is_refused_on_its_field() {
    let node = TestNode::start("be.vdab").await;
    let mut c = node.vacancies("publisher").await;
    let mut failures = Vec::new();
    let cases = vacancy_cases();
    for (i, (name, mutate, expected)) in cases.iter().enumerate() {
        let mut v = full_vacancy(&format!("B-{i}"));
        mutate(&mut v);
        let head = node.head_seq();
        judge(name, put_vacancy(&mut c, v).await, expected, &mut failures);
        let get = c
            .get(pb::GetVacancyRequest {
                origin: String::new(),
                id: format!("B-{i}"),
            })
            .await
            .map(drop);
        nothing_stored(name, &node, head, get, &mut failures);
    }
    let all = c
        .list(pb::ListVacanciesRequest::default())
        .await
        .unwrap()
        .into_inner();
    if !all.vacancies.is_empty() {
        failures.push(format!("{} vacancies stored", all.vacancies.len()));
    }
    assert_no_failures(failures);
    assert!(cases.len() > 80);
}

#[tokio::test]
async fn every_broken_shortage_rule_is_refused_on_its_field() {
    let node = TestNode::start("be.vdab").await;
    let mut c = node.shortages("publisher").await;
    let mut failures = Vec::new();
    for (i, (name, mutate, expected)) in shortage_cases().iter().enumerate() {
        let mut s = full_shortage(&format!("B-{i}"));
        mutate(&mut s);
        let head = node.head_seq();
        judge(name, put_shortage(&mut c, s).await, expected, &mut failures);
        let get = c
            .get(pb::GetShortageRequest {
                origin: String::new(),
                id: format!("B-{i}"),
            })
            .await
            .map(drop);
        nothing_stored(name, &node, head, get, &mut failures);
    }
    let all = c
        .list(pb::ListShortagesRequest::default())
        .await
        .unwrap()
        .into_inner();
    if !all.shortages.is_empty() {
        failures.push(format!("{} shortages stored", all.shortages.len()));
    }
    assert_no_failures(failures);
}

#[tokio::test]
async fn every_broken_supply_rule_is_refused_on_its_field() {
    let node = TestNode::start("tg.anpe").await;
    let mut c = node.supply("publisher").await;
    let mut failures = Vec::new();
    for (i, (name, mutate, expected)) in supply_cases().iter().enumerate() {
        let mut cell = full_supply(&format!("B-{i}"));
        mutate(&mut cell);
        let head = node.head_seq();
        judge(name, put_cell(&mut c, cell).await, expected, &mut failures);
        let get = c
            .get(pb::GetSupplyRequest {
                origin: String::new(),
                id: format!("B-{i}"),
            })
            .await
            .map(drop);
        nothing_stored(name, &node, head, get, &mut failures);
    }
    let all = c
        .list(pb::ListSupplyRequest::default())
        .await
        .unwrap()
        .into_inner();
    if !all.cells.is_empty() {
        failures.push(format!("{} cells stored", all.cells.len()));
    }
    assert_no_failures(failures);
}

#[tokio::test]
async fn a_put_without_a_record_names_the_missing_message() {
    let node = TestNode::start("be.vdab").await;
    let r = node
        .vacancies("publisher")
        .await
        .put(pb::PutVacancyRequest::default())
        .await;
    let s = r.unwrap_err();
    assert_eq!(
        (s.code(), distinct_fields(&s)),
        (Code::InvalidArgument, set(&["vacancy"]))
    );
    let r = node
        .shortages("publisher")
        .await
        .put(pb::PutShortageRequest::default())
        .await;
    let s = r.unwrap_err();
    assert_eq!(
        (s.code(), distinct_fields(&s)),
        (Code::InvalidArgument, set(&["shortage"]))
    );
    let r = node
        .supply("publisher")
        .await
        .put(pb::PutSupplyRequest::default())
        .await;
    let s = r.unwrap_err();
    assert_eq!(
        (s.code(), distinct_fields(&s)),
        (Code::InvalidArgument, set(&["cell"]))
    );
    assert_eq!(node.head_seq(), 0);
}

// ---------------------------------------------------------------- all violations at once

#[tokio::test]
async fn a_record_breaking_many_rules_gets_every_violation_at_once() {
    let node = TestNode::start("be.vdab").await;
    let mut c = node.vacancies("publisher").await;
    let mut v = full_vacancy("M-1");
    v.status = 0;
    v.title.clear();
    v.language = "dutch".into();
    v.occupation.as_mut().unwrap().isco08 = "72".into();
    v.skills[2].esco_uri = v.skills[0].esco_uri.clone();
    location(&mut v).country = "XX".into();
    v.contract = 42;
    v.positions = 0;
    salary(&mut v).max = 1.0;
    v.languages[1].level = 0;
    v.isced_level = Some(9);
    v.experience_months = 1000;
    v.closes_on = "2020-01-01".into();
    v.programmes.push("no spaces allowed".into());
    let expected = [
        "vacancy.status",
        "vacancy.title",
        "vacancy.language",
        "vacancy.occupation.isco08",
        "vacancy.skills[2]",
        "vacancy.location.country",
        "vacancy.contract",
        "vacancy.positions",
        "vacancy.salary.max",
        "vacancy.languages[1].level",
        "vacancy.isced_level",
        "vacancy.experience_months",
        "vacancy.closes_on",
        "vacancy.programmes[1]",
    ];
    let s = put_vacancy(&mut c, v.clone()).await.unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    assert_eq!(distinct_fields(&s), set(&expected));
    assert_eq!(violations_of(&s).len(), expected.len());
    assert!(s.message().contains("and 13 more"), "{}", s.message());
    assert_eq!(node.head_seq(), 0);

    // the same through Import
    let sum = c
        .import(tokio_stream::iter([pb::ImportVacancyRequest {
            vacancy: Some(v),
        }]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(item_error_fields(&sum.results[0]), Some(set(&expected)));

    let mut cell = full_supply("M-2");
    cell.period = "2026-Q9".into();
    cell.country = "ZZ".into();
    cell.occupation = None;
    cell.isced_level = Some(12);
    cell.registered_jobseekers = 2;
    cell.willing_to_migrate = 3;
    let mut cells = node.supply("publisher").await;
    let s = put_cell(&mut cells, cell).await.unwrap_err();
    assert_eq!(
        distinct_fields(&s),
        set(&[
            "cell.period",
            "cell.country",
            "cell.occupation.isco08",
            "cell.isced_level",
            "cell.registered_jobseekers",
            "cell.willing_to_migrate",
        ])
    );
    assert_eq!(node.head_seq(), 0);
}

// ---------------------------------------------------------------- just inside the rules

#[tokio::test]
async fn records_just_inside_every_limit_are_accepted_as_sent() {
    let node = TestNode::start("be.vdab").await;
    let mut v = node.vacancies("publisher").await;
    let mut s = node.shortages("publisher").await;
    let mut cells = node.supply("publisher").await;
    let mut failures = Vec::new();

    for (i, (name, mutate)) in vacancy_fine().iter().enumerate() {
        let mut x = full_vacancy(&format!("G-{i}"));
        mutate(&mut x);
        match put_vacancy(&mut v, x.clone()).await {
            Ok(r) if (r.revision, r.changed) == (1, true) => {}
            other => {
                failures.push(format!("vacancy {name}: {other:?}"));
                continue;
            }
        }
        let mut got = v
            .get(pb::GetVacancyRequest {
                origin: String::new(),
                id: x.id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        got.origin.clear();
        got.revision = 0;
        got.updated_at = None;
        if got != x {
            failures.push(format!("vacancy {name}: stored {got:?}"));
        }
    }
    for (i, (name, mutate)) in shortage_fine().iter().enumerate() {
        let mut x = full_shortage(&format!("G-{i}"));
        mutate(&mut x);
        match put_shortage(&mut s, x.clone()).await {
            Ok(r) if (r.revision, r.changed) == (1, true) => {}
            other => {
                failures.push(format!("shortage {name}: {other:?}"));
                continue;
            }
        }
        let mut got = s
            .get(pb::GetShortageRequest {
                origin: String::new(),
                id: x.id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        got.origin.clear();
        got.revision = 0;
        got.updated_at = None;
        if got != x {
            failures.push(format!("shortage {name}: stored {got:?}"));
        }
    }
    for (i, (name, mutate)) in supply_fine().iter().enumerate() {
        let mut x = full_supply(&format!("G-{i}"));
        mutate(&mut x);
        match put_cell(&mut cells, x.clone()).await {
            Ok(r) if (r.revision, r.changed) == (1, true) => {}
            other => {
                failures.push(format!("supply {name}: {other:?}"));
                continue;
            }
        }
        let mut got = cells
            .get(pb::GetSupplyRequest {
                origin: String::new(),
                id: x.id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        got.origin.clear();
        got.revision = 0;
        got.updated_at = None;
        if got != x {
            failures.push(format!("supply {name}: stored {got:?}"));
        }
    }
    let total = vacancy_fine().len() + shortage_fine().len() + supply_fine().len();
    if node.head_seq() != total as u64 {
        failures.push(format!(
            "head_seq {} after {total} accepted puts",
            node.head_seq()
        ));
    }
    assert_no_failures(failures);
}

// ---------------------------------------------------------------- Import: same paths per item

#[tokio::test]
async fn import_reports_the_same_field_paths_per_item() {
    let node = TestNode::start("be.vdab").await;
    let mut failures = Vec::new();

    let mut c = node.vacancies("publisher").await;
    let (items, expected): (Vec<_>, Vec<_>) = vacancy_cases()
        .iter()
        .enumerate()
        .map(|(i, (_, mutate, fields))| {
            let mut v = full_vacancy(&format!("B-{i}"));
            mutate(&mut v);
            let id = v.id.clone();
            (pb::ImportVacancyRequest { vacancy: Some(v) }, (id, *fields))
        })
        .unzip();
    let sum = c
        .import(tokio_stream::iter(items))
        .await
        .unwrap()
        .into_inner();
    judge_import(&sum, &expected, &mut failures);

    let mut c = node.shortages("publisher").await;
    let (items, expected): (Vec<_>, Vec<_>) = shortage_cases()
        .iter()
        .enumerate()
        .map(|(i, (_, mutate, fields))| {
            let mut s = full_shortage(&format!("B-{i}"));
            mutate(&mut s);
            let id = s.id.clone();
            (
                pb::ImportShortageRequest { shortage: Some(s) },
                (id, *fields),
            )
        })
        .unzip();
    let sum = c
        .import(tokio_stream::iter(items))
        .await
        .unwrap()
        .into_inner();
    judge_import(&sum, &expected, &mut failures);

    let mut c = node.supply("publisher").await;
    let (items, expected): (Vec<_>, Vec<_>) = supply_cases()
        .iter()
        .enumerate()
        .map(|(i, (_, mutate, fields))| {
            let mut cell = full_supply(&format!("B-{i}"));
            mutate(&mut cell);
            let id = cell.id.clone();
            (pb::ImportSupplyRequest { cell: Some(cell) }, (id, *fields))
        })
        .unzip();
    let sum = c
        .import(tokio_stream::iter(items))
        .await
        .unwrap()
        .into_inner();
    judge_import(&sum, &expected, &mut failures);

    if node.head_seq() != 0 {
        failures.push(format!(
            "head_seq {} after imports of bad items only",
            node.head_seq()
        ));
    }
    assert_no_failures(failures);
}

#[tokio::test]
async fn one_bad_item_among_good_ones_keeps_its_paths() {
    let node = TestNode::start("be.vdab").await;
    let mut c = node.vacancies("publisher").await;
    let mut bad = full_vacancy("X-2");
    bad.skills[2].esco_uri = bad.skills[1].esco_uri.clone();
    bad.closes_on = "2026-01-01".into();
    let items = [full_vacancy("X-1"), bad.clone(), full_vacancy("X-3")]
        .into_iter()
        .map(|v| pb::ImportVacancyRequest { vacancy: Some(v) });
    let sum = c
        .import(tokio_stream::iter(items))
        .await
        .unwrap()
        .into_inner();
    let put = put_vacancy(&mut c, bad).await.unwrap_err();
    assert_eq!(
        item_error_fields(&sum.results[1]),
        Some(distinct_fields(&put))
    );
    assert_eq!(
        distinct_fields(&put),
        set(&["vacancy.skills[2]", "vacancy.closes_on"])
    );
    assert_eq!((sum.written, sum.rejected), (2, 1));
    assert_eq!(node.head_seq(), 2);
}

// ---------------------------------------------------------------- configured minimum cell size

#[tokio::test]
async fn a_larger_minimum_cell_size_is_enforced() {
    let mut node = TestNode::start("tg.anpe").await;
    let path = node.init.config.clone();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("min_cell_size = 5"));
    std::fs::write(
        &path,
        text.replace("min_cell_size = 5", "min_cell_size = 10"),
    )
    .unwrap();
    node.restart().await;
    let mut c = node.supply("publisher").await;

    let cell = |id: &str, registered: u64, willing: u64| {
        let mut x = full_supply(id);
        x.registered_jobseekers = registered;
        x.willing_to_migrate = willing;
        x
    };
    let s = put_cell(&mut c, cell("C-7", 7, 0)).await.unwrap_err();
    assert_eq!(distinct_fields(&s), set(&["cell.registered_jobseekers"]));
    let s = put_cell(&mut c, cell("C-9", 20, 9)).await.unwrap_err();
    assert_eq!(distinct_fields(&s), set(&["cell.willing_to_migrate"]));
    assert_eq!(node.head_seq(), 0);
    assert_eq!(
        put_cell(&mut c, cell("C-10", 10, 10))
            .await
            .unwrap()
            .revision,
        1
    );
    assert_eq!(
        put_cell(&mut c, cell("C-0", 0, 0)).await.unwrap().revision,
        1
    );
}

// ---------------------------------------------------------------- regressions

#[tokio::test]
async fn repeated_cause_after_an_unspecified_one_is_reported_on_its_own_index() {
    use pb::ShortageCause as Ca;
    let node = TestNode::start("be.vdab").await;
    let mut c = node.shortages("publisher").await;
    let mut s = full_shortage("S-1");
    s.causes = vec![
        Ca::Unspecified as i32,
        Ca::Quantitative as i32,
        Ca::Quantitative as i32,
    ];
    let e = put_shortage(&mut c, s).await.unwrap_err();
    assert_eq!(
        distinct_fields(&e),
        set(&["shortage.causes[0]", "shortage.causes[2]"])
    );
}

#[tokio::test]
async fn an_unknown_enum_number_is_reported_once() {
    let node = TestNode::start("be.vdab").await;
    let mut c = node.vacancies("publisher").await;
    let mut v = full_vacancy("E-1");
    v.languages[0].level = 99;
    salary(&mut v).period = 99;
    let e = put_vacancy(&mut c, v).await.unwrap_err();
    let all: Vec<String> = violations_of(&e).into_iter().map(|(f, _)| f).collect();
    assert_eq!(all, ["vacancy.salary.period", "vacancy.languages[0].level"]);
}

// ---------------------------------------------------------------- properties

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// Titles of 0 to 320 characters (multibyte included), sometimes with one control character:
/// accepted exactly when 1..=300 characters of plain text, and stored as sent.
#[test]
fn title_length_and_plain_text_property() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let node = rt.block_on(TestNode::start("be.vdab"));
    let client = rt.block_on(node.vacancies("publisher"));
    let counter = AtomicUsize::new(0);

    let chars = prop::sample::select(vec![
        'a', 'Z', '7', ' ', 'é', 'ŋ', '東', '😀', '\u{a0}', '-',
    ]);
    // the boundaries often, anything up to 320 otherwise
    let len = prop_oneof![
        2 => prop::sample::select(vec![0usize, 1, 2, 299, 300, 301]),
        1 => 0usize..=320,
    ];
    let control = prop::option::weighted(
        0.25,
        (
            any::<prop::sample::Index>(),
            prop::sample::select(vec!['\n', '\t', '\u{0}', '\u{7f}', '\u{85}']),
        ),
    );
    let strategy = (
        len.prop_flat_map(move |n| prop::collection::vec(chars.clone(), n)),
        control,
    );

    let result = runner(64).run(&strategy, |(body, control)| {
        let mut title: String = body.iter().collect();
        let has_control = control.is_some();
        if let Some((at, c)) = control {
            let mut cs: Vec<char> = title.chars().collect();
            cs.insert(at.index(cs.len() + 1), c);
            title = cs.into_iter().collect();
        }
        let n = title.chars().count();
        let valid = (1..=300).contains(&n) && !has_control;
        let id = format!("T-{}", counter.fetch_add(1, Ordering::Relaxed));
        let mut v = full_vacancy(&id);
        v.title = title.clone();
        let mut c = client.clone();
        let r = rt.block_on(put_vacancy(&mut c, v));
        if valid {
            let r = r.map_err(|e| TestCaseError::fail(format!("{n} chars refused: {e:?}")))?;
            prop_assert_eq!(r.revision, 1);
            let got = rt
                .block_on(c.get(pb::GetVacancyRequest {
                    origin: String::new(),
                    id,
                }))
                .unwrap()
                .into_inner();
            prop_assert_eq!(got.title, title);
        } else {
            let e = match r {
                Ok(ok) => return Err(TestCaseError::fail(format!("{n} chars accepted: {ok:?}"))),
                Err(e) => e,
            };
            prop_assert_eq!(e.code(), Code::InvalidArgument);
            prop_assert_eq!(distinct_fields(&e), set(&["vacancy.title"]));
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The fields a supply cell's counts break, from the rules of section 1 (minimum cell size `min`).
fn count_violations(registered: u64, willing: u64, suppressed: bool, min: u64) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let small = |n: u64| n > 0 && n < min;
    if suppressed {
        if registered != 0 {
            out.insert("cell.registered_jobseekers".to_string());
        }
        if willing != 0 {
            out.insert("cell.willing_to_migrate".to_string());
        }
    } else {
        if small(registered) {
            out.insert("cell.registered_jobseekers".to_string());
        }
        if small(willing) || willing > registered {
            out.insert("cell.willing_to_migrate".to_string());
        }
    }
    out
}

/// Random counts against the minimum cell size, suppression and willing ≤ registered.
#[test]
fn supply_counts_property() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let node = rt.block_on(TestNode::start("tg.anpe"));
    let client = rt.block_on(node.supply("publisher"));
    let counter = AtomicUsize::new(0);
    let count = || prop_oneof![3 => 0u64..=7, 1 => Just(0u64), 1 => 5u64..=100_000];
    let strategy = (count(), count(), prop::bool::weighted(0.25));

    let result = runner(64).run(&strategy, |(registered, willing, suppressed)| {
        let id = format!("P-{}", counter.fetch_add(1, Ordering::Relaxed));
        let mut cell = full_supply(&id);
        cell.registered_jobseekers = registered;
        cell.willing_to_migrate = willing;
        cell.suppressed = suppressed;
        let expected = count_violations(registered, willing, suppressed, 5);
        let head = node.head_seq();
        let mut c = client.clone();
        match rt.block_on(put_cell(&mut c, cell)) {
            Ok(r) => {
                prop_assert!(expected.is_empty(), "accepted, expected {:?}", expected);
                prop_assert_eq!((r.revision, r.changed), (1, true));
                prop_assert_eq!(node.head_seq(), head + 1);
            }
            Err(e) => {
                prop_assert_eq!(e.code(), Code::InvalidArgument);
                prop_assert_eq!(distinct_fields(&e), expected);
                prop_assert_eq!(node.head_seq(), head);
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Periods built from a year and an optional quarter or month, some out of range:
/// accepted exactly when YYYY (1990..2100), YYYY-Q1..4 or YYYY-01..12.
#[test]
fn supply_period_property() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let node = rt.block_on(TestNode::start("tg.anpe"));
    let client = rt.block_on(node.supply("publisher"));
    let counter = AtomicUsize::new(0);
    #[derive(Debug, Clone)]
    enum Part {
        Year,
        Quarter(u32),
        Month(u32),
    }
    let part = prop_oneof![
        Just(Part::Year),
        (0u32..=6).prop_map(Part::Quarter),
        (0u32..=14).prop_map(Part::Month),
    ];
    let year = prop_oneof![
        prop::sample::select(vec![1989u32, 1990, 2026, 2100, 2101]),
        1985u32..=2105,
    ];
    let strategy = (year, part);

    let result = runner(64).run(&strategy, |(year, part)| {
        let (period, valid_part) = match part {
            Part::Year => (format!("{year}"), true),
            Part::Quarter(q) => (format!("{year}-Q{q}"), (1..=4).contains(&q)),
            Part::Month(m) => (format!("{year}-{m:02}"), (1..=12).contains(&m)),
        };
        let valid = valid_part && (1990..=2100).contains(&year);
        let id = format!("Q-{}", counter.fetch_add(1, Ordering::Relaxed));
        let mut cell = full_supply(&id);
        cell.period = period.clone();
        let mut c = client.clone();
        match rt.block_on(put_cell(&mut c, cell)) {
            Ok(_) => prop_assert!(valid, "{} accepted", period),
            Err(e) => {
                prop_assert!(!valid, "{} refused: {:?}", period, e);
                prop_assert_eq!(distinct_fields(&e), set(&["cell.period"]));
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
