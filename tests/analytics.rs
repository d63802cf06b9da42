//! Analytics end to end (PRODUCT.md sections 5 and 7): the five queries over gRPC on real
//! federated nodes, checked against hand-computed answers; records that arrive by sync,
//! withdrawals, expiry and restarts; the node's live index against one rebuilt from its store
//! after a long random history; bad filters; who may query; and `passerelle query`.
//!
//! The engine's own tests (crates/passerelle-analytics) check every query against a brute
//! force; these tests check what surrounds it: that the node feeds the index every committed
//! change (own writes, imports, sync, purges, expiry, start-up), that the service validates
//! and maps faithfully, that permissions hold, and that the CLI prints what the node answers.
//!
//! Every wait is a bounded poll. Dates of the hand-checked data lie in 2090 and the as-of date
//! is always passed, so nothing depends on the day the tests run (no sweep expires them).

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use passerelle::pb::v1 as pb;
use passerelle_analytics as a;
use passerelle_model::{Date, Kind, Record, RecordKey, VacancyStatus, Violations};
use tonic::transport::Channel;
use tonic::Code;

const VDAB: &str = "be.vdab";
const ANPE: &str = "tg.anpe";
const FT: &str = "fr.francetravail";

/// Bound of every wait for replication on loopback (generous: the machine is shared).
const SYNC: Duration = Duration::from_secs(30);

/// The as-of date of the hand-checked example.
const D: &str = "2090-06-15";

/// ESCO skills used by the examples, in URI order (WELD < OPW < ENG).
const WELD: &str = "http://data.europa.eu/esco/skill/27d26fd6-5795-4f0a-884e-112df7c68314"; // apply arc welding techniques
const OPW: &str = "http://data.europa.eu/esco/skill/2fcd95a4-1f9a-41cf-95a9-4701bde476b4"; // operate welding equipment
const ENG: &str = "http://data.europa.eu/esco/skill/6d3edede-8951-4621-a835-e04323300fa0"; // English

const QN: i32 = pb::ShortageCause::Quantitative as i32;
const QL: i32 = pb::ShortageCause::Qualitative as i32;
const WC: i32 = pb::ShortageCause::WorkingConditions as i32;

type Analytics = AnalyticsClient<Channel>;

// ---------------------------------------------------------------- records

/// A valid OPEN vacancy of unit group `isco` located in `country`/`subdivision`, without skills
/// or closing date; tests override the rest with struct update syntax.
fn vacancy(id: &str, isco: &str, country: &str, subdivision: &str) -> pb::Vacancy {
    pb::Vacancy {
        occupation: Some(pb::Occupation {
            isco08: isco.into(),
            esco_uri: String::new(),
        }),
        location: Some(pb::Location {
            country: country.into(),
            subdivision: subdivision.into(),
            nuts: String::new(),
            locality: format!("Locality of {id}"),
        }),
        skills: Vec::new(),
        closes_on: String::new(),
        ..lasting_vacancy(id)
    }
}

fn skills(list: &[(&str, &str, bool)]) -> Vec<pb::Skill> {
    list.iter()
        .map(|(uri, label, essential)| pb::Skill {
            esco_uri: (*uri).into(),
            label: (*label).into(),
            essential: *essential,
        })
        .collect()
}

/// A line of VDAB's list `vdab-knelpuntberoepen` for Flanders, national code `K-<isco>`.
fn shortage(id: &str, year: u32, isco: &str, causes: &[i32]) -> pb::Shortage {
    pb::Shortage {
        year,
        occupation: Some(pb::Occupation {
            isco08: isco.into(),
            esco_uri: String::new(),
        }),
        national_code: format!("K-{isco}"),
        causes: causes.to_vec(),
        skills: Vec::new(),
        ..full_shortage(id)
    }
}

/// A Togolese supply cell; `counts` None: suppressed.
fn cell(
    id: &str,
    period: &str,
    isco: &str,
    subdivision: &str,
    counts: Option<(u64, u64)>,
) -> pb::SupplyCell {
    let (registered, willing) = counts.unwrap_or((0, 0));
    pb::SupplyCell {
        period: period.into(),
        country: "TG".into(),
        subdivision: subdivision.into(),
        occupation: Some(pb::Occupation {
            isco08: isco.into(),
            esco_uri: String::new(),
        }),
        registered_jobseekers: registered,
        willing_to_migrate: willing,
        suppressed: counts.is_none(),
        ..full_supply(id)
    }
}

async fn put_vacancy(node: &TestNode, v: pb::Vacancy) -> u64 {
    let id = v.id.clone();
    let r = node
        .vacancies("publisher")
        .await
        .put(pb::PutVacancyRequest {
            vacancy: Some(v),
            expected_revision: None,
        })
        .await
        .unwrap_or_else(|s| panic!("put vacancy {id}: {s:?}"))
        .into_inner();
    assert!(r.changed, "put of {id} changed nothing");
    r.revision
}

async fn withdraw(node: &TestNode, id: &str) {
    let r = node
        .vacancies("publisher")
        .await
        .withdraw(pb::WithdrawVacancyRequest {
            id: id.into(),
            expected_revision: None,
        })
        .await
        .unwrap_or_else(|s| panic!("withdraw {id}: {s:?}"))
        .into_inner();
    assert!(r.changed, "withdraw of {id} changed nothing");
}

async fn put_shortage(node: &TestNode, s: pb::Shortage) {
    let id = s.id.clone();
    node.shortages("publisher")
        .await
        .put(pb::PutShortageRequest {
            shortage: Some(s),
            expected_revision: None,
        })
        .await
        .unwrap_or_else(|e| panic!("put shortage {id}: {e:?}"));
}

async fn put_cell(node: &TestNode, c: pb::SupplyCell) {
    let id = c.id.clone();
    node.supply("publisher")
        .await
        .put(pb::PutSupplyRequest {
            cell: Some(c),
            expected_revision: None,
        })
        .await
        .unwrap_or_else(|e| panic!("put supply {id}: {e:?}"));
}

fn key(s: &str) -> RecordKey {
    s.parse().expect("record key")
}

fn vacancy_status(node: &TestNode, k: &RecordKey) -> Option<(u64, VacancyStatus)> {
    match node.node().get(k) {
        Ok(Record::Vacancy(v)) => Some((v.revision, v.status)),
        Ok(other) => panic!("{k} is not a vacancy: {other:?}"),
        Err(passerelle_node::NodeError::NotFound(_)) => None,
        Err(e) => panic!("get {k}: {e}"),
    }
}

/// Waits until `node` holds exactly the versions `origin` holds of its own records, and its
/// index has taken in as many records as its store holds.
async fn wait_holds(node: &TestNode, origin: &TestNode) {
    let a = origin.agency().to_string();
    let what = format!("{} holds {a}'s records", node.agency());
    wait_until_ok(&what, SYNC, || {
        let want = records_of_origin(origin, &a);
        let got = records_of_origin(node, &a);
        if want != got {
            return Err(format!("holds {} of {}", got.len(), want.len()));
        }
        let stored = node.node().store().iter(None).count() as u64;
        let s = node.node().analytics().stats();
        let indexed = s.vacancies + s.shortage_lines + s.supply_cells;
        if stored != indexed {
            return Err(format!("store {stored} records, index {indexed}"));
        }
        Ok(())
    })
    .await;
}

/// Polls the async `check` every 50 ms until it returns Ok, at most `SYNC`.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let started = Instant::now();
    loop {
        let last = match check().await {
            Ok(()) => return,
            Err(e) => e,
        };
        if started.elapsed() >= SYNC {
            panic!("{what}: not reached within {SYNC:?}; last state: {last}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn same<T: PartialEq + std::fmt::Debug>(got: T, want: &T) -> Result<(), String> {
    if &got == want {
        Ok(())
    } else {
        Err(format!("got {got:#?}\nwant {want:#?}"))
    }
}

// ---------------------------------------------------------------- queries

fn at(as_of: &str) -> pb::DemandFilter {
    pb::DemandFilter {
        as_of: as_of.into(),
        ..Default::default()
    }
}

async fn skills_demand(
    c: &mut Analytics,
    filter: pb::DemandFilter,
    top: u32,
) -> pb::SkillsDemandResponse {
    c.skills_demand(pb::SkillsDemandRequest {
        filter: Some(filter.clone()),
        top,
    })
    .await
    .unwrap_or_else(|s| panic!("SkillsDemand {filter:?}: {s:?}"))
    .into_inner()
}

async fn occupations(
    c: &mut Analytics,
    filter: pb::DemandFilter,
    level: u32,
) -> Vec<pb::OccupationDemandRow> {
    c.occupation_demand(pb::OccupationDemandRequest {
        filter: Some(filter.clone()),
        level,
    })
    .await
    .unwrap_or_else(|s| panic!("OccupationDemand {filter:?} level {level}: {s:?}"))
    .into_inner()
    .rows
}

async fn overview(
    c: &mut Analytics,
    country: &str,
    year: u32,
    as_of: &str,
) -> pb::ShortageOverviewResponse {
    c.shortage_overview(pb::ShortageOverviewRequest {
        country: country.into(),
        year,
        as_of: as_of.into(),
    })
    .await
    .unwrap_or_else(|s| panic!("ShortageOverview {country} {year}: {s:?}"))
    .into_inner()
}

async fn gap(
    c: &mut Analytics,
    destination: &str,
    source: &str,
    level: u32,
    as_of: &str,
) -> Vec<pb::SupplyGapRow> {
    c.supply_gap(pb::SupplyGapRequest {
        destination: destination.into(),
        source: source.into(),
        level,
        as_of: as_of.into(),
    })
    .await
    .unwrap_or_else(|s| panic!("SupplyGap {destination} {source} level {level}: {s:?}"))
    .into_inner()
    .rows
}

async fn trend(
    c: &mut Analytics,
    filter: pb::DemandFilter,
    skill: &str,
) -> Vec<pb::DemandTrendRow> {
    c.demand_trend(pb::DemandTrendRequest {
        filter: Some(filter.clone()),
        skill_uri: skill.into(),
    })
    .await
    .unwrap_or_else(|s| panic!("DemandTrend {filter:?} {skill}: {s:?}"))
    .into_inner()
    .rows
}

fn isco_label(code: &str) -> String {
    passerelle_refdata::isco(code)
        .unwrap_or_else(|| panic!("ISCO {code}"))
        .label
        .to_owned()
}

fn skill_row(
    uri: &str,
    label: &str,
    vacancies: u64,
    positions: u64,
    essential: u64,
    share: f64,
) -> pb::SkillDemandRow {
    pb::SkillDemandRow {
        esco_uri: uri.into(),
        label: label.into(),
        vacancies,
        positions,
        essential,
        share,
    }
}

fn occ_row(
    isco: &str,
    vacancies: u64,
    positions: u64,
    international: u64,
    causes: &[i32],
) -> pb::OccupationDemandRow {
    pb::OccupationDemandRow {
        isco08: isco.into(),
        label: isco_label(isco),
        vacancies,
        positions,
        international,
        shortage_causes: causes.to_vec(),
    }
}

fn short_row(
    isco: &str,
    list: &str,
    subdivision: &str,
    national_code: &str,
    causes: &[i32],
    open: (u64, u64),
) -> pb::ShortageOverviewRow {
    pb::ShortageOverviewRow {
        isco08: isco.into(),
        label: isco_label(isco),
        list: list.into(),
        subdivision: subdivision.into(),
        national_code: national_code.into(),
        causes: causes.to_vec(),
        open_vacancies: open.0,
        open_positions: open.1,
    }
}

type Fig = Option<pb::SupplyFigure>;

fn n(count: u64) -> Fig {
    Some(pb::SupplyFigure {
        value: Some(pb::supply_figure::Value::Count(count)),
    })
}

fn suppressed() -> Fig {
    Some(pb::SupplyFigure {
        value: Some(pb::supply_figure::Value::Suppressed(true)),
    })
}

fn gap_row(
    isco: &str,
    open: (u64, u64),
    causes: &[i32],
    supply: (Fig, Fig),
    period: &str,
    matched: bool,
) -> pb::SupplyGapRow {
    pb::SupplyGapRow {
        isco08: isco.into(),
        label: isco_label(isco),
        open_vacancies: open.0,
        open_positions: open.1,
        shortage_causes: causes.to_vec(),
        registered_jobseekers: supply.0,
        willing_to_migrate: supply.1,
        period: period.into(),
        r#match: matched,
    }
}

fn trend_row(month: &str, country: &str, vacancies: u64) -> pb::DemandTrendRow {
    pb::DemandTrendRow {
        month: month.into(),
        country: country.into(),
        vacancies,
    }
}

/// One answer of a node, for comparing whole sets of answers.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    Skills(pb::SkillsDemandResponse),
    Occupations(Vec<pb::OccupationDemandRow>),
    Overview(pb::ShortageOverviewResponse),
    Gap(Vec<pb::SupplyGapRow>),
    Trend(Vec<pb::DemandTrendRow>),
}

/// Every query with a spread of filters, as `node`'s analyst sees them.
async fn battery(ch: Channel, as_of: &[&str]) -> Vec<Answer> {
    let mut c = AnalyticsClient::new(ch);
    let mut out = Vec::new();
    for d in as_of {
        let filters = [
            at(d),
            pb::DemandFilter {
                countries: vec!["BE".into()],
                ..at(d)
            },
            pb::DemandFilter {
                subdivisions: vec!["BE-VLG".into()],
                ..at(d)
            },
            pb::DemandFilter {
                isco_prefix: "72".into(),
                ..at(d)
            },
            pb::DemandFilter {
                origins: vec![ANPE.into()],
                ..at(d)
            },
            pb::DemandFilter {
                open_to_international: Some(true),
                posted_from: "2024-01-01".into(),
                posted_to: "2090-05-31".into(),
                ..at(d)
            },
        ];
        for f in filters {
            out.push(Answer::Skills(skills_demand(&mut c, f.clone(), 0).await));
            for level in 1..=4 {
                out.push(Answer::Occupations(
                    occupations(&mut c, f.clone(), level).await,
                ));
            }
            for skill in ["", WELD, ENG] {
                out.push(Answer::Trend(trend(&mut c, f.clone(), skill).await));
            }
        }
        for (country, year) in [("BE", 0), ("BE", 2089), ("TG", 0)] {
            out.push(Answer::Overview(overview(&mut c, country, year, d).await));
        }
        for (dest, src) in [("BE", "TG"), ("TG", "BE")] {
            for level in 1..=4 {
                out.push(Answer::Gap(gap(&mut c, dest, src, level, d).await));
            }
        }
    }
    out
}

// ---------------------------------------------------------------- 1. hand-checked example

/// The example of test 1, published with the publishers' gRPC API: VDAB's vacancies and
/// shortage lines on `vdab`, ANPE's supply cells and one Togolese vacancy on `anpe`.
///
/// Vacancies (as of D = 2090-06-15; open = OPEN, posted_on ≤ D, closes_on empty or ≥ D):
///
/// | id | isco | place  | posted     | closes     | status    | pos | intl | skills (label, essential)            | open at D |
/// |----|------|--------|------------|------------|-----------|-----|------|--------------------------------------|-----------|
/// | V1 | 7212 | BE-VAN | 2090-05-01 | 2090-07-31 | OPEN      | 3   | yes  | WELD "apply arc…" e, ENG "Engels"    | yes       |
/// | V2 | 7212 | BE-WHT | 2090-06-15 | —          | OPEN      | 2   | no   | WELD "soudage à l'arc" e, OPW "" e   | yes (= D) |
/// | V3 | 7212 | BE-VLI | 2090-06-16 | —          | OPEN      | 5   | yes  | WELD "soudage à l'arc" e             | no (after)|
/// | V4 | 2221 | BE-VBR | 2090-04-10 | 2090-06-15 | OPEN      | 4   | yes  | ENG "Engels" e                       | yes (= D) |
/// | V5 | 2221 | BE-VOV | 2090-04-20 | 2090-06-14 | OPEN      | 1   | yes  | ENG "English" e                      | no (closed)|
/// | V6 | 2221 | BE-VAN | 2090-05-05 | —          | WITHDRAWN | 2   | no   | ENG "Engels" e                       | no        |
/// | V7 | 8332 | BE     | 2090-03-01 | —          | OPEN      | 6   | yes  | ENG "English"                        | yes       |
/// | V8 | 2512 | BE-VAN | 2090-05-20 | —          | FILLED    | 1   | no   | —                                    | no        |
/// | VT | 7212 | TG-M   | 2090-06-01 | —          | OPEN      | 2   | yes  | WELD "soudage à l'arc" e  (tg.anpe)  | yes       |
///
/// Shortage lines (be.vdab; list `vdab-knelpuntberoepen` unless said, national code K-isco):
/// 2089: 2221 BE-VLG [QN]; 7212 BE-VLG [QL]; 8332 BE [WC].
/// 2090: 2221 BE-VLG [QN, WC] (lists ENG "English"); 7212 BE-VLG [QL];
///       7212 BE-WAL list `forem-penurie` code M-7212 [QN]; 5120 BE [WC].
///
/// Supply (tg.anpe, TG): period 2089: 72 500/200. Period 2090-Q1 (the latest): 7212 TG-M
/// 120/45, 7212 TG-K 30/10, 2221 suppressed, 83 80/25, 5120 0/0, 2512 60/20, 7 1000/300,
/// 7213 suppressed.
async fn publish_example(vdab: &TestNode, anpe: &TestNode) {
    let vacancies = [
        pb::Vacancy {
            posted_on: "2090-05-01".into(),
            closes_on: "2090-07-31".into(),
            positions: 3,
            open_to_international: true,
            skills: skills(&[
                (WELD, "apply arc welding techniques", true),
                (ENG, "Engels", false),
            ]),
            ..vacancy("V1", "7212", "BE", "BE-VAN")
        },
        pb::Vacancy {
            posted_on: D.into(),
            positions: 2,
            open_to_international: false,
            skills: skills(&[(WELD, "soudage à l'arc", true), (OPW, "", true)]),
            ..vacancy("V2", "7212", "BE", "BE-WHT")
        },
        pb::Vacancy {
            posted_on: "2090-06-16".into(),
            positions: 5,
            open_to_international: true,
            skills: skills(&[(WELD, "soudage à l'arc", true)]),
            ..vacancy("V3", "7212", "BE", "BE-VLI")
        },
        pb::Vacancy {
            posted_on: "2090-04-10".into(),
            closes_on: D.into(),
            positions: 4,
            open_to_international: true,
            skills: skills(&[(ENG, "Engels", true)]),
            ..vacancy("V4", "2221", "BE", "BE-VBR")
        },
        pb::Vacancy {
            posted_on: "2090-04-20".into(),
            closes_on: "2090-06-14".into(),
            positions: 1,
            open_to_international: true,
            skills: skills(&[(ENG, "English", true)]),
            ..vacancy("V5", "2221", "BE", "BE-VOV")
        },
        pb::Vacancy {
            posted_on: "2090-05-05".into(),
            positions: 2,
            open_to_international: false,
            skills: skills(&[(ENG, "Engels", true)]),
            ..vacancy("V6", "2221", "BE", "BE-VAN")
        },
        pb::Vacancy {
            posted_on: "2090-03-01".into(),
            positions: 6,
            open_to_international: true,
            skills: skills(&[(ENG, "English", false)]),
            ..vacancy("V7", "8332", "BE", "")
        },
        pb::Vacancy {
            status: pb::VacancyStatus::Filled as i32,
            posted_on: "2090-05-20".into(),
            positions: 1,
            open_to_international: false,
            ..vacancy("V8", "2512", "BE", "BE-VAN")
        },
    ];
    for v in vacancies {
        put_vacancy(vdab, v).await;
    }
    withdraw(vdab, "V6").await;

    for s in [
        shortage("S89-2221", 2089, "2221", &[QN]),
        shortage("S89-7212", 2089, "7212", &[QL]),
        pb::Shortage {
            subdivision: String::new(),
            ..shortage("S89-8332", 2089, "8332", &[WC])
        },
        pb::Shortage {
            skills: skills(&[(ENG, "English", true)]),
            ..shortage("S90-2221", 2090, "2221", &[QN, WC])
        },
        shortage("S90-7212", 2090, "7212", &[QL]),
        pb::Shortage {
            list: "forem-penurie".into(),
            subdivision: "BE-WAL".into(),
            national_code: "M-7212".into(),
            ..shortage("S90-7212W", 2090, "7212", &[QN])
        },
        pb::Shortage {
            subdivision: String::new(),
            ..shortage("S90-5120", 2090, "5120", &[WC])
        },
    ] {
        put_shortage(vdab, s).await;
    }

    put_vacancy(
        anpe,
        pb::Vacancy {
            posted_on: "2090-06-01".into(),
            positions: 2,
            open_to_international: true,
            language: "fr".into(),
            skills: skills(&[(WELD, "soudage à l'arc", true)]),
            ..vacancy("VT", "7212", "TG", "TG-M")
        },
    )
    .await;
    for c in [
        cell("C89-72", "2089", "72", "TG-M", Some((500, 200))),
        cell("C-7212-M", "2090-Q1", "7212", "TG-M", Some((120, 45))),
        cell("C-7212-K", "2090-Q1", "7212", "TG-K", Some((30, 10))),
        cell("C-2221", "2090-Q1", "2221", "TG-M", None),
        cell("C-83", "2090-Q1", "83", "TG-M", Some((80, 25))),
        cell("C-5120", "2090-Q1", "5120", "TG-C", Some((0, 0))),
        cell("C-2512", "2090-Q1", "2512", "TG-M", Some((60, 20))),
        cell("C-7", "2090-Q1", "7", "", Some((1000, 300))),
        cell("C-7213", "2090-Q1", "7213", "TG-M", None),
    ] {
        put_cell(anpe, c).await;
    }
}

/// Two federated nodes pulling from each other, both holding the example.
async fn example_pair() -> (TestNode, TestNode) {
    let (a, b) = (PendingNode::init(VDAB).await, PendingNode::init(ANPE).await);
    federate_pair(&a.node, &PeerEntry::pull(), &b.node, &PeerEntry::pull());
    let (vdab, anpe) = (a.start().await, b.start().await);
    publish_example(&vdab, &anpe).await;
    wait_holds(&vdab, &anpe).await;
    wait_holds(&anpe, &vdab).await;
    (vdab, anpe)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_answers_the_hand_checked_example() {
    let (vdab, anpe) = example_pair().await;
    let mut c = vdab.analytics("analyst").await;

    // ---- SkillsDemand. Open at D: V1 V2 V4 V7 VT = 5 vacancies.
    // WELD: V1 (3 pos) V2 (2) VT (2) = 3 vacancies, 7 positions, all essential, share 3/5.
    //   label votes (any status): "soudage à l'arc" V2 V3 VT = 3, "apply arc…" V1 = 1.
    // ENG: V1 (3, not essential) V4 (4, essential) V7 (6, not) = 3, 13, 1, 3/5.
    //   votes: "Engels" V1 V4 V6 = 3; "English" V5 V7 and the 2090 line 2221 = 3: a tie, the
    //   smaller string wins: "Engels" < "English".
    // OPW: V2 = 1, 2, 1, 1/5; its only label is empty: the reference label.
    // WELD and ENG tie on 3 vacancies: by URI, WELD (27d2…) before ENG (6d3e…).
    let r = skills_demand(&mut c, at(D), 0).await;
    assert_eq!(
        r,
        pb::SkillsDemandResponse {
            matching_vacancies: 5,
            rows: vec![
                skill_row(WELD, "soudage à l'arc", 3, 7, 3, 3.0 / 5.0),
                skill_row(ENG, "Engels", 3, 13, 1, 3.0 / 5.0),
                skill_row(OPW, "operate welding equipment", 1, 2, 1, 1.0 / 5.0),
            ],
        }
    );
    // BE-VLG includes BE-VAN and BE-VBR: V1, V4 (V2 is in Wallonia, V7 has no subdivision).
    // ENG: V1 V4 = 2 vacancies, 7 positions, 1 essential, share 1; WELD: V1 = 1, 3, 1, 1/2.
    let r = skills_demand(
        &mut c,
        pb::DemandFilter {
            subdivisions: vec!["BE-VLG".into()],
            ..at(D)
        },
        0,
    )
    .await;
    assert_eq!(
        r,
        pb::SkillsDemandResponse {
            matching_vacancies: 2,
            rows: vec![
                skill_row(ENG, "Engels", 2, 7, 1, 1.0),
                skill_row(WELD, "soudage à l'arc", 1, 3, 1, 0.5),
            ],
        }
    );
    // ISCO prefix 72: V1 V2 VT; top 1 keeps WELD (3 of 3) and drops OPW and ENG (1 each).
    let r = skills_demand(
        &mut c,
        pb::DemandFilter {
            isco_prefix: "72".into(),
            ..at(D)
        },
        1,
    )
    .await;
    assert_eq!(
        r,
        pb::SkillsDemandResponse {
            matching_vacancies: 3,
            rows: vec![skill_row(WELD, "soudage à l'arc", 3, 7, 3, 1.0)],
        }
    );
    // BE and not open to international candidates: V2 alone; WELD and OPW by URI.
    let r = skills_demand(
        &mut c,
        pb::DemandFilter {
            countries: vec!["be".into()],
            open_to_international: Some(false),
            ..at(D)
        },
        0,
    )
    .await;
    assert_eq!(
        r,
        pb::SkillsDemandResponse {
            matching_vacancies: 1,
            rows: vec![
                skill_row(WELD, "soudage à l'arc", 1, 2, 1, 1.0),
                skill_row(OPW, "operate welding equipment", 1, 2, 1, 1.0),
            ],
        }
    );
    // posted in May 2090 and open at D: V1 only (V4 April, V7 March, V2 and VT June).
    let r = skills_demand(
        &mut c,
        pb::DemandFilter {
            posted_from: "2090-05-01".into(),
            posted_to: "2090-05-31".into(),
            ..at(D)
        },
        0,
    )
    .await;
    assert_eq!(
        r,
        pb::SkillsDemandResponse {
            matching_vacancies: 1,
            rows: vec![
                skill_row(WELD, "soudage à l'arc", 1, 3, 1, 1.0),
                skill_row(ENG, "Engels", 1, 3, 0, 1.0),
            ],
        }
    );
    // origin tg.anpe: VT, received by sync.
    let r = skills_demand(
        &mut c,
        pb::DemandFilter {
            origins: vec![ANPE.into()],
            ..at(D)
        },
        0,
    )
    .await;
    assert_eq!(
        r,
        pb::SkillsDemandResponse {
            matching_vacancies: 1,
            rows: vec![skill_row(WELD, "soudage à l'arc", 1, 2, 1, 1.0)],
        }
    );

    // ---- OccupationDemand, level 4. Open at D:
    // 7212: V1 (3, intl) V2 (2) VT (2, intl) = 3 vacancies, 7 positions, 2 international;
    //   causes: countries of the row BE and TG; BE's latest year 2090 lists 7212 with QL
    //   (vdab) and QN (forem): [QN, QL] in enum order; TG has no list.
    // 2221: V4 = 1, 4, 1; 2090 line [QN, WC].
    // 8332: V7 = 1, 6, 1; listed in 2089 only, not in the latest year: no causes.
    // Order: vacancies descending, then code: 7212, 2221, 8332.
    let level4 = vec![
        occ_row("7212", 3, 7, 2, &[QN, QL]),
        occ_row("2221", 1, 4, 1, &[QN, WC]),
        occ_row("8332", 1, 6, 1, &[]),
    ];
    assert_eq!(occupations(&mut c, at(D), 4).await, level4);
    assert_eq!(occupations(&mut c, at(D), 0).await, level4, "level 0 is 4");
    assert_eq!(level4[0].label, "Welders and flamecutters");
    // level 1: 7 (V1 V2 VT), 2 (V4), 8 (V7); causes of the 2090 lines under each group.
    assert_eq!(
        occupations(&mut c, at(D), 1).await,
        vec![
            occ_row("7", 3, 7, 2, &[QN, QL]),
            occ_row("2", 1, 4, 1, &[QN, WC]),
            occ_row("8", 1, 6, 1, &[]),
        ]
    );
    assert_eq!(
        occupations(&mut c, at(D), 1).await[0].label,
        "Craft and related trades workers"
    );
    // only BE: 7212 loses VT (2 vacancies, 5 positions, 1 international).
    assert_eq!(
        occupations(
            &mut c,
            pb::DemandFilter {
                countries: vec!["BE".into()],
                ..at(D)
            },
            4
        )
        .await,
        vec![
            occ_row("7212", 2, 5, 1, &[QN, QL]),
            occ_row("2221", 1, 4, 1, &[QN, WC]),
            occ_row("8332", 1, 6, 1, &[]),
        ]
    );
    // only TG: VT; the relevant country is TG, which has no shortage list: no causes.
    assert_eq!(
        occupations(
            &mut c,
            pb::DemandFilter {
                countries: vec!["TG".into()],
                ..at(D)
            },
            4
        )
        .await,
        vec![occ_row("7212", 1, 2, 1, &[])]
    );

    // ---- ShortageOverview. BE's latest year is 2090; rows by code, list, subdivision, code.
    // 2221 BE-VLG: open 2221 in Flanders at D: V4 (BE-VBR) = 1, 4 (V5 closed, V6 withdrawn).
    // 5120 BE: no vacancy. 7212 forem BE-WAL: V2 (BE-WHT) = 1, 2.
    // 7212 vdab BE-VLG: V1 (BE-VAN) = 1, 3 (V3 posted after D).
    const VL: &str = "vdab-knelpuntberoepen";
    assert_eq!(
        overview(&mut c, "BE", 0, D).await,
        pb::ShortageOverviewResponse {
            year: 2090,
            rows: vec![
                short_row("2221", VL, "BE-VLG", "K-2221", &[QN, WC], (1, 4)),
                short_row("5120", VL, "", "K-5120", &[WC], (0, 0)),
                short_row("7212", "forem-penurie", "BE-WAL", "M-7212", &[QN], (1, 2)),
                short_row("7212", VL, "BE-VLG", "K-7212", &[QL], (1, 3)),
            ],
        }
    );
    // 2089: 8332 without subdivision counts V7 in the whole of BE.
    assert_eq!(
        overview(&mut c, "be", 2089, D).await,
        pb::ShortageOverviewResponse {
            year: 2089,
            rows: vec![
                short_row("2221", VL, "BE-VLG", "K-2221", &[QN], (1, 4)),
                short_row("7212", VL, "BE-VLG", "K-7212", &[QL], (1, 3)),
                short_row("8332", VL, "", "K-8332", &[WC], (1, 6)),
            ],
        }
    );
    // a day earlier: V5 (closes 06-14) is open and V2 (posted 06-15) is not:
    // 2221 Flanders = V4 + V5 = 2, 5; 7212 Wallonia = 0; 7212 Flanders = V1.
    assert_eq!(
        overview(&mut c, "BE", 0, "2090-06-14").await.rows,
        vec![
            short_row("2221", VL, "BE-VLG", "K-2221", &[QN, WC], (2, 5)),
            short_row("5120", VL, "", "K-5120", &[WC], (0, 0)),
            short_row("7212", "forem-penurie", "BE-WAL", "M-7212", &[QN], (0, 0)),
            short_row("7212", VL, "BE-VLG", "K-7212", &[QL], (1, 3)),
        ]
    );
    assert_eq!(
        overview(&mut c, "TG", 0, D).await,
        pb::ShortageOverviewResponse {
            year: 0,
            rows: vec![]
        }
    );
    assert_eq!(
        overview(&mut c, "BE", 2091, D).await,
        pb::ShortageOverviewResponse {
            year: 2091,
            rows: vec![]
        }
    );

    // ---- SupplyGap BE ← TG, level 4. TG's latest period is 2090-Q1 (2089 is older).
    // Cells of 4 digits: 7212 = 120+30 / 45+10 = 150/55; 2221 suppressed; 5120 0/0;
    // 2512 60/20; 7213 suppressed. The 83 and 7 cells are coarser: ignored.
    // Destination: open in BE at D: 7212 V1+V2 = 2/5, 2221 V4 = 1/4, 8332 V7 = 1/6.
    // Latest BE list (2090): 2221 [QN, WC], 7212 [QN, QL], 5120 [WC].
    // Matched (in shortage with supply, suppressed counting as supply): 7212, 2221, by open
    // positions 5 > 4. Then the rest by positions, then code: 8332 (6), 2512, 5120, 7213 (0).
    // 5120 is in shortage but 0 job seekers: not matched.
    const P: &str = "2090-Q1";
    let level4 = vec![
        gap_row("7212", (2, 5), &[QN, QL], (n(150), n(55)), P, true),
        gap_row(
            "2221",
            (1, 4),
            &[QN, WC],
            (suppressed(), suppressed()),
            P,
            true,
        ),
        gap_row("8332", (1, 6), &[], (None, None), P, false),
        gap_row("2512", (0, 0), &[], (n(60), n(20)), P, false),
        gap_row("5120", (0, 0), &[WC], (n(0), n(0)), P, false),
        gap_row("7213", (0, 0), &[], (suppressed(), suppressed()), P, false),
    ];
    assert_eq!(gap(&mut c, "BE", "TG", 4, D).await, level4);
    assert_eq!(gap(&mut c, "be", "tg", 0, D).await, level4, "level 0 is 4");
    // level 2: 72 = 7212 cells + 7213 suppressed: suppressed; 22 suppressed; 83 80/25;
    // 51 0/0; 25 60/20 (the 7 cell is coarser). Demand: 72 2/5, 22 1/4, 83 1/6.
    // Causes: 22 [QN, WC], 72 [QN, QL], 51 [WC]; 83 is listed in 2089 only.
    assert_eq!(
        gap(&mut c, "BE", "TG", 2, D).await,
        vec![
            gap_row(
                "72",
                (2, 5),
                &[QN, QL],
                (suppressed(), suppressed()),
                P,
                true
            ),
            gap_row(
                "22",
                (1, 4),
                &[QN, WC],
                (suppressed(), suppressed()),
                P,
                true
            ),
            gap_row("83", (1, 6), &[], (n(80), n(25)), P, false),
            gap_row("25", (0, 0), &[], (n(60), n(20)), P, false),
            gap_row("51", (0, 0), &[WC], (n(0), n(0)), P, false),
        ]
    );
    // the other way: TG demand (VT), no TG list, BE publishes no supply (no period).
    assert_eq!(
        gap(&mut c, "TG", "BE", 4, D).await,
        vec![gap_row("7212", (1, 2), &[], (None, None), "", false)]
    );

    // ---- DemandTrend: every vacancy of any status by posting month and country.
    // prefix 72: V1 (05 BE), V2 V3 (06 BE), VT (06 TG).
    let prefix = |p: &str| pb::DemandFilter {
        isco_prefix: p.into(),
        ..Default::default()
    };
    assert_eq!(
        trend(&mut c, prefix("72"), "").await,
        vec![
            trend_row("2090-05", "BE", 1),
            trend_row("2090-06", "BE", 2),
            trend_row("2090-06", "TG", 1),
        ]
    );
    // the as-of date plays no part
    assert_eq!(
        trend(
            &mut c,
            pb::DemandFilter {
                as_of: "2000-01-01".into(),
                ..prefix("72")
            },
            ""
        )
        .await,
        trend(&mut c, prefix("72"), "").await
    );
    // skill ENG: V7 (03), V4 V5 (04), V1 V6 (05; V6 withdrawn still counts).
    assert_eq!(
        trend(&mut c, pb::DemandFilter::default(), ENG).await,
        vec![
            trend_row("2090-03", "BE", 1),
            trend_row("2090-04", "BE", 2),
            trend_row("2090-05", "BE", 2),
        ]
    );
    // skill ENG and prefix 22: V4 V5 (04), V6 (05).
    assert_eq!(
        trend(&mut c, prefix("22"), ENG).await,
        vec![trend_row("2090-04", "BE", 2), trend_row("2090-05", "BE", 1)]
    );
    // prefix 72 in Flanders: V1 (BE-VAN, 05), V3 (BE-VLI, 06).
    assert_eq!(
        trend(
            &mut c,
            pb::DemandFilter {
                subdivisions: vec!["BE-VLG".into()],
                ..prefix("72")
            },
            ""
        )
        .await,
        vec![trend_row("2090-05", "BE", 1), trend_row("2090-06", "BE", 1)]
    );
    // prefix 72 posted 2090-06-01..15 (cuts June): V2 (06-15), VT (06-01); V3 (06-16) is out.
    assert_eq!(
        trend(
            &mut c,
            pb::DemandFilter {
                posted_from: "2090-06-01".into(),
                posted_to: D.into(),
                ..prefix("72")
            },
            ""
        )
        .await,
        vec![trend_row("2090-06", "BE", 1), trend_row("2090-06", "TG", 1)]
    );
    // everything: 03 V7; 04 V4 V5; 05 V1 V6 V8 (filled); 06 V2 V3; 06 TG VT.
    assert_eq!(
        trend(&mut c, pb::DemandFilter::default(), "").await,
        vec![
            trend_row("2090-03", "BE", 1),
            trend_row("2090-04", "BE", 2),
            trend_row("2090-05", "BE", 3),
            trend_row("2090-06", "BE", 2),
            trend_row("2090-06", "TG", 1),
        ]
    );

    // ---- the partner holds the same records: it answers the same to everything.
    let want = battery(vdab.channel("analyst").await, &[D, "2090-06-14"]).await;
    let ch = anpe.channel("analyst").await;
    eventually("tg.anpe answers like be.vdab", || {
        let ch = ch.clone();
        let want = want.clone();
        async move { same(battery(ch, &[D, "2090-06-14"]).await, &want) }
    })
    .await;
}

// ---------------------------------------------------------------- 2. records arriving by sync

/// A vacancy posted and closed in January 2024: past due whatever day the test runs.
fn past_due(id: &str, isco: &str, positions: u32) -> pb::Vacancy {
    pb::Vacancy {
        posted_on: "2024-01-10".into(),
        closes_on: "2024-02-10".into(),
        positions,
        open_to_international: true,
        ..vacancy(id, isco, "BE", "BE-VAN")
    }
}

/// The answers the sync test follows, as one value.
#[derive(Debug, Clone, PartialEq)]
struct Followed {
    /// OccupationDemand at D.
    now: Vec<pb::OccupationDemandRow>,
    /// OccupationDemand on 2024-01-20, when the past-due vacancies were open by their dates.
    then: Vec<pb::OccupationDemandRow>,
    gap: Vec<pb::SupplyGapRow>,
    skills: pb::SkillsDemandResponse,
    trend: Vec<pb::DemandTrendRow>,
}

async fn followed(ch: Channel) -> Followed {
    let mut c = AnalyticsClient::new(ch);
    Followed {
        now: occupations(&mut c, at(D), 4).await,
        then: occupations(&mut c, at("2024-01-20"), 4).await,
        gap: gap(&mut c, "BE", "TG", 4, D).await,
        skills: skills_demand(&mut c, at(D), 0).await,
        trend: trend(&mut c, pb::DemandFilter::default(), "").await,
    }
}

/// Waits until both nodes answer `want`.
async fn both_answer(what: &str, nodes: [&TestNode; 2], want: &Followed) {
    for node in nodes {
        let ch = node.channel("analyst").await;
        eventually(&format!("{what} on {}", node.agency()), || {
            let ch = ch.clone();
            async move { same(followed(ch).await, want) }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_arriving_by_sync_withdrawals_and_expiry_are_counted_and_survive_restarts() {
    let (a, b) = (PendingNode::init(VDAB).await, PendingNode::init(ANPE).await);
    federate_pair(&a.node, &PeerEntry::pull(), &b.node, &PeerEntry::pull());
    // no periodic sweep: the start-up sweep runs, later expiry is triggered by the test
    a.node.configure_sync(&[("sweep_interval_secs", 3600)]);
    // written while VDAB is down: its start-up sweep expires it before anyone pulls it open
    let cfg = a.node.config();
    tokio::task::spawn_blocking(move || {
        let node = passerelle_node::Node::open(&cfg).expect("open VDAB's store");
        let (v, violations) =
            passerelle::convert::vacancy_in(past_due("CANARY", "8332", 5), "vacancy");
        assert!(violations.is_empty(), "{violations}");
        node.put(Record::Vacancy(v), None).expect("put canary");
    })
    .await
    .unwrap();
    let (mut vdab, mut anpe) = (a.start().await, b.start().await);
    let canary = key("be.vdab/vacancy/CANARY");
    wait_until_ok(
        "the start-up sweep expired the canary",
        SYNC,
        || match vacancy_status(&vdab, &canary) {
            Some((2, VacancyStatus::Expired)) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;

    // VDAB: P1 7212 BE-VAN 3 positions (WELD), P2 2221 BE 2 positions not international,
    // LATE 7212 past due, 4 positions; a 2090 line 7212 [QN].
    // ANPE: T1 7212 TG 1 position (WELD); 2090-Q1 supply 7212 120/45, 2221 suppressed.
    put_vacancy(
        &vdab,
        pb::Vacancy {
            posted_on: "2090-05-01".into(),
            positions: 3,
            open_to_international: true,
            skills: skills(&[(WELD, "", true)]),
            ..vacancy("P1", "7212", "BE", "BE-VAN")
        },
    )
    .await;
    put_vacancy(
        &vdab,
        pb::Vacancy {
            posted_on: "2090-05-02".into(),
            positions: 2,
            open_to_international: false,
            ..vacancy("P2", "2221", "BE", "")
        },
    )
    .await;
    put_vacancy(&vdab, past_due("LATE", "7212", 4)).await;
    put_shortage(&vdab, shortage("S-7212", 2090, "7212", &[QN])).await;
    put_vacancy(
        &anpe,
        pb::Vacancy {
            posted_on: "2090-05-03".into(),
            positions: 1,
            open_to_international: true,
            skills: skills(&[(WELD, "", true)]),
            ..vacancy("T1", "7212", "TG", "TG-M")
        },
    )
    .await;
    put_cell(
        &anpe,
        cell("C-7212", "2090-Q1", "7212", "TG-M", Some((120, 45))),
    )
    .await;
    put_cell(&anpe, cell("C-2221", "2090-Q1", "2221", "TG-M", None)).await;

    const WELD_LABEL: &str = "apply arc welding techniques";
    // At D: 7212 = P1 (3, intl) + T1 (1, intl): 2, 4, 2; countries BE and TG: BE's 2090 line
    // gives [QN]. 2221 = P2: 1, 2, 0, no line. On 2024-01-20: LATE (7212, 4 positions) only:
    // the canary (8332) is EXPIRED. Gap: 7212 in shortage with 120 job seekers: matched, BE
    // demand P1 1/3; 2221 demand 1/2, suppressed supply, no line. Skills at D: 3 open
    // vacancies (P1 P2 T1), WELD in P1 and T1: 2, 4 positions, share 2/3.
    // Trend (any status): 2024-01 BE canary + LATE; 2090-05 BE P1 P2; 2090-05 TG T1.
    let mut want = Followed {
        now: vec![
            occ_row("7212", 2, 4, 2, &[QN]),
            occ_row("2221", 1, 2, 0, &[]),
        ],
        then: vec![occ_row("7212", 1, 4, 1, &[QN])],
        gap: vec![
            gap_row("7212", (1, 3), &[QN], (n(120), n(45)), "2090-Q1", true),
            gap_row(
                "2221",
                (1, 2),
                &[],
                (suppressed(), suppressed()),
                "2090-Q1",
                false,
            ),
        ],
        skills: pb::SkillsDemandResponse {
            matching_vacancies: 3,
            rows: vec![skill_row(WELD, WELD_LABEL, 2, 4, 2, 2.0 / 3.0)],
        },
        trend: vec![
            trend_row("2024-01", "BE", 2),
            trend_row("2090-05", "BE", 2),
            trend_row("2090-05", "TG", 1),
        ],
    };
    both_answer("records of both origins counted", [&vdab, &anpe], &want).await;

    // VDAB withdraws P1; the tombstone reaches ANPE. 7212 at D: T1 only, whose country TG has
    // no list: no causes; 2221 and 7212 tie on 1 vacancy: by code. The gap keeps 7212 matched
    // (shortage and supply) with no demand. Skills: 2 open (P2 T1), WELD 1, 1, share 1/2.
    withdraw(&vdab, "P1").await;
    want.now = vec![occ_row("2221", 1, 2, 0, &[]), occ_row("7212", 1, 1, 1, &[])];
    want.gap[0] = gap_row("7212", (0, 0), &[QN], (n(120), n(45)), "2090-Q1", true);
    want.skills = pb::SkillsDemandResponse {
        matching_vacancies: 2,
        rows: vec![skill_row(WELD, WELD_LABEL, 1, 1, 1, 0.5)],
    };
    both_answer("the withdrawal counted", [&vdab, &anpe], &want).await;

    // VDAB's sweep (run here directly) expires LATE; on 2024-01-20 nothing is open any more.
    let expired = vdab.node().expire_due(Date::today()).expect("expire_due");
    assert_eq!(expired, 1, "LATE, the one past-due vacancy still OPEN");
    want.then = vec![];
    both_answer("the expiry counted", [&vdab, &anpe], &want).await;

    // restarts rebuild the index from the store: the same answers to everything
    let dates = [D, "2024-01-20"];
    for node in [&mut anpe, &mut vdab] {
        let before = battery(node.channel("analyst").await, &dates).await;
        node.stop().await;
        node.start_again().await;
        let after = battery(node.channel("analyst").await, &dates).await;
        assert!(
            before == after,
            "{} answers differently after a restart:\nbefore {before:#?}\nafter {after:#?}",
            node.agency()
        );
    }
    both_answer("after restarts", [&vdab, &anpe], &want).await;

    // ANPE purges the tombstones it received (P1, LATE, the canary): they leave the trend.
    let purged = anpe
        .node()
        .purge_tombstones(0, passerelle_node::now_micros() + 1)
        .expect("purge");
    assert_eq!(purged, 3);
    let mut c = anpe.analytics("analyst").await;
    assert_eq!(
        trend(&mut c, pb::DemandFilter::default(), "").await,
        vec![trend_row("2090-05", "BE", 1), trend_row("2090-05", "TG", 1)]
    );
}

// ---------------------------------------------------------------- 3. live index = rebuild

/// splitmix64: a small seeded generator, so that a failing history can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

const UNITS: [&str; 8] = [
    "2221", "2512", "5120", "7212", "7213", "7411", "8332", "2211",
];
const PLACES: [(&str, &str); 8] = [
    ("BE", "BE-VAN"),
    ("BE", "BE-VBR"),
    ("BE", "BE-WHT"),
    ("BE", ""),
    ("FR", ""),
    ("TG", "TG-M"),
    ("TG", "TG-K"),
    ("TG", ""),
];
const SKILLS: [&str; 4] = [
    WELD,
    OPW,
    ENG,
    "http://data.europa.eu/esco/skill/0005c151-5b5a-4a66-8aac-60e734beb1ab",
];
const LABELS: [&str; 4] = ["", "Engels", "English", "soudage"];

fn date(d: i32) -> String {
    Date(d).to_string()
}

fn random_skills(rng: &mut Rng) -> Vec<pb::Skill> {
    let mut out = Vec::new();
    for uri in SKILLS {
        if rng.chance(40) {
            out.push(pb::Skill {
                esco_uri: uri.into(),
                label: (rng.pick(&LABELS)).into(),
                essential: rng.chance(50),
            });
        }
    }
    out
}

/// A random valid vacancy around today: some open, some closed or past due, some tombstones.
fn random_vacancy(rng: &mut Rng, id: &str) -> Record {
    let today = Date::today().0;
    let (country, subdivision) = rng.pick(&PLACES);
    let posted = today + rng.range(-500, 40) as i32;
    let closes = if rng.chance(35) {
        String::new()
    } else {
        date(posted + rng.range(0, 400) as i32)
    };
    let status = match rng.below(10) {
        0 => pb::VacancyStatus::Filled,
        1 => pb::VacancyStatus::Withdrawn,
        2 => pb::VacancyStatus::Expired,
        _ => pb::VacancyStatus::Open,
    };
    let v = pb::Vacancy {
        status: status as i32,
        posted_on: date(posted),
        closes_on: closes,
        positions: rng.range(1, 5) as u32,
        open_to_international: rng.chance(50),
        skills: random_skills(rng),
        ..vacancy(id, rng.pick(&UNITS), country, subdivision)
    };
    let (v, violations) = passerelle::convert::vacancy_in(v, "vacancy");
    assert!(violations.is_empty(), "{violations}");
    Record::Vacancy(v)
}

fn random_shortage(rng: &mut Rng, id: &str) -> Record {
    let (country, subdivision) = match rng.below(5) {
        0 => ("BE", "BE-VLG"),
        1 => ("BE", "BE-WAL"),
        2 => ("BE", ""),
        3 => ("TG", "TG-M"),
        _ => ("FR", ""),
    };
    let mut causes: Vec<i32> = [QN, QL, WC]
        .into_iter()
        .filter(|_| rng.chance(50))
        .collect();
    if causes.is_empty() {
        causes.push(rng.pick(&[QN, QL, WC]));
    }
    if rng.chance(50) {
        causes.reverse();
    }
    let s = pb::Shortage {
        list: (rng.pick(&["vdab-knelpuntberoepen", "forem-penurie"])).into(),
        country: country.into(),
        subdivision: subdivision.into(),
        skills: random_skills(rng),
        ..shortage(id, rng.range(2024, 2027) as u32, rng.pick(&UNITS), &causes)
    };
    let (s, violations) = passerelle::convert::shortage_in(s, "shortage");
    assert!(violations.is_empty(), "{violations}");
    Record::Shortage(s)
}

fn random_cell(rng: &mut Rng, id: &str) -> Record {
    let unit = rng.pick(&UNITS);
    let isco = &unit[..rng.range(1, 4) as usize];
    let counts = match rng.below(5) {
        0 => None,
        1 => Some((0, 0)),
        _ => {
            let registered = rng.range(5, 500) as u64;
            let willing = if rng.chance(20) {
                0
            } else {
                rng.range(5, registered as i64) as u64
            };
            Some((registered, willing))
        }
    };
    let (country, subdivision) = rng.pick(&[("TG", "TG-M"), ("TG", ""), ("BE", "")]);
    let c = pb::SupplyCell {
        country: country.into(),
        ..cell(
            id,
            rng.pick(&["2025", "2026-Q1", "2026-Q2", "2026-06", "2026"]),
            isco,
            subdivision,
            counts,
        )
    };
    let (c, violations) = passerelle::convert::supply_in(c);
    assert!(violations.is_empty(), "{violations}");
    Record::Supply(c)
}

/// A random record of a random kind, new (`next` counter) or replacing one of `known`.
fn random_record(
    rng: &mut Rng,
    prefix: &str,
    next: &mut u32,
    known: &mut Vec<(Kind, String)>,
) -> Record {
    let replace = !known.is_empty() && rng.chance(40);
    let (kind, id) = if replace {
        known[rng.below(known.len())].clone()
    } else {
        *next += 1;
        let kind = match rng.below(10) {
            0..=5 => Kind::Vacancy,
            6 | 7 => Kind::Shortage,
            _ => Kind::Supply,
        };
        let id = format!("{prefix}-{next}");
        known.push((kind, id.clone()));
        (kind, id)
    };
    match kind {
        Kind::Vacancy => random_vacancy(rng, &id),
        Kind::Shortage => random_shortage(rng, &id),
        Kind::Supply => random_cell(rng, &id),
    }
}

/// What one history of operations did, for the failure message.
#[derive(Debug, Default)]
struct History {
    counts: BTreeMap<&'static str, u64>,
}

impl History {
    fn did(&mut self, what: &'static str) {
        self.add(what, 1);
    }

    fn add(&mut self, what: &'static str, n: u64) {
        *self.counts.entry(what).or_default() += n;
    }
}

/// `steps` random operations: own puts, updates, withdrawals, imports (with a bad item now
/// and then), expiry, tombstone purges and dropped partner records on `main`; writes on
/// `peer`, which `main` pulls.
fn random_ops(
    rng: &mut Rng,
    steps: usize,
    main: &passerelle_node::Node,
    peer: &passerelle_node::Node,
    next: &mut [u32; 2],
    known: &mut [Vec<(Kind, String)>; 2],
    history: &mut History,
) {
    for _ in 0..steps {
        match rng.below(100) {
            0..=25 => {
                let r = random_record(rng, "M", &mut next[0], &mut known[0]);
                main.put(r, None).expect("put");
                history.did("put");
            }
            26..=33 => {
                let vacancies: Vec<&String> = known[0]
                    .iter()
                    .filter(|(k, _)| *k == Kind::Vacancy)
                    .map(|(_, id)| id)
                    .collect();
                if let Some(id) = vacancies.get(rng.below(vacancies.len().max(1))) {
                    // the id may have been refused in an import, or purged since
                    match main.withdraw(id, None) {
                        Ok(_) => history.did("withdraw"),
                        Err(passerelle_node::NodeError::NotFound(_)) => {}
                        Err(e) => panic!("withdraw {id}: {e}"),
                    }
                }
            }
            34..=43 => {
                let size = rng.range(1, 8) as usize;
                let mut items = Vec::new();
                for _ in 0..size {
                    let r = random_record(rng, "M", &mut next[0], &mut known[0]);
                    // now and then an item whose expected revision cannot match: refused alone
                    let expected = rng.chance(10).then_some(999);
                    items.push((r, expected, Violations::new()));
                }
                let written = main
                    .put_many(items)
                    .iter()
                    .filter(|r| matches!(r, Ok(w) if w.changed))
                    .count();
                history.did("import");
                history.add("imported records", written as u64);
            }
            44..=46 => {
                let n = main.expire_due(Date::today()).expect("expire_due");
                history.did("expire_due");
                history.add("expired", n);
            }
            47..=49 => {
                let n = main
                    .purge_tombstones(0, passerelle_node::now_micros() + 1)
                    .expect("purge_tombstones");
                history.did("purge_tombstones");
                history.add("purged", n);
            }
            50..=54 => {
                // as after a snapshot from the peer that no longer had some of its records
                let peer_agency = peer.agency().clone();
                let mut held: Vec<String> = main
                    .store()
                    .iter(None)
                    .map(|r| r.expect("stored"))
                    .filter(|r| r.key.origin == peer_agency)
                    .map(|r| r.key.to_string())
                    .collect();
                // always the same draws, whatever sync has delivered: the history replays
                let gone = rng.range(1, 2) as usize;
                let picks = [rng.next(), rng.next()];
                for pick in &picks[..gone] {
                    if !held.is_empty() {
                        let i = (*pick % held.len() as u64) as usize;
                        held.swap_remove(i);
                    }
                }
                let seen: HashSet<String> = held.into_iter().collect();
                let n = main.drop_unseen(&peer_agency, &seen).expect("drop_unseen");
                history.did("drop_unseen");
                history.add("dropped", n);
            }
            55..=89 => {
                let r = random_record(rng, "P", &mut next[1], &mut known[1]);
                peer.put(r, None).expect("peer put");
                history.did("peer put");
            }
            _ => {
                let vacancies: Vec<&String> = known[1]
                    .iter()
                    .filter(|(k, _)| *k == Kind::Vacancy)
                    .map(|(_, id)| id)
                    .collect();
                if let Some(id) = vacancies.get(rng.below(vacancies.len().max(1))) {
                    // the id may have been refused in an import, or purged since
                    match peer.withdraw(id, None) {
                        Ok(_) => history.did("peer withdraw"),
                        Err(passerelle_node::NodeError::NotFound(_)) => {}
                        Err(e) => panic!("peer withdraw {id}: {e}"),
                    }
                }
            }
        }
    }
}

/// The filters the comparison runs every demand query with, around `today`.
fn filters(today: i32) -> Vec<a::DemandQuery> {
    let mut out = Vec::new();
    for as_of in [today, today - 200, today + 30, today - 20] {
        let base = a::DemandQuery::new(Date(as_of));
        out.push(base.clone());
        out.push(a::DemandQuery {
            countries: vec!["BE".into()],
            ..base.clone()
        });
        out.push(a::DemandQuery {
            countries: vec!["TG".into(), "FR".into()],
            open_to_international: Some(true),
            ..base.clone()
        });
        out.push(a::DemandQuery {
            subdivisions: vec!["BE-VLG".into()],
            ..base.clone()
        });
        out.push(a::DemandQuery {
            subdivisions: vec!["TG-M".into(), "BE-WAL".into()],
            ..base.clone()
        });
        for p in ["2", "72", "7212", "8"] {
            out.push(a::DemandQuery {
                isco_prefix: p.into(),
                ..base.clone()
            });
        }
        out.push(a::DemandQuery {
            origins: vec![ANPE.into()],
            ..base.clone()
        });
        out.push(a::DemandQuery {
            origins: vec![VDAB.into()],
            open_to_international: Some(false),
            ..base.clone()
        });
        out.push(a::DemandQuery {
            posted_from: Some(Date(today - 100)),
            posted_to: Some(Date(today)),
            ..base.clone()
        });
        out.push(a::DemandQuery {
            countries: vec!["BE".into()],
            isco_prefix: "72".into(),
            posted_from: Some(Date::from_ymd(2026, 1, 1).unwrap()),
            posted_to: Some(Date::from_ymd(2026, 6, 30).unwrap()),
            ..base.clone()
        });
    }
    out
}

/// An index built from every record `node`'s store holds, applied in reverse key order (the
/// order of application must not matter), with `day` as its roll day.
fn rebuild(node: &passerelle_node::Node, day: Date) -> Result<a::Analytics, String> {
    let fresh = a::Analytics::with_day(day);
    let mut records = Vec::new();
    for s in node.store().iter(None) {
        let s = s.map_err(|e| e.to_string())?;
        let r = passerelle_node::decode(&s).map_err(|e| e.to_string())?;
        records.push((s.key, r));
    }
    records.reverse();
    fresh.apply_all(records.iter().map(|(k, r)| (k, Some(r))));
    Ok(fresh)
}

/// Every query of `live` against `other`: how many answers were compared, and the first
/// differences.
fn compare(live: &a::Analytics, other: &a::Analytics, name: &str) -> (usize, Vec<String>) {
    let mut diffs: Vec<String> = Vec::new();
    let mut compared = 0usize;
    let mut check = |what: String, l: String, f: String| {
        compared += 1;
        if l != f && diffs.len() < 5 {
            diffs.push(format!("{what}:\n live  {l}\n {name} {f}"));
        }
    };
    let today = Date::today().0;
    for q in filters(today) {
        for top in [50, 2] {
            check(
                format!("skills_demand {q:?} top {top}"),
                format!("{:?}", live.skills_demand(&q, top)),
                format!("{:?}", other.skills_demand(&q, top)),
            );
        }
        for level in 1..=4 {
            check(
                format!("occupation_demand {q:?} level {level}"),
                format!("{:?}", live.occupation_demand(&q, level)),
                format!("{:?}", other.occupation_demand(&q, level)),
            );
        }
        for skill in [None, Some(ENG), Some(WELD)] {
            check(
                format!("demand_trend {q:?} {skill:?}"),
                format!("{:?}", live.demand_trend(&q, skill)),
                format!("{:?}", other.demand_trend(&q, skill)),
            );
        }
    }
    for as_of in [today, today - 200, today + 30] {
        for country in ["BE", "FR", "TG"] {
            for year in [None, Some(2024), Some(2025), Some(2026), Some(2027)] {
                check(
                    format!("shortage_overview {country} {year:?} {as_of}"),
                    format!("{:?}", live.shortage_overview(country, year, Date(as_of))),
                    format!("{:?}", other.shortage_overview(country, year, Date(as_of))),
                );
            }
        }
        for (dest, src) in [("BE", "TG"), ("TG", "BE"), ("FR", "TG"), ("BE", "BE")] {
            for level in 1..=4 {
                check(
                    format!("supply_gap {dest} {src} {level} {as_of}"),
                    format!("{:?}", live.supply_gap(dest, src, level, Date(as_of))),
                    format!("{:?}", other.supply_gap(dest, src, level, Date(as_of))),
                );
            }
        }
    }
    (compared, diffs)
}

/// Compares every query of the live index with an index rebuilt from the store with the same
/// roll day (does the node feed the index every change?), and with one rebuilt with another
/// roll day (so that the live "open today" aggregates, kept up to date change by change, are
/// compared with plain scans of the rows).
fn compare_with_rebuild(node: &passerelle_node::Node) -> Result<usize, String> {
    let live = node.analytics();
    let fresh = rebuild(node, live.day())?;
    let (ls, fs) = (live.stats(), fresh.stats());
    let counts = |s: &a::Stats| {
        (
            s.vacancies,
            s.open_vacancies,
            s.shortage_lines,
            s.supply_cells,
        )
    };
    let mut diffs = Vec::new();
    if counts(&ls) != counts(&fs) {
        diffs.push(format!(
            "stats (vacancies, open, lines, cells): live {:?}, rebuilt {:?}",
            counts(&ls),
            counts(&fs)
        ));
    }
    let (n1, d1) = compare(live, &fresh, "rebuilt");
    let scans = rebuild(node, Date(live.day().0 - 37))?;
    let (n2, d2) = compare(live, &scans, "rebuilt, other roll day");
    diffs.extend(d1);
    diffs.extend(d2);
    if diffs.is_empty() {
        Ok(n1 + n2)
    } else {
        Err(diffs.join("\n"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_index_equals_one_rebuilt_from_the_store_after_a_random_history() {
    let seed: u64 = std::env::var("ANALYTICS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_129);
    eprintln!("ANALYTICS_SEED={seed}");
    let (m, p) = (PendingNode::init(VDAB).await, PendingNode::init(ANPE).await);
    federate_pair(&m.node, &PeerEntry::pull(), &p.node, &PeerEntry::serve());
    for n in [&m.node, &p.node] {
        n.configure_sync(&[("sweep_interval_secs", 3600)]);
    }
    let (m, p) = (m.start().await, p.start().await);
    let (main, peer) = (m.node_arc(), p.node_arc());

    let mut state = (
        Rng(seed),
        [0u32; 2],
        [Vec::new(), Vec::new()],
        History::default(),
    );
    let mut compared = 0;
    for round in 0..3 {
        let (main2, peer2) = (Arc::clone(&main), Arc::clone(&peer));
        state = tokio::task::spawn_blocking(move || {
            let (mut rng, mut next, mut known, mut history) = state;
            random_ops(
                &mut rng,
                100,
                &main2,
                &peer2,
                &mut next,
                &mut known,
                &mut history,
            );
            (rng, next, known, history)
        })
        .await
        .expect("operations");
        // everything the peer wrote has been delivered
        let head = peer.store().head_seq();
        wait_until_ok("main pulled all of the peer's log", SYNC, || {
            let c = main.store().cursor(ANPE).expect("cursor").unwrap_or(0);
            if c >= head {
                Ok(())
            } else {
                Err(format!("cursor {c}, peer head {head}"))
            }
        })
        .await;
        // the index is updated right after the store, under the node's write lock: poll
        let node = Arc::clone(&main);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let n2 = Arc::clone(&node);
            match tokio::task::spawn_blocking(move || compare_with_rebuild(&n2))
                .await
                .unwrap()
            {
                Ok(n) => {
                    compared += n;
                    break;
                }
                Err(last) => assert!(
                    Instant::now() < deadline,
                    "seed {seed}, round {round}, after {:?}: the live index differs from a rebuild:\n{last}",
                    state.3
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let held: BTreeSet<Kind> = main
        .store()
        .iter(None)
        .map(|r| r.expect("stored").key.kind)
        .collect();
    assert_eq!(held.len(), 3, "the history produced records of every kind");
    let ops = &state.3.counts;
    for op in [
        "put",
        "withdraw",
        "import",
        "expire_due",
        "purge_tombstones",
        "drop_unseen",
        "peer put",
        "peer withdraw",
        "imported records",
        "expired",
        "purged",
        "dropped",
    ] {
        assert!(
            ops.get(op).copied().unwrap_or(0) > 0,
            "{op} never ran: {ops:?}"
        );
    }
    eprintln!("{compared} answers compared; operations {ops:?}");
}

// ---------------------------------------------------------------- 4. bad filters

/// The fields a refused call names, after checking it is INVALID_ARGUMENT.
fn refused_fields<T: std::fmt::Debug>(
    what: &str,
    r: Result<tonic::Response<T>, tonic::Status>,
) -> Vec<String> {
    let s = match r {
        Ok(r) => panic!("{what}: accepted: {r:?}"),
        Err(s) => s,
    };
    assert_eq!(s.code(), Code::InvalidArgument, "{what}: {s:?}");
    let fields: Vec<String> = passerelle::error::violations_of(&s)
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    assert!(
        fields
            .first()
            .is_some_and(|f| s.message().contains(f.as_str())),
        "{what}: the message names the field: {s:?}"
    );
    fields
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_filters_are_invalid_argument_naming_the_field() {
    let node = TestNode::start(VDAB).await;
    let mut c = node.analytics("analyst").await;
    let skills = |filter: pb::DemandFilter, top: u32| pb::SkillsDemandRequest {
        filter: Some(filter),
        top,
    };
    for (prefix, why) in [
        ("99", "unknown group"),
        ("1a", "not digits"),
        ("12345", "5 digits"),
    ] {
        let f = pb::DemandFilter {
            isco_prefix: prefix.into(),
            ..Default::default()
        };
        assert_eq!(
            refused_fields(why, c.skills_demand(skills(f.clone(), 0)).await),
            ["filter.isco_prefix"]
        );
        assert_eq!(
            refused_fields(
                why,
                c.demand_trend(pb::DemandTrendRequest {
                    filter: Some(f),
                    skill_uri: String::new()
                })
                .await
            ),
            ["filter.isco_prefix"]
        );
    }
    let f = pb::DemandFilter {
        countries: vec!["BE".into(), "XX".into()],
        ..Default::default()
    };
    assert_eq!(
        refused_fields(
            "country XX",
            c.occupation_demand(pb::OccupationDemandRequest {
                filter: Some(f),
                level: 4
            })
            .await
        ),
        ["filter.countries[1]"]
    );
    for bad in ["BE-ZZZ", "XX-YY", "BE"] {
        let f = pb::DemandFilter {
            subdivisions: vec![bad.into()],
            ..Default::default()
        };
        assert_eq!(
            refused_fields(bad, c.skills_demand(skills(f, 0)).await),
            ["filter.subdivisions[0]"]
        );
    }
    let f = pb::DemandFilter {
        origins: vec!["vdab".into()],
        ..Default::default()
    };
    assert_eq!(
        refused_fields("origin", c.skills_demand(skills(f, 0)).await),
        ["filter.origins[0]"]
    );
    let f = pb::DemandFilter {
        posted_from: "2090-06-02".into(),
        posted_to: "2090-06-01".into(),
        ..Default::default()
    };
    assert_eq!(
        refused_fields(
            "inverted window",
            c.demand_trend(pb::DemandTrendRequest {
                filter: Some(f),
                skill_uri: String::new()
            })
            .await
        ),
        ["filter.posted_to"]
    );
    for bad in ["2090-02-30", "15/06/2090", "today"] {
        assert_eq!(
            refused_fields(bad, c.skills_demand(skills(at(bad), 0)).await),
            ["filter.as_of"]
        );
        assert_eq!(
            refused_fields(
                bad,
                c.shortage_overview(pb::ShortageOverviewRequest {
                    country: "BE".into(),
                    year: 0,
                    as_of: bad.into()
                })
                .await
            ),
            ["as_of"]
        );
        assert_eq!(
            refused_fields(
                bad,
                c.supply_gap(pb::SupplyGapRequest {
                    destination: "BE".into(),
                    source: "TG".into(),
                    level: 4,
                    as_of: bad.into()
                })
                .await
            ),
            ["as_of"]
        );
    }
    // level: 0 is the default (4), 1..4 are accepted, 5 is not
    for level in 0..=4 {
        c.occupation_demand(pb::OccupationDemandRequest {
            filter: None,
            level,
        })
        .await
        .unwrap_or_else(|s| panic!("level {level}: {s:?}"));
        c.supply_gap(pb::SupplyGapRequest {
            destination: "BE".into(),
            source: "TG".into(),
            level,
            as_of: String::new(),
        })
        .await
        .unwrap_or_else(|s| panic!("gap level {level}: {s:?}"));
    }
    assert_eq!(
        refused_fields(
            "level 5",
            c.occupation_demand(pb::OccupationDemandRequest {
                filter: None,
                level: 5
            })
            .await
        ),
        ["level"]
    );
    assert_eq!(
        refused_fields(
            "gap level 5",
            c.supply_gap(pb::SupplyGapRequest {
                destination: "BE".into(),
                source: "TG".into(),
                level: 5,
                as_of: String::new()
            })
            .await
        ),
        ["level"]
    );
    // top: 0 is the default, up to 1000
    for top in [0, 1, 1000] {
        c.skills_demand(skills(Default::default(), top))
            .await
            .unwrap_or_else(|s| panic!("top {top}: {s:?}"));
    }
    for top in [1001, 5000] {
        assert_eq!(
            refused_fields(
                "top",
                c.skills_demand(skills(Default::default(), top)).await
            ),
            ["top"]
        );
    }
    // SupplyGap needs both countries
    assert_eq!(
        refused_fields(
            "no destination",
            c.supply_gap(pb::SupplyGapRequest {
                destination: String::new(),
                source: "TG".into(),
                level: 0,
                as_of: String::new()
            })
            .await
        ),
        ["destination"]
    );
    assert_eq!(
        refused_fields(
            "nothing",
            c.supply_gap(pb::SupplyGapRequest::default()).await
        ),
        ["destination", "source"]
    );
    assert_eq!(
        refused_fields(
            "source XX",
            c.supply_gap(pb::SupplyGapRequest {
                destination: "BE".into(),
                source: "XX".into(),
                level: 0,
                as_of: String::new()
            })
            .await
        ),
        ["source"]
    );
    // ShortageOverview: a country is required; a year is 0 or 1990..2100
    assert_eq!(
        refused_fields(
            "no country",
            c.shortage_overview(pb::ShortageOverviewRequest::default())
                .await
        ),
        ["country"]
    );
    assert_eq!(
        refused_fields(
            "year 1700",
            c.shortage_overview(pb::ShortageOverviewRequest {
                country: "BE".into(),
                year: 1700,
                as_of: String::new()
            })
            .await
        ),
        ["year"]
    );
    // DemandTrend: an unknown skill URI
    assert_eq!(
        refused_fields(
            "unknown skill",
            c.demand_trend(pb::DemandTrendRequest {
                filter: None,
                skill_uri: "http://data.europa.eu/esco/skill/no-such-skill".into()
            })
            .await
        ),
        ["skill_uri"]
    );
    // every bad field of one request is named, in field order
    let f = pb::DemandFilter {
        countries: vec!["XX".into()],
        subdivisions: vec!["BE-ZZZ".into()],
        isco_prefix: "99".into(),
        origins: vec!["vdab".into()],
        open_to_international: None,
        posted_from: "2090-06-02".into(),
        posted_to: "2090-06-01".into(),
        as_of: "2090-13-01".into(),
    };
    assert_eq!(
        refused_fields("all", c.skills_demand(skills(f, 5000)).await),
        [
            "filter.countries[0]",
            "filter.subdivisions[0]",
            "filter.isco_prefix",
            "filter.origins[0]",
            "filter.posted_to",
            "filter.as_of",
            "top"
        ]
    );
    // codes are normalised, not refused
    let f = pb::DemandFilter {
        countries: vec![" be ".into()],
        subdivisions: vec!["be-van".into()],
        origins: vec!["BE.VDAB".into()],
        ..Default::default()
    };
    c.skills_demand(skills(f, 0))
        .await
        .expect("lower-case codes and spaces are accepted");
}

// ---------------------------------------------------------------- 5. permissions

async fn may_query(ch: Channel) -> Result<(), tonic::Status> {
    AnalyticsClient::new(ch)
        .supply_gap(pb::SupplyGapRequest {
            destination: "BE".into(),
            source: "TG".into(),
            level: 0,
            as_of: String::new(),
        })
        .await
        .map(|_| ())
}

fn client_pem(node: &TestNode, name: &str) -> passerelle_pki::Pem {
    let dir = &node.init.dir;
    if name == "node" {
        read_pem(&dir.join("node.pem"), &dir.join("node-key.pem"))
    } else {
        read_pem(
            &dir.join(format!("clients/{name}.pem")),
            &dir.join(format!("clients/{name}-key.pem")),
        )
    }
}

/// Whether `node` lets the certificate `role` of `of` query Analytics (Err: the status code).
async fn verdict(node: &TestNode, of: &TestNode, role: &str) -> Result<(), Code> {
    let ch = connect_raw(node, Some(&client_pem(of, role)))
        .await
        .unwrap_or_else(|e| panic!("connect as {} {role}: {e:#}", of.agency()));
    may_query(ch).await.map_err(|s| s.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysts_and_operators_may_query_publishers_and_unlisted_partners_may_not() {
    let vdab = PendingNode::init(VDAB).await;
    let anpe = PendingNode::init(ANPE).await.close_port();
    let ft = PendingNode::init(FT).await.close_port();
    // VDAB trusts both partners' CAs (a TLS client certificate of theirs is accepted) and
    // peers with ANPE (so ANPE's node may call Federation, and nothing else)
    trust_partner(&vdab.node, &anpe);
    trust_partner(&vdab.node, &ft);
    add_peer(&vdab.node, &anpe, &PeerEntry::serve());
    let mut vdab = vdab.start().await;

    for role in ["analyst", "operator"] {
        assert_eq!(verdict(&vdab, &vdab, role).await, Ok(()), "own {role}");
    }
    let denied = Err(Code::PermissionDenied);
    assert_eq!(
        verdict(&vdab, &vdab, "publisher").await,
        denied,
        "own publisher"
    );
    for role in ["analyst", "operator", "publisher", "node"] {
        assert_eq!(
            verdict(&vdab, &anpe, role).await,
            denied,
            "ANPE {role}, not listed"
        );
        assert_eq!(
            verdict(&vdab, &ft, role).await,
            denied,
            "FT {role}, not listed"
        );
    }
    // the CLI-shaped message says who was refused
    let ch = connect_raw(&vdab, Some(&client_pem(&anpe, "analyst")))
        .await
        .unwrap();
    let s = may_query(ch).await.unwrap_err();
    assert!(
        s.message().contains("urn:passerelle:tg.anpe:analyst"),
        "{s:?}"
    );

    // the operator lists ANPE's analysts: they, and only they, may query
    vdab.stop().await;
    let text = std::fs::read_to_string(&vdab.init.config).unwrap();
    assert!(text.contains("partner_analysts = []"), "{text}");
    std::fs::write(
        &vdab.init.config,
        text.replace("partner_analysts = []", "partner_analysts = [\"tg.anpe\"]"),
    )
    .unwrap();
    vdab.start_again().await;
    assert_eq!(
        verdict(&vdab, &anpe, "analyst").await,
        Ok(()),
        "listed ANPE analyst"
    );
    for role in ["operator", "publisher", "node"] {
        assert_eq!(
            verdict(&vdab, &anpe, role).await,
            denied,
            "ANPE {role}, listed agency"
        );
    }
    for role in ["analyst", "operator", "publisher", "node"] {
        assert_eq!(
            verdict(&vdab, &ft, role).await,
            denied,
            "FT {role}, not listed"
        );
    }
    for role in ["analyst", "operator"] {
        assert_eq!(verdict(&vdab, &vdab, role).await, Ok(()), "own {role}");
    }
    assert_eq!(
        verdict(&vdab, &vdab, "publisher").await,
        denied,
        "own publisher"
    );
}

// ---------------------------------------------------------------- 6. CLI

/// Runs `passerelle query ARGS --profile PROFILE` off the async runtime.
async fn query_cmd(profile: &std::path::Path, args: &[&str]) -> Run {
    let mut all: Vec<String> = vec!["query".into()];
    all.extend(args.iter().map(|s| s.to_string()));
    all.push("--profile".into());
    all.push(profile.display().to_string());
    tokio::task::spawn_blocking(move || run_bin(all, Duration::from_secs(120)))
        .await
        .unwrap()
}

/// Splits an aligned table into cells by the header's column starts, checking that every
/// column of every row starts there after a two-space gap.
fn parse_table(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = text.lines();
    let header = lines.next().expect("a header line");
    let names: Vec<&str> = header.split_whitespace().collect();
    let mut starts = Vec::new();
    let mut from = 0;
    for name in &names {
        let at = from + header[from..].find(name).expect("header name");
        starts.push(at);
        from = at + name.len();
    }
    let cells = |line: &str| -> Vec<String> {
        let chars: Vec<char> = line.chars().collect();
        starts
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                if i > 0 {
                    assert_eq!(
                        &chars[s - 2..s],
                        &[' ', ' '],
                        "column {} of {line:?} starts after two spaces at {s}",
                        names[i]
                    );
                }
                let end = starts
                    .get(i + 1)
                    .map_or(chars.len(), |e| (*e).min(chars.len()));
                chars[s.min(chars.len())..end]
                    .iter()
                    .collect::<String>()
                    .trim()
                    .to_owned()
            })
            .collect()
    };
    let rows = lines.map(cells).collect();
    (names.into_iter().map(String::from).collect(), rows)
}

/// A JSON value as the text of a table cell.
fn cell_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One node with BE demand, a BE shortage list and, published by the same agency (any origin
/// may describe any country), TG supply; every date keeps the records open for decades.
async fn cli_node() -> TestNode {
    let node = TestNode::start(VDAB).await;
    for v in [
        pb::Vacancy {
            posted_on: "2026-01-05".into(),
            closes_on: "2099-12-31".into(),
            positions: 3,
            ..vacancy("W1", "7212", "BE", "BE-VAN")
        },
        pb::Vacancy {
            posted_on: "2026-01-06".into(),
            positions: 4,
            ..vacancy("N1", "2221", "BE", "BE-VBR")
        },
    ] {
        put_vacancy(&node, v).await;
    }
    put_shortage(&node, shortage("S1", 2026, "7212", &[QN])).await;
    put_shortage(&node, shortage("S2", 2026, "2221", &[WC, QN])).await;
    put_cell(
        &node,
        cell("C1", "2026-Q1", "7212", "TG-M", Some((120, 45))),
    )
    .await;
    put_cell(&node, cell("C2", "2026-Q1", "2221", "TG-M", None)).await;
    put_cell(&node, cell("C3", "2026-Q1", "2512", "TG-M", Some((60, 20)))).await;
    node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_gap_prints_an_aligned_table_csv_and_json_and_refuses_bad_filters() {
    let node = cli_node().await;
    let profile = node.profile_path("analyst");
    let gap_args = ["gap", "--destination", "BE", "--source", "TG"];

    // matched: 2221 (4 positions) then 7212 (3); then 2512 (supply only)
    let want: Vec<Vec<String>> = [
        [
            "2221",
            "yes",
            "1",
            "4",
            "quantitative,working_conditions",
            "suppressed",
            "suppressed",
            "2026-Q1",
            "Nursing professionals",
        ],
        [
            "7212",
            "yes",
            "1",
            "3",
            "quantitative",
            "120",
            "45",
            "2026-Q1",
            "Welders and flamecutters",
        ],
        [
            "2512",
            "no",
            "0",
            "0",
            "",
            "60",
            "20",
            "2026-Q1",
            "Software developers",
        ],
    ]
    .iter()
    .map(|r| r.iter().map(|c| c.to_string()).collect())
    .collect();
    let header = [
        "isco08",
        "match",
        "open_vacancies",
        "open_positions",
        "shortage_causes",
        "jobseekers",
        "willing_to_migrate",
        "period",
        "label",
    ];

    let run = query_cmd(&profile, &gap_args).await;
    assert!(run.ok(), "{run:#?}");
    let (names, rows) = parse_table(&run.stdout);
    assert_eq!(names, header, "{}", run.stdout);
    assert_eq!(rows, want, "{}", run.stdout);

    let mut args = gap_args.to_vec();
    args.extend(["--format", "csv"]);
    let run = query_cmd(&profile, &args).await;
    assert!(run.ok(), "{run:#?}");
    let mut reader = csv::Reader::from_reader(run.stdout.as_bytes());
    let names: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(names, header);
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.expect("csv record").iter().map(String::from).collect())
        .collect();
    assert_eq!(rows, want, "{}", run.stdout);

    let mut args = gap_args.to_vec();
    args.extend(["--format", "json"]);
    let run = query_cmd(&profile, &args).await;
    assert!(run.ok(), "{run:#?}");
    let json: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    let items = json.as_array().expect("a JSON array");
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|o| {
            let o = o.as_object().expect("an object per row");
            assert_eq!(o.len(), header.len(), "{o:?}");
            header.iter().map(|h| cell_text(&o[*h])).collect()
        })
        .collect();
    assert_eq!(rows, want, "{}", run.stdout);
    assert_eq!(
        items[1]["jobseekers"],
        serde_json::json!(120),
        "counts are numbers"
    );

    // the level and as-of options reach the node: at level 2, 72/22/25
    let mut args = gap_args.to_vec();
    args.extend(["--level", "2", "--as-of", "2026-06-01", "--format", "csv"]);
    let run = query_cmd(&profile, &args).await;
    assert!(run.ok(), "{run:#?}");
    let firsts: Vec<String> = csv::Reader::from_reader(run.stdout.as_bytes())
        .records()
        .map(|r| r.unwrap()[0].to_owned())
        .collect();
    assert_eq!(firsts, ["22", "72", "25"]);

    // bad filters: exit 1, the field named on stderr, nothing on stdout
    for (args, field) in [
        (
            vec!["gap", "--destination", "BE", "--source", "XX"],
            "source",
        ),
        (
            vec![
                "gap",
                "--destination",
                "BE",
                "--source",
                "TG",
                "--level",
                "5",
            ],
            "level",
        ),
        (vec!["skills", "--isco", "99"], "filter.isco_prefix"),
        (
            vec!["occupations", "--country", "XX"],
            "filter.countries[0]",
        ),
        (
            vec![
                "trend",
                "--posted-from",
                "2026-02-01",
                "--posted-to",
                "2026-01-01",
            ],
            "filter.posted_to",
        ),
        (
            vec!["shortages", "--country", "BE", "--as-of", "2026-02-30"],
            "as_of",
        ),
    ] {
        let run = query_cmd(&profile, &args).await;
        assert_eq!(run.code, Some(1), "{args:?}: {run:#?}");
        assert!(
            run.stderr.contains(&format!("{field}:")),
            "{args:?}: stderr names {field}: {run:#?}"
        );
        assert!(run.stdout.is_empty(), "{args:?}: {run:#?}");
    }

    // the publisher is refused: exit 1 and why
    let run = query_cmd(&node.profile_path("publisher"), &gap_args).await;
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(
        run.stderr.contains("PERMISSION_DENIED") || run.stderr.contains("may not"),
        "{run:#?}"
    );
}

/// `--format json` turns every cell that parses as a JSON number into a number, so a code
/// field changes type with its value: ISCO `7212` is a number, `0110` a string; a period
/// `2026` is a number, `2026-Q1` a string. Scripts get identifiers whose type depends on the
/// data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_json_keeps_codes_as_strings() {
    let node = TestNode::start(VDAB).await;
    for (id, isco) in [("A1", "0110"), ("W1", "7212")] {
        put_vacancy(
            &node,
            pb::Vacancy {
                posted_on: "2026-01-05".into(),
                ..vacancy(id, isco, "BE", "BE-VAN")
            },
        )
        .await;
    }
    let run = query_cmd(
        &node.profile_path("analyst"),
        &["occupations", "--format", "json"],
    )
    .await;
    assert!(run.ok(), "{run:#?}");
    let json: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    let codes: Vec<&serde_json::Value> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|o| &o["isco08"])
        .collect();
    assert_eq!(codes.len(), 2, "{}", run.stdout);
    for c in codes {
        assert!(c.is_string(), "isco08 {c} is not a string: {}", run.stdout);
    }
}
