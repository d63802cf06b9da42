//! Hand-checked examples of every query, on a small fixture whose numbers are worked out in
//! the comments.

use passerelle_model::{
    Date, Occupation, Record, RecordKey, Shortage, ShortageCause, Skill, SupplyCell, Vacancy,
    VacancyStatus,
};

use crate::{Analytics, DemandQuery, Figure, GapRow, OccupationRow, SkillRow, TrendRow};

use ShortageCause::{Qualitative as QL, Quantitative as QN, WorkingConditions as WC};

// URI order: JAVA < SQL < ENG < PY
const JAVA: &str = "http://data.europa.eu/esco/skill/19a8293b-8e95-4de3-983f-77484079c389";
const SQL: &str = "http://data.europa.eu/esco/skill/598de5b0-5b58-4ea7-8058-a4bc4d18c742";
const ENG: &str = "http://data.europa.eu/esco/skill/6d3edede-8951-4621-a835-e04323300fa0";
const PY: &str = "http://data.europa.eu/esco/skill/ccd0a1d9-afda-43d9-b901-96344886e14d";

fn d(s: &str) -> Date {
    Date::parse(s).unwrap()
}

fn key(s: &str) -> RecordKey {
    s.parse().unwrap()
}

/// The roll day of the fixture.
const T: &str = "2026-03-10";

fn skill(uri: &str, label: &str, essential: bool) -> Skill {
    Skill {
        esco_uri: uri.into(),
        label: label.into(),
        essential,
    }
}

#[allow(clippy::too_many_arguments)]
fn vacancy(
    key: &RecordKey,
    status: VacancyStatus,
    isco: &str,
    (country, sub): (&str, &str),
    intl: bool,
    positions: u32,
    (posted, closes): (&str, &str),
    skills: Vec<Skill>,
) -> Record {
    Record::Vacancy(Vacancy {
        id: key.id.clone(),
        origin: key.origin.to_string(),
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
        location: passerelle_model::Location {
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
        posted_on: posted.into(),
        closes_on: closes.into(),
        open_to_international: intl,
        programmes: Vec::new(),
        updated_at_micros: 0,
    })
}

#[allow(clippy::too_many_arguments)]
fn shortage(
    key: &RecordKey,
    list: &str,
    year: u32,
    (country, sub): (&str, &str),
    isco: &str,
    national_code: &str,
    causes: Vec<ShortageCause>,
    skills: Vec<Skill>,
) -> Record {
    Record::Shortage(Shortage {
        id: key.id.clone(),
        origin: key.origin.to_string(),
        revision: 1,
        list: list.into(),
        year,
        country: country.into(),
        subdivision: sub.into(),
        occupation: Occupation {
            isco08: isco.into(),
            esco_uri: String::new(),
        },
        national_code: national_code.into(),
        causes,
        skills,
        unfilled_vacancies: None,
        median_days_open: None,
        jobseekers_per_100_vacancies: None,
        updated_at_micros: 0,
    })
}

fn cell(key: &RecordKey, period: &str, isco: &str, counts: Option<(u64, u64)>) -> Record {
    let (registered, willing) = counts.unwrap_or((0, 0));
    Record::Supply(SupplyCell {
        id: key.id.clone(),
        origin: key.origin.to_string(),
        revision: 1,
        period: period.into(),
        country: "TG".into(),
        subdivision: String::new(),
        occupation: Occupation {
            isco08: isco.into(),
            esco_uri: String::new(),
        },
        isced_level: None,
        registered_jobseekers: registered,
        willing_to_migrate: willing,
        suppressed: counts.is_none(),
        updated_at_micros: 0,
    })
}

fn put(a: &Analytics, r: Record) {
    a.apply(&r.key().unwrap(), Some(&r));
}

/// Vacancies (open at T = 2026-03-10 marked *):
/// - V1* vdab   2512 BE-VAN intl pos 2 03-01..03-31  JAVA ess "Java", SQL "SQL"
/// - V2* vdab   2512 BE-VOV      pos 1 02-15..       JAVA ess "Java (programmeren)", PY ess "Python"
/// - V3  vdab   2511 BE-BRU intl pos 3 03-05..03-09  SQL ess "SQL"          (closed on 03-09)
/// - V4  vdab   2512 BE-VAN intl pos 5 01-10..       JAVA "Java"            (FILLED)
/// - V5* forem  7212 BE     intl pos 4 03-10..04-10  ENG (no label)
/// - V6* france 2512 FR-75       pos 1 03-02..       JAVA ess "Java"
/// - V7  vdab   2512 BE-VAN intl pos 1 03-20..       JAVA "Java", SQL "structured query language", PY "python"
///
/// Shortage lines: S1 BE 2026 vdab 2512 {QN,QL}; S2 BE 2026 vdab 7212 BE-VLG {WC};
/// S3 BE 2025 vdab 2511 {QL}; S4 BE 2026 forem 2512 BE-WAL {WC}; S5 FR 2025 2512 {QN}.
///
/// Supply cells of TG: 2025-Q4: 2512 40/10, 7212 suppressed, 9112 12/5 and 8/0, "25" 100/30,
/// 7214 0/0; older periods: 2025 (2512 999/0), 2025-09 (2512 77/0).
fn fixture() -> Analytics {
    let a = Analytics::with_day(d(T));
    use VacancyStatus::*;
    let k = |id: &str| key(&format!("be.vdab/vacancy/{id}"));
    put(
        &a,
        vacancy(
            &k("V1"),
            Open,
            "2512",
            ("BE", "BE-VAN"),
            true,
            2,
            ("2026-03-01", "2026-03-31"),
            vec![skill(JAVA, "Java", true), skill(SQL, "SQL", false)],
        ),
    );
    put(
        &a,
        vacancy(
            &k("V2"),
            Open,
            "2512",
            ("BE", "BE-VOV"),
            false,
            1,
            ("2026-02-15", ""),
            vec![
                skill(JAVA, "Java (programmeren)", true),
                skill(PY, "Python", true),
            ],
        ),
    );
    put(
        &a,
        vacancy(
            &k("V3"),
            Open,
            "2511",
            ("BE", "BE-BRU"),
            true,
            3,
            ("2026-03-05", "2026-03-09"),
            vec![skill(SQL, "SQL", true)],
        ),
    );
    put(
        &a,
        vacancy(
            &k("V4"),
            Filled,
            "2512",
            ("BE", "BE-VAN"),
            true,
            5,
            ("2026-01-10", ""),
            vec![skill(JAVA, "Java", false)],
        ),
    );
    put(
        &a,
        vacancy(
            &key("be.forem/vacancy/V5"),
            Open,
            "7212",
            ("BE", ""),
            true,
            4,
            ("2026-03-10", "2026-04-10"),
            vec![skill(ENG, "", false)],
        ),
    );
    put(
        &a,
        vacancy(
            &key("fr.france-travail/vacancy/V6"),
            Open,
            "2512",
            ("FR", "FR-75"),
            false,
            1,
            ("2026-03-02", ""),
            vec![skill(JAVA, "Java", true)],
        ),
    );
    put(
        &a,
        vacancy(
            &k("V7"),
            Open,
            "2512",
            ("BE", "BE-VAN"),
            true,
            1,
            ("2026-03-20", ""),
            vec![
                skill(JAVA, "Java", false),
                skill(SQL, "structured query language", false),
                skill(PY, "python", false),
            ],
        ),
    );

    let vdab = "vdab-knelpuntberoepen";
    let s = |id: &str| key(&format!("be.vdab/shortage/{id}"));
    put(
        &a,
        shortage(
            &s("S1"),
            vdab,
            2026,
            ("BE", ""),
            "2512",
            "KB-1",
            vec![QN, QL],
            vec![skill(JAVA, "Java", true)],
        ),
    );
    put(
        &a,
        shortage(
            &s("S2"),
            vdab,
            2026,
            ("BE", "BE-VLG"),
            "7212",
            "KB-2",
            vec![WC],
            vec![],
        ),
    );
    put(
        &a,
        shortage(
            &s("S3"),
            vdab,
            2025,
            ("BE", ""),
            "2511",
            "KB-3",
            vec![QL],
            vec![],
        ),
    );
    put(
        &a,
        shortage(
            &key("be.forem/shortage/S4"),
            "forem-metiers-en-penurie",
            2026,
            ("BE", "BE-WAL"),
            "2512",
            "F-9",
            vec![WC],
            vec![],
        ),
    );
    put(
        &a,
        shortage(
            &key("fr.france-travail/shortage/S5"),
            "ft-tension",
            2025,
            ("FR", ""),
            "2512",
            "M1805",
            vec![QN],
            vec![],
        ),
    );

    let c = |id: &str| key(&format!("tg.anpe/supply/{id}"));
    put(&a, cell(&c("C1"), "2025-Q4", "2512", Some((40, 10))));
    put(&a, cell(&c("C2"), "2025-Q4", "7212", None));
    put(&a, cell(&c("C3"), "2025-Q4", "9112", Some((12, 5))));
    put(&a, cell(&c("C4"), "2025-Q4", "9112", Some((8, 0))));
    put(&a, cell(&c("C5"), "2025-Q4", "25", Some((100, 30))));
    put(&a, cell(&c("C6"), "2025-Q4", "7214", Some((0, 0))));
    put(&a, cell(&c("C7"), "2025", "2512", Some((999, 0))));
    put(&a, cell(&c("C8"), "2025-09", "2512", Some((77, 0))));
    a
}

fn srow(
    uri: &str,
    label: &str,
    vacancies: u64,
    positions: u64,
    essential: u64,
    share: f64,
) -> SkillRow {
    SkillRow {
        esco_uri: uri.into(),
        label: label.into(),
        vacancies,
        positions,
        essential,
        share,
    }
}

#[test]
fn skills_demand_at_the_roll_day() {
    let a = fixture();
    let q = DemandQuery::new(d(T));
    // open: V1, V2, V5, V6. JAVA: V1+V2+V6, positions 2+1+1, all essential.
    // SQL (V1), ENG (V5), PY (V2) tie at 1 and go by URI. Labels: JAVA "Java" has 5 votes
    // (V1 V4 V6 V7 S1) against 1; SQL "SQL" 2 to 1; ENG has none: reference data.
    let r = a.skills_demand(&q, 3);
    assert_eq!(r.matching_vacancies, 4);
    assert_eq!(
        r.rows,
        [
            srow(JAVA, "Java", 3, 4, 3, 0.75),
            srow(SQL, "SQL", 1, 2, 0, 0.25),
            srow(ENG, "English", 1, 4, 0, 0.25),
        ]
    );
    // PY: "Python" (V2) and "python" (V7) tie at one vote: the smaller string wins
    let r = a.skills_demand(&q, 10);
    assert_eq!(r.rows[3], srow(PY, "Python", 1, 1, 1, 0.25));
    assert!(a.skills_demand(&q, 0).rows.is_empty());
}

#[test]
fn skills_demand_on_other_paths() {
    let a = fixture();
    // as of 03-09: V1, V2, V3, V6 open (V3 closes that day, V5 is not posted yet)
    // SQL: V1 (2 positions) + V3 (3 positions, essential)
    let r = a.skills_demand(&DemandQuery::new(d("2026-03-09")), 10);
    assert_eq!(r.matching_vacancies, 4);
    assert_eq!(
        r.rows,
        [
            srow(JAVA, "Java", 3, 4, 3, 0.75),
            srow(SQL, "SQL", 2, 5, 1, 0.5),
            srow(PY, "Python", 1, 1, 1, 0.25),
        ]
    );
    // Flanders includes Antwerpen and Oost-Vlaanderen: V1 and V2
    let mut q = DemandQuery::new(d(T));
    q.subdivisions = vec!["BE-VLG".into()];
    let r = a.skills_demand(&q, 10);
    assert_eq!(r.matching_vacancies, 2);
    assert_eq!(
        r.rows,
        [
            srow(JAVA, "Java", 2, 3, 2, 1.0),
            srow(SQL, "SQL", 1, 2, 0, 0.5),
            srow(PY, "Python", 1, 1, 1, 0.5),
        ]
    );
    // ISCO prefix 72, international only: V5
    let mut q = DemandQuery::new(d(T));
    q.isco_prefix = "72".into();
    q.open_to_international = Some(true);
    let r = a.skills_demand(&q, 10);
    assert_eq!(r.matching_vacancies, 1);
    assert_eq!(r.rows, [srow(ENG, "English", 1, 4, 0, 1.0)]);
    // posted from 03-02: V5 and V6 (V1 posted 03-01, V2 02-15)
    let mut q = DemandQuery::new(d(T));
    q.posted_from = Some(d("2026-03-02"));
    let r = a.skills_demand(&q, 10);
    assert_eq!(r.matching_vacancies, 2);
    assert_eq!(
        r.rows,
        [
            srow(JAVA, "Java", 1, 1, 1, 0.5),
            srow(ENG, "English", 1, 4, 0, 0.5)
        ]
    );
}

fn orow(
    code: &str,
    label: &str,
    v: u64,
    p: u64,
    intl: u64,
    causes: &[ShortageCause],
) -> OccupationRow {
    OccupationRow {
        isco08: code.into(),
        label: label.into(),
        vacancies: v,
        positions: p,
        international: intl,
        shortage_causes: causes.to_vec(),
    }
}

#[test]
fn occupation_demand() {
    let a = fixture();
    // 2512: V1 V2 V6 (BE, BE, FR), positions 4, only V1 international; causes of BE 2026
    // (S1 QN QL, S4 WC) and FR 2025 (S5 QN). 7212: V5, BE 2026 S2 WC.
    let rows = a.occupation_demand(&DemandQuery::new(d(T)), 4);
    assert_eq!(
        rows,
        [
            orow("2512", "Software developers", 3, 4, 1, &[QN, QL, WC]),
            orow("7212", "Welders and flamecutters", 1, 4, 1, &[WC]),
        ]
    );
    // only France's vacancy: France's causes only (the vacancies' countries)
    let mut q = DemandQuery::new(d(T));
    q.origins = vec!["fr.france-travail".into()];
    assert_eq!(
        a.occupation_demand(&q, 4),
        [orow("2512", "Software developers", 1, 1, 0, &[QN])]
    );
    // the same vacancy with Belgium named in the filter too: the filter's countries count,
    // so Belgium's 2026 causes (S1 QN QL, S4 WC) join France's
    q.countries = vec!["BE".into(), "FR".into()];
    assert_eq!(
        a.occupation_demand(&q, 4),
        [orow("2512", "Software developers", 1, 1, 0, &[QN, QL, WC])]
    );
    // level 2, France named in the filter
    let mut q = DemandQuery::new(d(T));
    q.countries = vec!["FR".into()];
    assert_eq!(
        a.occupation_demand(&q, 2),
        [orow(
            "25",
            "Information and communications technology professionals",
            1,
            1,
            0,
            &[QN]
        )]
    );
    // level 1 in Belgium as of 03-09 (scan): V1 V2 V3 open, positions 2+1+3, V1 and V3
    // international; causes of BE's latest year (2026) under "2": S1 and S4
    let mut q = DemandQuery::new(d("2026-03-09"));
    q.countries = vec!["BE".into()];
    assert_eq!(
        a.occupation_demand(&q, 1),
        [orow("2", "Professionals", 3, 6, 2, &[QN, QL, WC])]
    );
    // a country filter names Togo too, which has no list: nothing more
    let mut q = DemandQuery::new(d(T));
    q.countries = vec!["BE".into(), "TG".into()];
    q.isco_prefix = "7".into();
    assert_eq!(
        a.occupation_demand(&q, 3),
        [orow(
            "721",
            "Sheet and structural metal workers, moulders and welders, and related workers",
            1,
            4,
            1,
            &[WC]
        )]
    );
}

#[test]
fn shortage_overview() {
    let a = fixture();
    // BE latest is 2026: S4 (2512 forem, BE-WAL: no open vacancy there), S1 (2512 vdab,
    // whole country: V1 V2, 3 positions), S2 (7212 in BE-VLG: V5 has no subdivision)
    let o = a.shortage_overview("BE", None, d(T));
    assert_eq!(o.year, 2026);
    let got: Vec<_> = o
        .rows
        .iter()
        .map(|r| {
            (
                r.isco08.as_str(),
                r.list.as_str(),
                r.subdivision.as_str(),
                r.national_code.as_str(),
                r.causes.clone(),
                r.open_vacancies,
                r.open_positions,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "2512",
                "forem-metiers-en-penurie",
                "BE-WAL",
                "F-9",
                vec![WC],
                0,
                0
            ),
            (
                "2512",
                "vdab-knelpuntberoepen",
                "",
                "KB-1",
                vec![QN, QL],
                2,
                3
            ),
            (
                "7212",
                "vdab-knelpuntberoepen",
                "BE-VLG",
                "KB-2",
                vec![WC],
                0,
                0
            ),
        ]
    );
    assert_eq!(o.rows[0].label, "Software developers");
    // 2025: S3 (2511); V3 is open on 03-09 only
    let o = a.shortage_overview("BE", Some(2025), d(T));
    assert_eq!(
        (o.year, o.rows.len(), o.rows[0].open_vacancies),
        (2025, 1, 0)
    );
    let o = a.shortage_overview("BE", Some(2025), d("2026-03-09"));
    assert_eq!((o.rows[0].open_vacancies, o.rows[0].open_positions), (1, 3));
    // the same 2026 list as of 03-09 (scan): S1 counts V1 V2 again
    let o = a.shortage_overview("BE", None, d("2026-03-09"));
    assert_eq!((o.rows[1].open_vacancies, o.rows[1].open_positions), (2, 3));
    let o = a.shortage_overview("FR", None, d(T));
    assert_eq!((o.year, o.rows[0].open_vacancies), (2025, 1));
    assert_eq!(a.shortage_overview("NL", None, d(T)), Default::default());
    assert_eq!(a.shortage_overview("BE", Some(2020), d(T)).year, 2020);
}

#[allow(clippy::too_many_arguments)]
fn grow(
    code: &str,
    v: u64,
    p: u64,
    causes: &[ShortageCause],
    reg: Option<Figure>,
    will: Option<Figure>,
    period: &str,
    matched: bool,
) -> GapRow {
    GapRow {
        isco08: code.into(),
        label: crate::isco::label(code),
        open_vacancies: v,
        open_positions: p,
        shortage_causes: causes.to_vec(),
        registered_jobseekers: reg,
        willing_to_migrate: will,
        period: period.into(),
        matched,
    }
}

#[test]
fn supply_gap() {
    use Figure::{Count, Suppressed};
    let a = fixture();
    let q4 = "2025-Q4"; // ends with 2025 but starts later; 2025-09 ends earlier
                        // level 4: 2512 (BE V1 V2, in shortage, 40 in TG) and 7212 (V5, in shortage,
                        // suppressed) match; 9112 has only supply (12+8, 5+0); 7214 has a zero cell only: no
                        // row; the "25" cell is coarser than the level: ignored.
    let rows = a.supply_gap("BE", "TG", 4, d(T));
    assert_eq!(
        rows,
        [
            grow(
                "7212",
                1,
                4,
                &[WC],
                Some(Suppressed),
                Some(Suppressed),
                q4,
                true
            ),
            grow(
                "2512",
                2,
                3,
                &[QN, QL, WC],
                Some(Count(40)),
                Some(Count(10)),
                q4,
                true
            ),
            grow(
                "9112",
                0,
                0,
                &[],
                Some(Count(20)),
                Some(Count(5)),
                q4,
                false
            ),
        ]
    );
    // level 2: "25" takes 2512 and the "25" cell (140, 40); "72" is suppressed through 7212
    let rows = a.supply_gap("BE", "TG", 2, d(T));
    assert_eq!(
        rows,
        [
            grow(
                "72",
                1,
                4,
                &[WC],
                Some(Suppressed),
                Some(Suppressed),
                q4,
                true
            ),
            grow(
                "25",
                2,
                3,
                &[QN, QL, WC],
                Some(Count(140)),
                Some(Count(40)),
                q4,
                true
            ),
            grow("91", 0, 0, &[], Some(Count(20)), Some(Count(5)), q4, false),
        ]
    );
    // level 1 as of 03-09 (scan): "2" has V1 V2 V3 (6 positions), "7" none open
    let rows = a.supply_gap("BE", "TG", 1, d("2026-03-09"));
    assert_eq!(
        rows,
        [
            grow(
                "2",
                3,
                6,
                &[QN, QL, WC],
                Some(Count(140)),
                Some(Count(40)),
                q4,
                true
            ),
            grow(
                "7",
                0,
                0,
                &[WC],
                Some(Suppressed),
                Some(Suppressed),
                q4,
                true
            ),
            grow("9", 0, 0, &[], Some(Count(20)), Some(Count(5)), q4, false),
        ]
    );
    // France publishes no supply: nothing matches
    let rows = a.supply_gap("BE", "FR", 4, d(T));
    assert_eq!(
        rows,
        [
            grow("7212", 1, 4, &[WC], None, None, "", false),
            grow("2512", 2, 3, &[QN, QL, WC], None, None, "", false),
        ]
    );
}

fn trow(month: &str, country: &str, n: u64) -> TrendRow {
    TrendRow {
        month: month.into(),
        country: country.into(),
        vacancies: n,
    }
}

#[test]
fn demand_trend() {
    let a = fixture();
    // prefix 25, any status: V4 (01), V2 (02), V1 V3 V7 (03, BE), V6 (03, FR)
    let mut q = DemandQuery::new(d("1999-01-01")); // as_of plays no part
    q.isco_prefix = "25".into();
    let want = [
        trow("2026-01", "BE", 1),
        trow("2026-02", "BE", 1),
        trow("2026-03", "BE", 3),
        trow("2026-03", "FR", 1),
    ];
    assert_eq!(a.demand_trend(&q, None), want);
    // JAVA: V4 (01), V2 (02), V1 V7 (03 BE), V6 (03 FR)
    let q = DemandQuery::new(d(T));
    assert_eq!(
        a.demand_trend(&q, Some(JAVA)),
        [
            trow("2026-01", "BE", 1),
            trow("2026-02", "BE", 1),
            trow("2026-03", "BE", 2),
            trow("2026-03", "FR", 1),
        ]
    );
    // SQL in Flanders (scan): V1 and V7, not V3 (Brussels)
    let mut q = DemandQuery::new(d(T));
    q.subdivisions = vec!["BE-VLG".into()];
    assert_eq!(a.demand_trend(&q, Some(SQL)), [trow("2026-03", "BE", 2)]);
    // a window that cuts February (scan): V1 V3 V5 V7 in BE, V6 in FR
    let mut q = DemandQuery::new(d(T));
    q.posted_from = Some(d("2026-02-20"));
    assert_eq!(
        a.demand_trend(&q, None),
        [trow("2026-03", "BE", 4), trow("2026-03", "FR", 1)]
    );
    // February exactly (aggregates): V2
    let mut q = DemandQuery::new(d(T));
    q.posted_from = Some(d("2026-02-01"));
    q.posted_to = Some(d("2026-02-28"));
    assert_eq!(a.demand_trend(&q, None), [trow("2026-02", "BE", 1)]);
    // a skill nobody lists
    let teamwork = "http://data.europa.eu/esco/skill/a5b0cd5c-e13a-4ab3-8d93-4d242adcfb01";
    assert!(a.demand_trend(&q, Some(teamwork)).is_empty());
}

#[test]
fn updates_replace_the_old_contribution() {
    let a = fixture();
    let k = key("be.vdab/vacancy/V2");
    // V2 withdrawn: JAVA keeps V1 and V6; its label vote "Java (programmeren)" stays (any
    // status votes), PY drops out of demand but not out of the trend
    let Some(Record::Vacancy(mut v2)) = a_vacancy_v2() else {
        unreachable!()
    };
    v2.status = VacancyStatus::Withdrawn;
    a.apply(&k, Some(&Record::Vacancy(v2.clone())));
    let r = a.skills_demand(&DemandQuery::new(d(T)), 10);
    assert_eq!(r.matching_vacancies, 3);
    assert_eq!(r.rows[0], srow(JAVA, "Java", 2, 3, 2, 2.0 / 3.0));
    assert!(r.rows.iter().all(|r| r.esco_uri != PY));
    assert_eq!(a.demand_trend(&DemandQuery::new(d(T)), Some(PY)).len(), 2);
    // V2 purged: the trend loses it too; "python" (V7) is now PY's only label
    a.apply(&k, None);
    assert_eq!(
        a.demand_trend(&DemandQuery::new(d(T)), Some(PY)),
        [trow("2026-03", "BE", 1)]
    );
    let r = a.skills_demand(&DemandQuery::new(d("2026-03-20")), 10);
    assert_eq!(
        r.rows.iter().find(|r| r.esco_uri == PY).unwrap().label,
        "python"
    );
    // V1 moves to 2511: occupation rows follow
    let Some(Record::Vacancy(mut v1)) = a_vacancy_v1() else {
        unreachable!()
    };
    v1.occupation.isco08 = "2511".into();
    a.apply(&key("be.vdab/vacancy/V1"), Some(&Record::Vacancy(v1)));
    let rows = a.occupation_demand(&DemandQuery::new(d(T)), 4);
    let codes: Vec<_> = rows
        .iter()
        .map(|r| (r.isco08.as_str(), r.vacancies))
        .collect();
    assert_eq!(codes, [("2511", 1), ("2512", 1), ("7212", 1)]);
    // applying the same version again changes nothing
    let before = a.stats();
    a.apply(&k, None);
    assert_eq!(a.stats(), before);
    assert_eq!(before.vacancies, 6);
}

fn a_vacancy_v1() -> Option<Record> {
    Some(vacancy(
        &key("be.vdab/vacancy/V1"),
        VacancyStatus::Open,
        "2512",
        ("BE", "BE-VAN"),
        true,
        2,
        ("2026-03-01", "2026-03-31"),
        vec![skill(JAVA, "Java", true), skill(SQL, "SQL", false)],
    ))
}

fn a_vacancy_v2() -> Option<Record> {
    Some(vacancy(
        &key("be.vdab/vacancy/V2"),
        VacancyStatus::Open,
        "2512",
        ("BE", "BE-VOV"),
        false,
        1,
        ("2026-02-15", ""),
        vec![
            skill(JAVA, "Java (programmeren)", true),
            skill(PY, "Python", true),
        ],
    ))
}

#[test]
fn rolling_the_day_matches_the_scan() {
    let a = fixture();
    let day = d("2026-03-20");
    let scanned = (
        a.skills_demand(&DemandQuery::new(day), 10),
        a.occupation_demand(&DemandQuery::new(day), 4),
        a.supply_gap("BE", "TG", 4, day),
    );
    a.roll_day(day);
    assert_eq!(a.day(), day);
    // open on 03-20: V1 V2 V5 V6 V7
    assert_eq!(a.stats().open_vacancies, 5);
    assert_eq!(scanned.0.matching_vacancies, 5);
    let aggregated = (
        a.skills_demand(&DemandQuery::new(day), 10),
        a.occupation_demand(&DemandQuery::new(day), 4),
        a.supply_gap("BE", "TG", 4, day),
    );
    assert_eq!(scanned, aggregated);
}

#[test]
fn stats_count_what_is_held() {
    let s = fixture().stats();
    assert_eq!(
        (
            s.vacancies,
            s.open_vacancies,
            s.shortage_lines,
            s.supply_cells
        ),
        (7, 4, 5, 8)
    );
    assert!(s.approx_bytes > 0);
}

#[test]
fn an_inverted_window_admits_nothing() {
    let a = fixture();
    let mut q = DemandQuery::new(d(T));
    q.posted_from = Some(d("2026-03-01"));
    q.posted_to = Some(d("2026-02-28"));
    assert!(a.demand_trend(&q, None).is_empty());
    assert!(a.demand_trend(&q, Some(JAVA)).is_empty());
    assert_eq!(a.skills_demand(&q, 5).matching_vacancies, 0);
    assert!(a.occupation_demand(&q, 4).is_empty());
}
