//! Valid records of each kind for the simulated workload, varied by a number so that
//! updates change content and equal numbers give equal content (no-op puts).

use passerelle_model::{
    CefrLevel, Contract, Date, LanguageRequirement, Location, Occupation, Record, Salary,
    SalaryPeriod, Schedule, Shortage, ShortageCause, Skill, SupplyCell, Vacancy, VacancyStatus,
};

/// The date the simulated expiry sweeps run on (fixed: the run must not depend on the clock).
pub fn sweep_day() -> Date {
    Date::from_ymd(2026, 6, 1).expect("valid date")
}

/// `closes_on` of vacancies that the sweep expires, and of those it leaves alone.
pub const CLOSES_PAST: &str = "2026-05-31";
pub const CLOSES_LATER: &str = "2099-12-31";

const ISCO_UNITS: [&str; 6] = ["2221", "7411", "7212", "8332", "5120", "7126"];

fn skills(n: usize) -> Vec<Skill> {
    passerelle_refdata::esco_skills()
        .iter()
        .take(n)
        .enumerate()
        .map(|(i, s)| Skill {
            esco_uri: s.uri.to_owned(),
            label: s.label.to_owned(),
            essential: i == 0,
        })
        .collect()
}

/// Where an agency's records are located (country and an optional subdivision).
fn place(agency: &str) -> (&'static str, &'static str) {
    match agency {
        "be.vdab" => ("BE", "BE-VAN"),
        "tg.anpe" => ("TG", "TG-M"),
        _ => ("FR", ""),
    }
}

pub fn vacancy(
    agency: &str,
    id: &str,
    variant: u64,
    status: VacancyStatus,
    expiring: bool,
) -> Record {
    let (country, subdivision) = place(agency);
    Record::Vacancy(Vacancy {
        id: id.into(),
        origin: String::new(),
        revision: 0,
        status,
        title: format!("Lasser TIG/MIG {variant}"),
        description: "Lassen van constructies.\nOpleiding voorzien.".into(),
        language: "nl-BE".into(),
        occupation: Occupation {
            isco08: ISCO_UNITS[(variant % 6) as usize].into(),
            esco_uri: String::new(),
        },
        skills: skills(1 + (variant % 3) as usize),
        location: Location {
            country: country.into(),
            subdivision: subdivision.into(),
            nuts: String::new(),
            locality: "Centre".into(),
        },
        employer_name: "Staalbouw nv".into(),
        contract: Some(Contract::Permanent),
        schedule: Some(Schedule::FullTime),
        positions: 1 + (variant % 5) as u32,
        salary: Some(Salary {
            min: 2600.0,
            max: 3400.5,
            currency: "EUR".into(),
            period: Some(SalaryPeriod::Month),
        }),
        languages: vec![LanguageRequirement {
            code: "nl".into(),
            level: Some(CefrLevel::B1),
        }],
        isced_level: Some((variant % 9) as u32),
        experience_months: (variant % 61) as u32,
        posted_on: "2026-03-01".into(),
        closes_on: if expiring { CLOSES_PAST } else { CLOSES_LATER }.into(),
        open_to_international: variant.is_multiple_of(2),
        programmes: vec!["be-tg-circular-2026".into()],
        updated_at_micros: 0,
    })
}

pub fn shortage(agency: &str, id: &str, variant: u64) -> Record {
    let (country, _) = place(agency);
    Record::Shortage(Shortage {
        id: id.into(),
        origin: String::new(),
        revision: 0,
        list: format!("{}-shortages", agency.replace('.', "-")),
        year: 2026,
        country: country.into(),
        subdivision: String::new(),
        occupation: Occupation {
            isco08: ISCO_UNITS[(variant % 6) as usize].into(),
            esco_uri: String::new(),
        },
        national_code: format!("K-{variant}"),
        causes: vec![ShortageCause::Quantitative],
        skills: skills(2),
        unfilled_vacancies: Some(100 + variant as u32),
        median_days_open: Some(87),
        jobseekers_per_100_vacancies: Some(63.5),
        updated_at_micros: 0,
    })
}

pub fn supply(agency: &str, id: &str, variant: u64) -> Record {
    let (country, _) = place(agency);
    Record::Supply(SupplyCell {
        id: id.into(),
        origin: String::new(),
        revision: 0,
        period: "2026-Q3".into(),
        country: country.into(),
        subdivision: String::new(),
        occupation: Occupation {
            isco08: "72".into(),
            esco_uri: String::new(),
        },
        isced_level: Some(3),
        registered_jobseekers: 120 + variant,
        willing_to_migrate: 45,
        suppressed: false,
        updated_at_micros: 0,
    })
}
