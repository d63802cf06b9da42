//! Conversion between wire messages (`pb`) and the domain model, at the edge.
//!
//! proto3 enums arrive as integers: an unknown number or a required enum
//! left unspecified becomes a field violation here, reported together with
//! the model's own validation.

use passerelle_model as m;
use passerelle_model::Violations;

use crate::pb::v1 as pb;

fn ts(micros: i64) -> Option<prost_types::Timestamp> {
    (micros != 0).then(|| prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1000) as i32,
    })
}

/// Decodes an optional enum: 0 is "unspecified" (None); an unknown number is a violation.
fn opt_enum<P, D>(
    v: &mut Violations,
    field: impl FnOnce() -> String,
    raw: i32,
    map: impl FnOnce(P) -> Option<D>,
) -> Option<D>
where
    P: TryFrom<i32>,
{
    if raw == 0 {
        return None;
    }
    match P::try_from(raw).ok().and_then(map) {
        Some(d) => Some(d),
        None => {
            v.push(field(), format!("unknown enum value {raw}"));
            None
        }
    }
}

fn occupation_in(o: Option<pb::Occupation>) -> m::Occupation {
    let o = o.unwrap_or_default();
    m::Occupation {
        isco08: o.isco08,
        esco_uri: o.esco_uri,
    }
}

fn occupation_out(o: &m::Occupation) -> Option<pb::Occupation> {
    Some(pb::Occupation {
        isco08: o.isco08.clone(),
        esco_uri: o.esco_uri.clone(),
    })
}

fn skills_in(s: Vec<pb::Skill>) -> Vec<m::Skill> {
    s.into_iter()
        .map(|s| m::Skill {
            esco_uri: s.esco_uri,
            label: s.label,
            essential: s.essential,
        })
        .collect()
}

fn skills_out(s: &[m::Skill]) -> Vec<pb::Skill> {
    s.iter()
        .map(|s| pb::Skill {
            esco_uri: s.esco_uri.clone(),
            label: s.label.clone(),
            essential: s.essential,
        })
        .collect()
}

fn status_in(v: &mut Violations, field: &str, raw: i32) -> m::VacancyStatus {
    use pb::VacancyStatus as P;
    if raw == 0 {
        v.push(field, "required (OPEN, FILLED, WITHDRAWN or EXPIRED)");
        return m::VacancyStatus::Open;
    }
    opt_enum(
        v,
        || field.to_owned(),
        raw,
        |p: P| match p {
            P::Unspecified => None,
            P::Open => Some(m::VacancyStatus::Open),
            P::Filled => Some(m::VacancyStatus::Filled),
            P::Withdrawn => Some(m::VacancyStatus::Withdrawn),
            P::Expired => Some(m::VacancyStatus::Expired),
        },
    )
    .unwrap_or(m::VacancyStatus::Open)
}

pub fn status_out(s: m::VacancyStatus) -> pb::VacancyStatus {
    match s {
        m::VacancyStatus::Open => pb::VacancyStatus::Open,
        m::VacancyStatus::Filled => pb::VacancyStatus::Filled,
        m::VacancyStatus::Withdrawn => pb::VacancyStatus::Withdrawn,
        m::VacancyStatus::Expired => pb::VacancyStatus::Expired,
    }
}

/// A status filter value: unspecified or unknown numbers are violations.
pub fn status_filter(v: &mut Violations, field: String, raw: i32) -> Option<m::VacancyStatus> {
    let s = status_in(v, &field, raw);
    (raw != 0 && pb::VacancyStatus::try_from(raw).is_ok()).then_some(s)
}

fn cause_in(v: &mut Violations, field: String, raw: i32) -> Option<m::ShortageCause> {
    use pb::ShortageCause as P;
    if raw == 0 {
        v.push(
            field,
            "must be QUANTITATIVE, QUALITATIVE or WORKING_CONDITIONS",
        );
        return None;
    }
    opt_enum(
        v,
        || field,
        raw,
        |p: P| match p {
            P::Unspecified => None,
            P::Quantitative => Some(m::ShortageCause::Quantitative),
            P::Qualitative => Some(m::ShortageCause::Qualitative),
            P::WorkingConditions => Some(m::ShortageCause::WorkingConditions),
        },
    )
}

pub fn cause_out(c: m::ShortageCause) -> pb::ShortageCause {
    match c {
        m::ShortageCause::Quantitative => pb::ShortageCause::Quantitative,
        m::ShortageCause::Qualitative => pb::ShortageCause::Qualitative,
        m::ShortageCause::WorkingConditions => pb::ShortageCause::WorkingConditions,
    }
}

/// Wire vacancy → domain, with the violations conversion found (path prefix `prefix`).
pub fn vacancy_in(p: pb::Vacancy, prefix: &str) -> (m::Vacancy, Violations) {
    let mut v = Violations::new();
    let f = |name: &str| format!("{prefix}.{name}");
    let status = status_in(&mut v, &f("status"), p.status);
    let contract = opt_enum(
        &mut v,
        || f("contract"),
        p.contract,
        |c: pb::Contract| {
            use pb::Contract as P;
            match c {
                P::Unspecified => None,
                P::Permanent => Some(m::Contract::Permanent),
                P::FixedTerm => Some(m::Contract::FixedTerm),
                P::Temporary => Some(m::Contract::Temporary),
                P::Seasonal => Some(m::Contract::Seasonal),
                P::Apprenticeship => Some(m::Contract::Apprenticeship),
                P::Internship => Some(m::Contract::Internship),
                P::Other => Some(m::Contract::Other),
            }
        },
    );
    let schedule = opt_enum(
        &mut v,
        || f("schedule"),
        p.schedule,
        |s: pb::Schedule| {
            use pb::Schedule as P;
            match s {
                P::Unspecified => None,
                P::FullTime => Some(m::Schedule::FullTime),
                P::PartTime => Some(m::Schedule::PartTime),
                P::Flexible => Some(m::Schedule::Flexible),
            }
        },
    );
    let salary = p.salary.map(|s| m::Salary {
        min: s.min,
        max: s.max,
        currency: s.currency,
        period: opt_enum(
            &mut v,
            || f("salary.period"),
            s.period,
            |x: pb::SalaryPeriod| {
                use pb::SalaryPeriod as P;
                match x {
                    P::Unspecified => None,
                    P::Hour => Some(m::SalaryPeriod::Hour),
                    P::Day => Some(m::SalaryPeriod::Day),
                    P::Week => Some(m::SalaryPeriod::Week),
                    P::Month => Some(m::SalaryPeriod::Month),
                    P::Year => Some(m::SalaryPeriod::Year),
                }
            },
        ),
    });
    let languages = p
        .languages
        .into_iter()
        .enumerate()
        .map(|(i, l)| m::LanguageRequirement {
            code: l.code,
            level: opt_enum(
                &mut v,
                || f(&format!("languages[{i}].level")),
                l.level,
                |x: pb::CefrLevel| {
                    use pb::CefrLevel as P;
                    match x {
                        P::Unspecified => None,
                        P::A1 => Some(m::CefrLevel::A1),
                        P::A2 => Some(m::CefrLevel::A2),
                        P::B1 => Some(m::CefrLevel::B1),
                        P::B2 => Some(m::CefrLevel::B2),
                        P::C1 => Some(m::CefrLevel::C1),
                        P::C2 => Some(m::CefrLevel::C2),
                    }
                },
            ),
        })
        .collect();
    let loc = p.location.unwrap_or_default();
    let vac = m::Vacancy {
        id: p.id,
        origin: p.origin,
        revision: 0,
        status,
        title: p.title,
        description: p.description,
        language: p.language,
        occupation: occupation_in(p.occupation),
        skills: skills_in(p.skills),
        location: m::Location {
            country: loc.country,
            subdivision: loc.subdivision,
            nuts: loc.nuts,
            locality: loc.locality,
        },
        employer_name: p.employer_name,
        contract,
        schedule,
        positions: p.positions,
        salary,
        languages,
        isced_level: p.isced_level,
        experience_months: p.experience_months,
        posted_on: p.posted_on,
        closes_on: p.closes_on,
        open_to_international: p.open_to_international,
        programmes: p.programmes,
        updated_at_micros: 0,
    };
    (vac, v)
}

pub fn vacancy_out(d: &m::Vacancy) -> pb::Vacancy {
    pb::Vacancy {
        id: d.id.clone(),
        origin: d.origin.clone(),
        revision: d.revision,
        status: status_out(d.status) as i32,
        title: d.title.clone(),
        description: d.description.clone(),
        language: d.language.clone(),
        occupation: occupation_out(&d.occupation),
        skills: skills_out(&d.skills),
        location: Some(pb::Location {
            country: d.location.country.clone(),
            subdivision: d.location.subdivision.clone(),
            nuts: d.location.nuts.clone(),
            locality: d.location.locality.clone(),
        }),
        employer_name: d.employer_name.clone(),
        contract: d.contract.map_or(0, |c| match c {
            m::Contract::Permanent => pb::Contract::Permanent,
            m::Contract::FixedTerm => pb::Contract::FixedTerm,
            m::Contract::Temporary => pb::Contract::Temporary,
            m::Contract::Seasonal => pb::Contract::Seasonal,
            m::Contract::Apprenticeship => pb::Contract::Apprenticeship,
            m::Contract::Internship => pb::Contract::Internship,
            m::Contract::Other => pb::Contract::Other,
        } as i32),
        schedule: d.schedule.map_or(0, |s| match s {
            m::Schedule::FullTime => pb::Schedule::FullTime,
            m::Schedule::PartTime => pb::Schedule::PartTime,
            m::Schedule::Flexible => pb::Schedule::Flexible,
        } as i32),
        positions: d.positions,
        salary: d.salary.as_ref().map(|s| pb::Salary {
            min: s.min,
            max: s.max,
            currency: s.currency.clone(),
            period: s.period.map_or(0, |p| match p {
                m::SalaryPeriod::Hour => pb::SalaryPeriod::Hour,
                m::SalaryPeriod::Day => pb::SalaryPeriod::Day,
                m::SalaryPeriod::Week => pb::SalaryPeriod::Week,
                m::SalaryPeriod::Month => pb::SalaryPeriod::Month,
                m::SalaryPeriod::Year => pb::SalaryPeriod::Year,
            } as i32),
        }),
        languages: d
            .languages
            .iter()
            .map(|l| pb::LanguageRequirement {
                code: l.code.clone(),
                level: l.level.map_or(0, |x| match x {
                    m::CefrLevel::A1 => pb::CefrLevel::A1,
                    m::CefrLevel::A2 => pb::CefrLevel::A2,
                    m::CefrLevel::B1 => pb::CefrLevel::B1,
                    m::CefrLevel::B2 => pb::CefrLevel::B2,
                    m::CefrLevel::C1 => pb::CefrLevel::C1,
                    m::CefrLevel::C2 => pb::CefrLevel::C2,
                } as i32),
            })
            .collect(),
        isced_level: d.isced_level,
        experience_months: d.experience_months,
        posted_on: d.posted_on.clone(),
        closes_on: d.closes_on.clone(),
        open_to_international: d.open_to_international,
        programmes: d.programmes.clone(),
        updated_at: ts(d.updated_at_micros),
    }
}

pub fn shortage_in(p: pb::Shortage, prefix: &str) -> (m::Shortage, Violations) {
    let mut v = Violations::new();
    let decoded: Vec<Option<m::ShortageCause>> = p
        .causes
        .iter()
        .enumerate()
        .map(|(i, raw)| cause_in(&mut v, format!("{prefix}.causes[{i}]"), *raw))
        .collect();
    let causes = if decoded.iter().all(Option::is_some) {
        // the model reports repeats, with the same indices as the request
        decoded.into_iter().flatten().collect()
    } else {
        // indices shift once bad values are dropped: report repeats here, by request index
        let mut kept = Vec::new();
        for (i, c) in decoded.iter().enumerate() {
            let Some(c) = c else { continue };
            match decoded[..i].iter().position(|d| d.as_ref() == Some(c)) {
                Some(first) => v.push(
                    format!("{prefix}.causes[{i}]"),
                    format!("duplicate of {prefix}.causes[{first}]"),
                ),
                None => kept.push(*c),
            }
        }
        kept
    };
    let s = m::Shortage {
        id: p.id,
        origin: p.origin,
        revision: 0,
        list: p.list,
        year: p.year,
        country: p.country,
        subdivision: p.subdivision,
        occupation: occupation_in(p.occupation),
        national_code: p.national_code,
        causes,
        skills: skills_in(p.skills),
        unfilled_vacancies: p.unfilled_vacancies,
        median_days_open: p.median_days_open,
        jobseekers_per_100_vacancies: p.jobseekers_per_100_vacancies,
        updated_at_micros: 0,
    };
    (s, v)
}

pub fn shortage_out(d: &m::Shortage) -> pb::Shortage {
    pb::Shortage {
        id: d.id.clone(),
        origin: d.origin.clone(),
        revision: d.revision,
        list: d.list.clone(),
        year: d.year,
        country: d.country.clone(),
        subdivision: d.subdivision.clone(),
        occupation: occupation_out(&d.occupation),
        national_code: d.national_code.clone(),
        causes: d.causes.iter().map(|c| cause_out(*c) as i32).collect(),
        skills: skills_out(&d.skills),
        unfilled_vacancies: d.unfilled_vacancies,
        median_days_open: d.median_days_open,
        jobseekers_per_100_vacancies: d.jobseekers_per_100_vacancies,
        updated_at: ts(d.updated_at_micros),
    }
}

pub fn supply_in(p: pb::SupplyCell) -> (m::SupplyCell, Violations) {
    let c = m::SupplyCell {
        id: p.id,
        origin: p.origin,
        revision: 0,
        period: p.period,
        country: p.country,
        subdivision: p.subdivision,
        occupation: occupation_in(p.occupation),
        isced_level: p.isced_level,
        registered_jobseekers: p.registered_jobseekers,
        willing_to_migrate: p.willing_to_migrate,
        suppressed: p.suppressed,
        updated_at_micros: 0,
    };
    (c, Violations::new())
}

pub fn supply_out(d: &m::SupplyCell) -> pb::SupplyCell {
    pb::SupplyCell {
        id: d.id.clone(),
        origin: d.origin.clone(),
        revision: d.revision,
        period: d.period.clone(),
        country: d.country.clone(),
        subdivision: d.subdivision.clone(),
        occupation: occupation_out(&d.occupation),
        isced_level: d.isced_level,
        registered_jobseekers: d.registered_jobseekers,
        willing_to_migrate: d.willing_to_migrate,
        suppressed: d.suppressed,
        updated_at: ts(d.updated_at_micros),
    }
}

/// The wire form of any record, as the CLI and services exchange it.
pub fn record_in(kind_record: WireRecord, prefix: &str) -> (m::Record, Violations) {
    match kind_record {
        WireRecord::Vacancy(p) => {
            let (r, v) = vacancy_in(p, prefix);
            (m::Record::Vacancy(r), v)
        }
        WireRecord::Shortage(p) => {
            let (r, v) = shortage_in(p, prefix);
            (m::Record::Shortage(r), v)
        }
        WireRecord::Supply(p) => {
            let (r, v) = supply_in(p);
            (m::Record::Supply(r), v)
        }
    }
}

/// Records move through here one at a time, so the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum WireRecord {
    Vacancy(pb::Vacancy),
    Shortage(pb::Shortage),
    Supply(pb::SupplyCell),
}

pub fn record_out(r: &m::Record) -> WireRecord {
    match r {
        m::Record::Vacancy(v) => WireRecord::Vacancy(vacancy_out(v)),
        m::Record::Shortage(s) => WireRecord::Shortage(shortage_out(s)),
        m::Record::Supply(c) => WireRecord::Supply(supply_out(c)),
    }
}

/// Violations as a `google.rpc.BadRequest` message (for Import item results).
pub fn bad_request(v: &Violations) -> crate::pb::rpc::BadRequest {
    crate::pb::rpc::BadRequest {
        field_violations: v
            .iter()
            .map(|x| crate::pb::rpc::bad_request::FieldViolation {
                field: x.field.clone(),
                description: x.description.clone(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_missing_enums_are_violations() {
        let p = pb::Vacancy {
            status: 0,
            contract: 99,
            languages: vec![pb::LanguageRequirement {
                code: "fr".into(),
                level: 42,
            }],
            ..Default::default()
        };
        let (_, v) = vacancy_in(p, "vacancy");
        let fields: Vec<_> = v.iter().map(|x| x.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "vacancy.status",
                "vacancy.contract",
                "vacancy.languages[0].level"
            ]
        );
    }

    #[test]
    fn timestamps_keep_micros() {
        let t = ts(1_700_000_000_123_456).unwrap();
        assert_eq!(t.seconds, 1_700_000_000);
        assert_eq!(t.nanos, 123_456_000);
        assert!(ts(0).is_none());
    }
}
