//! Records against a real node: field round trips, revisions and no-ops, optimistic
//! concurrency, List filters and paging, Withdraw, Import, compression, health,
//! reflection and message size limits (PRODUCT.md sections 1, 2 and 7).

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use passerelle::error::violations_of;
use passerelle::pb::v1 as pb;
use pb::import_item_result::Outcome;
use tonic::codec::CompressionEncoding;
use tonic::transport::Channel;
use tonic::{Code, Status};

type Vacancies = VacanciesClient<Channel>;
type Shortages = ShortagesClient<Channel>;
type Supply = SupplyClient<Channel>;

const AGENCY: &str = "be.vdab";

// ---------------------------------------------------------------- helpers

fn fields(s: &Status) -> Vec<String> {
    violations_of(s).into_iter().map(|(f, _)| f).collect()
}

#[track_caller]
fn assert_invalid<T: std::fmt::Debug>(r: Result<T, Status>, field: &str) {
    let s = r.expect_err("expected INVALID_ARGUMENT");
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    assert_eq!(fields(&s), [field], "{s:?}");
}

#[track_caller]
fn assert_code<T: std::fmt::Debug>(r: Result<T, Status>, code: Code) {
    let s = r.expect_err("expected an error");
    assert_eq!(s.code(), code, "{s:?}");
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

fn micros(t: &Option<prost_types::Timestamp>) -> i64 {
    let t = t.as_ref().expect("updated_at set");
    t.seconds * 1_000_000 + i64::from(t.nanos) / 1000
}

async fn put_v(
    c: &mut Vacancies,
    v: pb::Vacancy,
    expected_revision: Option<u64>,
) -> Result<(u64, bool), Status> {
    let r = c
        .put(pb::PutVacancyRequest {
            vacancy: Some(v),
            expected_revision,
        })
        .await?
        .into_inner();
    Ok((r.revision, r.changed))
}

async fn get_v(c: &mut Vacancies, id: &str) -> Result<pb::Vacancy, Status> {
    get_v_of(c, "", id).await
}

async fn get_v_of(c: &mut Vacancies, origin: &str, id: &str) -> Result<pb::Vacancy, Status> {
    Ok(c.get(pb::GetVacancyRequest {
        origin: origin.into(),
        id: id.into(),
    })
    .await?
    .into_inner())
}

async fn list_v(c: &mut Vacancies, req: pb::ListVacanciesRequest) -> Vec<String> {
    let r = c.list(req).await.expect("list").into_inner();
    assert!(r.next_page_token.is_empty(), "one page expected");
    r.vacancies.into_iter().map(|v| v.id).collect()
}

async fn put_s(
    c: &mut Shortages,
    s: pb::Shortage,
    expected_revision: Option<u64>,
) -> Result<(u64, bool), Status> {
    let r = c
        .put(pb::PutShortageRequest {
            shortage: Some(s),
            expected_revision,
        })
        .await?
        .into_inner();
    Ok((r.revision, r.changed))
}

async fn get_s(c: &mut Shortages, id: &str) -> Result<pb::Shortage, Status> {
    Ok(c.get(pb::GetShortageRequest {
        origin: String::new(),
        id: id.into(),
    })
    .await?
    .into_inner())
}

async fn list_s(c: &mut Shortages, req: pb::ListShortagesRequest) -> Vec<String> {
    let r = c.list(req).await.expect("list").into_inner();
    assert!(r.next_page_token.is_empty(), "one page expected");
    r.shortages.into_iter().map(|v| v.id).collect()
}

async fn put_c(
    c: &mut Supply,
    cell: pb::SupplyCell,
    expected_revision: Option<u64>,
) -> Result<(u64, bool), Status> {
    let r = c
        .put(pb::PutSupplyRequest {
            cell: Some(cell),
            expected_revision,
        })
        .await?
        .into_inner();
    Ok((r.revision, r.changed))
}

async fn get_c(c: &mut Supply, id: &str) -> Result<pb::SupplyCell, Status> {
    Ok(c.get(pb::GetSupplyRequest {
        origin: String::new(),
        id: id.into(),
    })
    .await?
    .into_inner())
}

async fn list_c(c: &mut Supply, req: pb::ListSupplyRequest) -> Vec<String> {
    let r = c.list(req).await.expect("list").into_inner();
    assert!(r.next_page_token.is_empty(), "one page expected");
    r.cells.into_iter().map(|v| v.id).collect()
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A vacancy that leaves every optional field empty.
fn sparse_vacancy(id: &str) -> pb::Vacancy {
    pb::Vacancy {
        id: id.into(),
        status: pb::VacancyStatus::Filled as i32,
        title: "Cuisinier".into(),
        language: "fr".into(),
        occupation: Some(pb::Occupation {
            isco08: "5120".into(),
            esco_uri: String::new(),
        }),
        location: Some(pb::Location {
            country: "TG".into(),
            ..Default::default()
        }),
        positions: 1,
        posted_on: "2026-01-15".into(),
        ..Default::default()
    }
}

fn vacancy_at(
    id: &str,
    status: pb::VacancyStatus,
    country: &str,
    isco: &str,
    intl: bool,
) -> pb::Vacancy {
    let mut v = full_vacancy(id);
    v.status = status as i32;
    v.occupation.as_mut().unwrap().isco08 = isco.into();
    v.open_to_international = intl;
    if country != "BE" {
        v.location = Some(pb::Location {
            country: country.into(),
            locality: "ailleurs".into(),
            ..Default::default()
        });
    }
    v
}

// ---------------------------------------------------------------- round trips

#[tokio::test]
async fn vacancy_fields_round_trip_and_list_returns_the_same() {
    let node = TestNode::start(AGENCY).await;
    let mut c = node.vacancies("publisher").await;
    let mut full = full_vacancy("V-FULL");
    full.description = "<b>Lassen</b> & co\n\tzonder <script>markup</script>".into();
    full.location.as_mut().unwrap().locality = "Sint-Niklaas — Waasland".into();
    full.salary.as_mut().unwrap().period = pb::SalaryPeriod::Year as i32;
    full.contract = pb::Contract::Seasonal as i32;
    full.schedule = pb::Schedule::Flexible as i32;
    let sparse = sparse_vacancy("V-SPARSE");

    let before = now_micros();
    for v in [&full, &sparse] {
        assert_eq!(put_v(&mut c, v.clone(), None).await.unwrap(), (1, true));
    }
    let after = now_micros();

    let mut got = Vec::new();
    for sent in [&full, &sparse] {
        let g = get_v(&mut c, &sent.id).await.unwrap();
        assert_eq!(g.origin, AGENCY);
        assert_eq!(g.revision, 1);
        let t = micros(&g.updated_at);
        assert!(
            before <= t && t <= after,
            "updated_at {t} not in [{before}, {after}]"
        );
        let mut expected = sent.clone();
        expected.origin = AGENCY.into();
        expected.revision = 1;
        expected.updated_at = g.updated_at;
        assert_eq!(g, expected);
        got.push(g);
    }
    // explicit presence survives: 0 is a level, absent stays absent
    assert_eq!(got[0].isced_level, Some(0));
    assert!(got[0].salary.is_some());
    assert_eq!(got[1].isced_level, None);
    assert_eq!(got[1].salary, None);
    assert_eq!(got[1].contract, 0);
    assert_eq!(got[1].closes_on, "");

    let listed = c
        .list(pb::ListVacanciesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.vacancies, got);
    assert!(listed.next_page_token.is_empty());
}

#[tokio::test]
async fn shortage_fields_round_trip_and_list_returns_the_same() {
    let node = TestNode::start(AGENCY).await;
    let mut c = node.shortages("publisher").await;
    let mut full = full_shortage("S-FULL");
    full.occupation.as_mut().unwrap().esco_uri = first_esco_occupation();
    full.causes = vec![
        pb::ShortageCause::WorkingConditions as i32,
        pb::ShortageCause::Qualitative as i32,
        pb::ShortageCause::Quantitative as i32,
    ];
    let sparse = pb::Shortage {
        id: "S-SPARSE".into(),
        list: "anpe-tensions".into(),
        year: 1990,
        country: "TG".into(),
        occupation: Some(pb::Occupation {
            isco08: "7212".into(),
            esco_uri: String::new(),
        }),
        causes: vec![pb::ShortageCause::Qualitative as i32],
        unfilled_vacancies: Some(0),
        median_days_open: None,
        jobseekers_per_100_vacancies: Some(0.0),
        ..Default::default()
    };

    let before = now_micros();
    for s in [&full, &sparse] {
        assert_eq!(put_s(&mut c, s.clone(), None).await.unwrap(), (1, true));
    }
    let after = now_micros();

    let mut got = Vec::new();
    for sent in [&full, &sparse] {
        let g = get_s(&mut c, &sent.id).await.unwrap();
        assert_eq!((g.origin.as_str(), g.revision), (AGENCY, 1));
        let t = micros(&g.updated_at);
        assert!(
            before <= t && t <= after,
            "updated_at {t} not in [{before}, {after}]"
        );
        let mut expected = sent.clone();
        expected.origin = AGENCY.into();
        expected.revision = 1;
        expected.updated_at = g.updated_at;
        assert_eq!(g, expected);
        got.push(g);
    }
    // causes keep the order sent; optional figures keep presence (0 is a value)
    assert_eq!(got[0].causes, full.causes);
    assert_eq!(got[1].unfilled_vacancies, Some(0));
    assert_eq!(got[1].median_days_open, None);
    assert_eq!(got[1].jobseekers_per_100_vacancies, Some(0.0));

    let listed = c
        .list(pb::ListShortagesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.shortages, got);
}

#[tokio::test]
async fn supply_fields_round_trip_and_list_returns_the_same() {
    let node = TestNode::start("tg.anpe").await;
    let mut c = node.supply("publisher").await;
    let full = full_supply("C-FULL");
    let sparse = pb::SupplyCell {
        id: "C-SUPPRESSED".into(),
        period: "2026".into(),
        country: "TG".into(),
        occupation: Some(pb::Occupation {
            isco08: "7".into(),
            esco_uri: String::new(),
        }),
        isced_level: None,
        registered_jobseekers: 0,
        willing_to_migrate: 0,
        suppressed: true,
        ..Default::default()
    };
    let mut zero_level = full_supply("C-ISCED0");
    zero_level.isced_level = Some(0);
    zero_level.period = "2026-02".into();

    let before = now_micros();
    for s in [&full, &zero_level, &sparse] {
        assert_eq!(put_c(&mut c, s.clone(), None).await.unwrap(), (1, true));
    }
    let after = now_micros();

    let mut got = Vec::new();
    for sent in [&full, &zero_level, &sparse] {
        let g = get_c(&mut c, &sent.id).await.unwrap();
        assert_eq!((g.origin.as_str(), g.revision), ("tg.anpe", 1));
        let t = micros(&g.updated_at);
        assert!(
            before <= t && t <= after,
            "updated_at {t} not in [{before}, {after}]"
        );
        let mut expected = sent.clone();
        expected.origin = "tg.anpe".into();
        expected.revision = 1;
        expected.updated_at = g.updated_at;
        assert_eq!(g, expected);
        got.push(g);
    }
    assert_eq!(got[1].isced_level, Some(0));
    assert_eq!(got[2].isced_level, None);
    assert!(got[2].suppressed);

    let listed = c
        .list(pb::ListSupplyRequest::default())
        .await
        .unwrap()
        .into_inner();
    // key order: C-FULL < C-ISCED0 < C-SUPPRESSED
    assert_eq!(listed.cells, got);
}

// ---------------------------------------------------------------- revisions and no-ops

#[tokio::test]
async fn identical_vacancy_put_is_a_no_op_and_client_versions_are_ignored() {
    let node = TestNode::start(AGENCY).await;
    let mut c = node.vacancies("publisher").await;

    // a client-sent revision and updated_at on a new record are ignored
    let mut v = full_vacancy("V-1");
    v.revision = 99;
    v.updated_at = Some(prost_types::Timestamp {
        seconds: 1,
        nanos: 0,
    });
    let before = now_micros();
    assert_eq!(put_v(&mut c, v.clone(), None).await.unwrap(), (1, true));
    let after = now_micros();
    let first = get_v(&mut c, "V-1").await.unwrap();
    assert_eq!(first.revision, 1);
    let t = micros(&first.updated_at);
    assert!(before <= t && t <= after);
    let head = node.head_seq();

    // the same content again, with other client versions and the own origin spelt out
    for (rev, secs, origin) in [(0, None, ""), (1, None, ""), (41, Some(7), AGENCY)] {
        let mut again = v.clone();
        again.revision = rev;
        again.updated_at = secs.map(|s| prost_types::Timestamp {
            seconds: s,
            nanos: 0,
        });
        again.origin = origin.into();
        assert_eq!(put_v(&mut c, again, None).await.unwrap(), (1, false));
        assert_eq!(node.head_seq(), head, "a no-op must not append to the log");
    }
    assert_eq!(get_v(&mut c, "V-1").await.unwrap(), first);

    // a real change: revision 2, one log entry, new updated_at
    let mut changed = v.clone();
    changed.title = "Lasser TIG".into();
    assert_eq!(
        put_v(&mut c, changed.clone(), None).await.unwrap(),
        (2, true)
    );
    assert_eq!(node.head_seq(), head + 1);
    let second = get_v(&mut c, "V-1").await.unwrap();
    assert_eq!(second.title, "Lasser TIG");
    assert_eq!(second.revision, 2);
    assert!(micros(&second.updated_at) >= micros(&first.updated_at));

    // and the changed content again is a no-op at revision 2
    assert_eq!(put_v(&mut c, changed, None).await.unwrap(), (2, false));
    assert_eq!(node.head_seq(), head + 1);

    // going back to the first content is a change too
    assert_eq!(put_v(&mut c, v, None).await.unwrap(), (3, true));
    assert_eq!(node.head_seq(), head + 2);
}

#[tokio::test]
async fn identical_shortage_and_supply_puts_are_no_ops() {
    let node = TestNode::start(AGENCY).await;
    let mut s = node.shortages("publisher").await;
    let mut cells = node.supply("publisher").await;

    let line = full_shortage("S-1");
    assert_eq!(put_s(&mut s, line.clone(), None).await.unwrap(), (1, true));
    let cell = full_supply("C-1");
    assert_eq!(
        put_c(&mut cells, cell.clone(), None).await.unwrap(),
        (1, true)
    );
    let head = node.head_seq();
    assert_eq!(head, 2);

    let mut line2 = line.clone();
    line2.revision = 12;
    assert_eq!(put_s(&mut s, line2, None).await.unwrap(), (1, false));
    let mut cell2 = cell.clone();
    cell2.revision = 12;
    cell2.updated_at = Some(prost_types::Timestamp::default());
    assert_eq!(put_c(&mut cells, cell2, None).await.unwrap(), (1, false));
    assert_eq!(node.head_seq(), head);

    let mut line3 = line.clone();
    line3.unfilled_vacancies = None;
    assert_eq!(put_s(&mut s, line3, None).await.unwrap(), (2, true));
    let mut cell3 = cell.clone();
    cell3.willing_to_migrate = 46;
    assert_eq!(put_c(&mut cells, cell3, None).await.unwrap(), (2, true));
    assert_eq!(node.head_seq(), head + 2);
    assert_eq!(get_s(&mut s, "S-1").await.unwrap().unfilled_vacancies, None);
    assert_eq!(
        get_c(&mut cells, "C-1").await.unwrap().willing_to_migrate,
        46
    );
}

#[tokio::test]
async fn expected_revision_guards_every_kind() {
    let node = TestNode::start(AGENCY).await;
    let mut c = node.vacancies("publisher").await;

    // a new record with a non-zero expectation: ABORTED, nothing stored
    assert_code(
        put_v(&mut c, full_vacancy("V-1"), Some(5)).await,
        Code::Aborted,
    );
    assert_code(get_v(&mut c, "V-1").await, Code::NotFound);
    assert_eq!(node.head_seq(), 0);

    // 0 = must not exist yet: fine once, ABORTED after
    assert_eq!(
        put_v(&mut c, full_vacancy("V-1"), Some(0)).await.unwrap(),
        (1, true)
    );
    let mut changed = full_vacancy("V-1");
    changed.positions = 9;
    assert_code(put_v(&mut c, changed.clone(), Some(0)).await, Code::Aborted);
    assert_eq!(get_v(&mut c, "V-1").await.unwrap().positions, 3);
    assert_eq!(node.head_seq(), 1);

    // the right revision writes, a stale one is refused and stores nothing
    assert_eq!(put_v(&mut c, changed, Some(1)).await.unwrap(), (2, true));
    let mut stale = full_vacancy("V-1");
    stale.positions = 4;
    assert_code(put_v(&mut c, stale, Some(1)).await, Code::Aborted);
    let got = get_v(&mut c, "V-1").await.unwrap();
    assert_eq!((got.positions, got.revision), (9, 2));
    assert_eq!(node.head_seq(), 2);

    // shortages and supply cells follow the same rule
    let mut s = node.shortages("publisher").await;
    assert_eq!(
        put_s(&mut s, full_shortage("S-1"), Some(0)).await.unwrap(),
        (1, true)
    );
    let mut line = full_shortage("S-1");
    line.year = 2027;
    assert_code(put_s(&mut s, line.clone(), Some(0)).await, Code::Aborted);
    assert_code(put_s(&mut s, line.clone(), Some(2)).await, Code::Aborted);
    assert_eq!(get_s(&mut s, "S-1").await.unwrap().year, 2026);
    assert_eq!(put_s(&mut s, line, Some(1)).await.unwrap(), (2, true));

    let mut cells = node.supply("publisher").await;
    assert_code(
        put_c(&mut cells, full_supply("C-1"), Some(1)).await,
        Code::Aborted,
    );
    assert_code(get_c(&mut cells, "C-1").await, Code::NotFound);
    assert_eq!(
        put_c(&mut cells, full_supply("C-1"), Some(0))
            .await
            .unwrap(),
        (1, true)
    );
    assert_code(
        put_c(&mut cells, full_supply("C-1"), Some(0)).await,
        Code::Aborted,
    );
    assert_eq!(node.head_seq(), 5);
}

// ---------------------------------------------------------------- Get and origin

#[tokio::test]
async fn get_refuses_malformed_keys_and_reports_unknown_ones() {
    let node = TestNode::start(AGENCY).await;
    let mut v = node.vacancies("analyst").await;
    let mut s = node.shortages("analyst").await;
    let mut cells = node.supply("analyst").await;

    assert_code(get_v(&mut v, "V-404").await, Code::NotFound);
    assert_code(get_v_of(&mut v, "tg.anpe", "V-404").await, Code::NotFound);
    assert_code(get_v_of(&mut v, AGENCY, "V-404").await, Code::NotFound);
    assert_code(get_s(&mut s, "S-404").await, Code::NotFound);
    assert_code(get_c(&mut cells, "C-404").await, Code::NotFound);

    for bad_id in ["", "a/b", "with space", "é", &"x".repeat(65)] {
        assert_invalid(get_v(&mut v, bad_id).await, "id");
        assert_invalid(get_s(&mut s, bad_id).await, "id");
        assert_invalid(get_c(&mut cells, bad_id).await, "id");
    }
    for bad_origin in ["BE.VDAB", "be", "be.vdab/x", "belgium.vdab", "be.v"] {
        assert_invalid(get_v_of(&mut v, bad_origin, "V-1").await, "origin");
        let r = s
            .get(pb::GetShortageRequest {
                origin: bad_origin.into(),
                id: "S-1".into(),
            })
            .await;
        assert_invalid(r, "origin");
        let r = cells
            .get(pb::GetSupplyRequest {
                origin: bad_origin.into(),
                id: "C-1".into(),
            })
            .await;
        assert_invalid(r, "origin");
    }

    // a record put through the publisher is found by its own origin and by the empty one
    let mut p = node.vacancies("publisher").await;
    put_v(&mut p, full_vacancy("V-1"), None).await.unwrap();
    assert_eq!(
        get_v_of(&mut v, AGENCY, "V-1").await.unwrap(),
        get_v(&mut v, "V-1").await.unwrap()
    );
    assert_code(get_v_of(&mut v, "tg.anpe", "V-1").await, Code::NotFound);
}

#[tokio::test]
async fn put_with_another_origin_is_refused_and_nothing_stored() {
    let node = TestNode::start(AGENCY).await;
    let mut c = node.vacancies("publisher").await;
    let mut s = node.shortages("publisher").await;
    let mut cells = node.supply("publisher").await;

    for origin in ["tg.anpe", "be.vdab2", "BE.VDAB", "nonsense"] {
        let mut v = full_vacancy("V-1");
        v.origin = origin.into();
        assert_invalid(put_v(&mut c, v, None).await, "vacancy.origin");
        let mut line = full_shortage("S-1");
        line.origin = origin.into();
        assert_invalid(put_s(&mut s, line, None).await, "shortage.origin");
        let mut cell = full_supply("C-1");
        cell.origin = origin.into();
        assert_invalid(put_c(&mut cells, cell, None).await, "cell.origin");
    }
    assert_eq!(node.head_seq(), 0);
    assert_code(get_v(&mut c, "V-1").await, Code::NotFound);
    assert_code(get_v_of(&mut c, "tg.anpe", "V-1").await, Code::NotFound);
    assert_code(get_s(&mut s, "S-1").await, Code::NotFound);
    assert_code(get_c(&mut cells, "C-1").await, Code::NotFound);

    // the own agency spelt out is accepted
    let mut v = full_vacancy("V-1");
    v.origin = AGENCY.into();
    assert_eq!(put_v(&mut c, v, None).await.unwrap(), (1, true));
}

// ---------------------------------------------------------------- List filters

#[tokio::test]
async fn vacancy_list_filters() {
    use pb::VacancyStatus as St;
    let node = TestNode::start(AGENCY).await;
    let mut c = node.vacancies("publisher").await;
    for v in [
        vacancy_at("F-A", St::Open, "BE", "7212", true),
        vacancy_at("F-B", St::Filled, "FR", "2221", false),
        vacancy_at("F-C", St::Open, "BE", "7213", false),
        vacancy_at("F-D", St::Expired, "TG", "5120", true),
        vacancy_at("F-E", St::Open, "BE", "7212", true),
    ] {
        put_v(&mut c, v, None).await.unwrap();
    }
    c.withdraw(pb::WithdrawVacancyRequest {
        id: "F-E".into(),
        expected_revision: None,
    })
    .await
    .unwrap();

    let q = |f: fn(&mut pb::ListVacanciesRequest)| {
        let mut r = pb::ListVacanciesRequest::default();
        f(&mut r);
        r
    };
    let cases: Vec<(&str, pb::ListVacanciesRequest, Vec<String>)> = vec![
        (
            "no filter: every status",
            q(|_| {}),
            ids(&["F-A", "F-B", "F-C", "F-D", "F-E"]),
        ),
        (
            "open",
            q(|r| r.statuses = vec![St::Open as i32]),
            ids(&["F-A", "F-C"]),
        ),
        (
            "filled or expired",
            q(|r| r.statuses = vec![St::Filled as i32, St::Expired as i32]),
            ids(&["F-B", "F-D"]),
        ),
        (
            "withdrawn",
            q(|r| r.statuses = vec![St::Withdrawn as i32]),
            ids(&["F-E"]),
        ),
        (
            "BE",
            q(|r| r.countries = vec!["BE".into()]),
            ids(&["F-A", "F-C", "F-E"]),
        ),
        (
            "FR or TG",
            q(|r| r.countries = vec!["FR".into(), "TG".into()]),
            ids(&["F-B", "F-D"]),
        ),
        (
            "isco 72",
            q(|r| r.isco_prefix = "72".into()),
            ids(&["F-A", "F-C", "F-E"]),
        ),
        (
            "isco 7212",
            q(|r| r.isco_prefix = "7212".into()),
            ids(&["F-A", "F-E"]),
        ),
        ("isco 2", q(|r| r.isco_prefix = "2".into()), ids(&["F-B"])),
        ("isco 3", q(|r| r.isco_prefix = "3".into()), ids(&[])),
        (
            "international",
            q(|r| r.open_to_international = Some(true)),
            ids(&["F-A", "F-D", "F-E"]),
        ),
        (
            "not international",
            q(|r| r.open_to_international = Some(false)),
            ids(&["F-B", "F-C"]),
        ),
        (
            "own origin",
            q(|r| r.origins = vec![AGENCY.into()]),
            ids(&["F-A", "F-B", "F-C", "F-D", "F-E"]),
        ),
        (
            "other origin",
            q(|r| r.origins = vec!["tg.anpe".into()]),
            ids(&[]),
        ),
        (
            "either origin",
            q(|r| r.origins = vec!["tg.anpe".into(), AGENCY.into()]),
            ids(&["F-A", "F-B", "F-C", "F-D", "F-E"]),
        ),
        (
            "open, BE, not international",
            q(|r| {
                r.statuses = vec![St::Open as i32];
                r.countries = vec!["BE".into()];
                r.open_to_international = Some(false);
            }),
            ids(&["F-C"]),
        ),
        (
            "72, open or withdrawn, international",
            q(|r| {
                r.isco_prefix = "72".into();
                r.statuses = vec![St::Open as i32, St::Withdrawn as i32];
                r.open_to_international = Some(true);
            }),
            ids(&["F-A", "F-E"]),
        ),
    ];
    for (name, req, expected) in cases {
        assert_eq!(list_v(&mut c, req).await, expected, "{name}");
    }
}

#[tokio::test]
async fn shortage_list_filters() {
    let node = TestNode::start(AGENCY).await;
    let mut c = node.shortages("publisher").await;
    let line = |id: &str, list: &str, year: u32, country: &str, sub: &str, isco: &str| {
        let mut s = full_shortage(id);
        s.list = list.into();
        s.year = year;
        s.country = country.into();
        s.subdivision = sub.into();
        s.occupation.as_mut().unwrap().isco08 = isco.into();
        s
    };
    for s in [
        line("S-A", "vdab-knelpuntberoepen", 2026, "BE", "BE-VLG", "2221"),
        line("S-B", "vdab-knelpuntberoepen", 2025, "BE", "BE-VLG", "7212"),
        line("S-C", "forem-penuries", 2026, "BE", "BE-WAL", "7213"),
        line("S-D", "anpe-tensions", 2026, "TG", "", "2221"),
    ] {
        put_s(&mut c, s, None).await.unwrap();
    }
    let q = |f: fn(&mut pb::ListShortagesRequest)| {
        let mut r = pb::ListShortagesRequest::default();
        f(&mut r);
        r
    };
    let cases: Vec<(&str, pb::ListShortagesRequest, Vec<String>)> = vec![
        ("all", q(|_| {}), ids(&["S-A", "S-B", "S-C", "S-D"])),
        (
            "vdab list",
            q(|r| r.list = "vdab-knelpuntberoepen".into()),
            ids(&["S-A", "S-B"]),
        ),
        ("2026", q(|r| r.year = 2026), ids(&["S-A", "S-C", "S-D"])),
        (
            "vdab list 2025",
            q(|r| {
                r.list = "vdab-knelpuntberoepen".into();
                r.year = 2025;
            }),
            ids(&["S-B"]),
        ),
        ("unknown list", q(|r| r.list = "nope".into()), ids(&[])),
        ("year 2024", q(|r| r.year = 2024), ids(&[])),
        ("TG", q(|r| r.countries = vec!["TG".into()]), ids(&["S-D"])),
        (
            "isco 22",
            q(|r| r.isco_prefix = "22".into()),
            ids(&["S-A", "S-D"]),
        ),
        (
            "isco 721",
            q(|r| r.isco_prefix = "721".into()),
            ids(&["S-B", "S-C"]),
        ),
        (
            "other origin",
            q(|r| r.origins = vec!["tg.anpe".into()]),
            ids(&[]),
        ),
        (
            "own origin, BE, 2026",
            q(|r| {
                r.origins = vec![AGENCY.into()];
                r.countries = vec!["BE".into()];
                r.year = 2026;
            }),
            ids(&["S-A", "S-C"]),
        ),
    ];
    for (name, req, expected) in cases {
        assert_eq!(list_s(&mut c, req).await, expected, "{name}");
    }
}

#[tokio::test]
async fn supply_list_filters() {
    let node = TestNode::start("tg.anpe").await;
    let mut c = node.supply("publisher").await;
    let cell = |id: &str, period: &str, country: &str, isco: &str| {
        let mut s = full_supply(id);
        s.period = period.into();
        s.country = country.into();
        s.subdivision = String::new();
        s.occupation.as_mut().unwrap().isco08 = isco.into();
        s
    };
    for s in [
        cell("C-A", "2026-Q3", "TG", "72"),
        cell("C-B", "2026-Q3", "TG", "2221"),
        cell("C-C", "2025", "TG", "7212"),
        cell("C-D", "2026-Q3", "BJ", "7"),
    ] {
        put_c(&mut c, s, None).await.unwrap();
    }
    let q = |f: fn(&mut pb::ListSupplyRequest)| {
        let mut r = pb::ListSupplyRequest::default();
        f(&mut r);
        r
    };
    let cases: Vec<(&str, pb::ListSupplyRequest, Vec<String>)> = vec![
        ("all", q(|_| {}), ids(&["C-A", "C-B", "C-C", "C-D"])),
        (
            "2026-Q3",
            q(|r| r.period = "2026-Q3".into()),
            ids(&["C-A", "C-B", "C-D"]),
        ),
        ("2025", q(|r| r.period = "2025".into()), ids(&["C-C"])),
        (
            "2026 is not 2026-Q3",
            q(|r| r.period = "2026".into()),
            ids(&[]),
        ),
        ("BJ", q(|r| r.countries = vec!["BJ".into()]), ids(&["C-D"])),
        (
            "isco 72",
            q(|r| r.isco_prefix = "72".into()),
            ids(&["C-A", "C-C"]),
        ),
        (
            "isco 7",
            q(|r| r.isco_prefix = "7".into()),
            ids(&["C-A", "C-C", "C-D"]),
        ),
        (
            "2026-Q3 in TG",
            q(|r| {
                r.period = "2026-Q3".into();
                r.countries = vec!["TG".into()];
            }),
            ids(&["C-A", "C-B"]),
        ),
        (
            "other origin",
            q(|r| r.origins = vec!["be.vdab".into()]),
            ids(&[]),
        ),
    ];
    for (name, req, expected) in cases {
        assert_eq!(list_c(&mut c, req).await, expected, "{name}");
    }
}

// ---------------------------------------------------------------- paging

/// Reads every page; checks that only the last page has no token.
async fn all_pages_v(
    c: &mut Vacancies,
    mut req: pb::ListVacanciesRequest,
) -> (Vec<String>, Vec<usize>) {
    let (mut seen, mut sizes) = (Vec::new(), Vec::new());
    loop {
        let r = c.list(req.clone()).await.expect("list").into_inner();
        assert!(
            r.vacancies.len() <= req.page_size as usize,
            "page larger than page_size"
        );
        sizes.push(r.vacancies.len());
        seen.extend(r.vacancies.into_iter().map(|v| v.id));
        if r.next_page_token.is_empty() {
            return (seen, sizes);
        }
        assert!(sizes.len() < 100, "paging does not end");
        req.page_token = r.next_page_token;
    }
}

#[tokio::test]
async fn vacancy_paging_has_no_duplicates_and_no_gaps() {
    let node = TestNode::start(AGENCY).await;
    let mut c = node.vacancies("publisher").await;
    let all: Vec<String> = (0..23).map(|i| format!("P-{i:02}")).collect();
    // put out of order: the list is in key order whatever the insertion order
    for (i, id) in all.iter().enumerate().rev() {
        let mut v = full_vacancy(id);
        v.open_to_international = i.is_multiple_of(2);
        put_v(&mut c, v, None).await.unwrap();
    }

    let (seen, sizes) = all_pages_v(
        &mut c,
        pb::ListVacanciesRequest {
            page_size: 5,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(seen, all);
    assert_eq!(sizes, [5, 5, 5, 5, 3]);

    // exactly fitting pages
    let (seen, _) = all_pages_v(
        &mut c,
        pb::ListVacanciesRequest {
            page_size: 23,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(seen, all);

    // page size 1 with a filter
    let (seen, _) = all_pages_v(
        &mut c,
        pb::ListVacanciesRequest {
            page_size: 1,
            open_to_international: Some(true),
            ..Default::default()
        },
    )
    .await;
    let even: Vec<String> = all.iter().step_by(2).cloned().collect();
    assert_eq!(seen, even);

    // page size 0 is the default (100), 1000 is allowed
    for page_size in [0, 1000] {
        let r = c
            .list(pb::ListVacanciesRequest {
                page_size,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let got: Vec<String> = r.vacancies.into_iter().map(|v| v.id).collect();
        assert_eq!(got, all);
        assert!(r.next_page_token.is_empty());
    }

    // a record added behind the cursor is not seen, one added ahead is
    let first = c
        .list(pb::ListVacanciesRequest {
            page_size: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    put_v(&mut c, full_vacancy("P-00a"), None).await.unwrap();
    put_v(&mut c, full_vacancy("P-99"), None).await.unwrap();
    let (rest, _) = all_pages_v(
        &mut c,
        pb::ListVacanciesRequest {
            page_size: 10,
            page_token: first.next_page_token,
            ..Default::default()
        },
    )
    .await;
    let mut expected: Vec<String> = all[10..].to_vec();
    expected.push("P-99".into());
    assert_eq!(rest, expected);
}

#[tokio::test]
async fn shortage_and_supply_paging() {
    let node = TestNode::start(AGENCY).await;
    let mut s = node.shortages("publisher").await;
    let mut cells = node.supply("publisher").await;
    let all: Vec<String> = (0..8).map(|i| format!("K-{i}")).collect();
    for id in &all {
        put_s(&mut s, full_shortage(id), None).await.unwrap();
        put_c(&mut cells, full_supply(id), None).await.unwrap();
    }

    let mut req = pb::ListShortagesRequest {
        page_size: 3,
        ..Default::default()
    };
    let (mut seen, mut sizes) = (Vec::new(), Vec::new());
    loop {
        let r = s.list(req.clone()).await.unwrap().into_inner();
        sizes.push(r.shortages.len());
        seen.extend(r.shortages.into_iter().map(|x| x.id));
        if r.next_page_token.is_empty() {
            break;
        }
        req.page_token = r.next_page_token;
    }
    assert_eq!(seen, all);
    assert_eq!(sizes, [3, 3, 2]);

    let mut req = pb::ListSupplyRequest {
        page_size: 3,
        ..Default::default()
    };
    let (mut seen, mut sizes) = (Vec::new(), Vec::new());
    loop {
        let r = cells.list(req.clone()).await.unwrap().into_inner();
        sizes.push(r.cells.len());
        seen.extend(r.cells.into_iter().map(|x| x.id));
        if r.next_page_token.is_empty() {
            break;
        }
        req.page_token = r.next_page_token;
    }
    assert_eq!(seen, all);
    assert_eq!(sizes, [3, 3, 2]);
}

#[tokio::test]
async fn bad_list_arguments_name_the_field() {
    let node = TestNode::start(AGENCY).await;
    let mut v = node.vacancies("analyst").await;
    let mut s = node.shortages("analyst").await;
    let mut cells = node.supply("analyst").await;
    let mut p = node.shortages("publisher").await;
    for id in ["K-1", "K-2"] {
        put_s(&mut p, full_shortage(id), None).await.unwrap();
    }
    let shortage_token = s
        .list(pb::ListShortagesRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert!(!shortage_token.is_empty());

    let vq = |f: &dyn Fn(&mut pb::ListVacanciesRequest)| {
        let mut r = pb::ListVacanciesRequest::default();
        f(&mut r);
        r
    };
    let cases: Vec<(pb::ListVacanciesRequest, &str)> = vec![
        (vq(&|r| r.page_token = "garbage".into()), "page_token"),
        (
            vq(&|r| r.page_token = "be.vdab/nonsense/V-1".into()),
            "page_token",
        ),
        (vq(&|r| r.page_token = shortage_token.clone()), "page_token"),
        (vq(&|r| r.page_size = 1001), "page_size"),
        (vq(&|r| r.page_size = u32::MAX), "page_size"),
        (vq(&|r| r.countries = vec!["XX".into()]), "countries[0]"),
        (
            vq(&|r| r.countries = vec!["BE".into(), "be".into()]),
            "countries[1]",
        ),
        (
            vq(&|r| r.countries = vec!["BE".into(), "TG".into(), "BEL".into()]),
            "countries[2]",
        ),
        (vq(&|r| r.origins = vec!["BE.VDAB".into()]), "origins[0]"),
        (vq(&|r| r.statuses = vec![99]), "statuses[0]"),
        (vq(&|r| r.statuses = vec![1, 0]), "statuses[1]"),
        (vq(&|r| r.isco_prefix = "12345".into()), "isco_prefix"),
        (vq(&|r| r.isco_prefix = "7x".into()), "isco_prefix"),
    ];
    for (req, field) in cases {
        assert_invalid(v.list(req).await, field);
    }

    // the shortage token itself is fine for shortages
    let r = s
        .list(pb::ListShortagesRequest {
            page_size: 1,
            page_token: shortage_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.shortages[0].id, "K-2");

    let r = s
        .list(pb::ListShortagesRequest {
            countries: vec!["XX".into()],
            ..Default::default()
        })
        .await;
    assert_invalid(r, "countries[0]");
    let r = s
        .list(pb::ListShortagesRequest {
            page_size: 1001,
            ..Default::default()
        })
        .await;
    assert_invalid(r, "page_size");
    let r = s
        .list(pb::ListShortagesRequest {
            page_token: "garbage".into(),
            ..Default::default()
        })
        .await;
    assert_invalid(r, "page_token");
    let r = cells
        .list(pb::ListSupplyRequest {
            countries: vec!["tg".into()],
            ..Default::default()
        })
        .await;
    assert_invalid(r, "countries[0]");
    let r = cells
        .list(pb::ListSupplyRequest {
            origins: vec!["x".into()],
            ..Default::default()
        })
        .await;
    assert_invalid(r, "origins[0]");
    let r = cells
        .list(pb::ListSupplyRequest {
            page_size: 5000,
            ..Default::default()
        })
        .await;
    assert_invalid(r, "page_size");
}

// ---------------------------------------------------------------- Withdraw

#[tokio::test]
async fn withdraw_makes_a_tombstone_once() {
    let node = TestNode::start(AGENCY).await;
    let mut c = node.vacancies("publisher").await;
    let sent = full_vacancy("V-W");
    put_v(&mut c, sent.clone(), None).await.unwrap();
    let head = node.head_seq();

    let withdraw = |id: &str, expected_revision: Option<u64>| pb::WithdrawVacancyRequest {
        id: id.into(),
        expected_revision,
    };
    // a stale expectation is refused
    assert_code(c.withdraw(withdraw("V-W", Some(7))).await, Code::Aborted);
    assert_eq!(node.head_seq(), head);

    let r = c
        .withdraw(withdraw("V-W", Some(1)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.revision, r.changed), (2, true));
    assert_eq!(node.head_seq(), head + 1);

    // Get returns the tombstone with its fields
    let got = get_v(&mut c, "V-W").await.unwrap();
    assert_eq!(got.status, pb::VacancyStatus::Withdrawn as i32);
    assert_eq!(got.revision, 2);
    let mut expected = sent.clone();
    expected.status = pb::VacancyStatus::Withdrawn as i32;
    expected.origin = AGENCY.into();
    expected.revision = 2;
    expected.updated_at = got.updated_at;
    assert_eq!(got, expected);

    // withdrawing again is a no-op
    let r = c
        .withdraw(withdraw("V-W", None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.revision, r.changed), (2, false));
    assert_eq!(node.head_seq(), head + 1);
    assert_eq!(get_v(&mut c, "V-W").await.unwrap(), got);

    // the tombstone is listed with every status and under WITHDRAWN, not under OPEN
    let all = list_v(&mut c, pb::ListVacanciesRequest::default()).await;
    assert_eq!(all, ["V-W"]);
    let open = list_v(
        &mut c,
        pb::ListVacanciesRequest {
            statuses: vec![pb::VacancyStatus::Open as i32],
            ..Default::default()
        },
    )
    .await;
    assert!(open.is_empty());

    assert_code(c.withdraw(withdraw("V-404", None)).await, Code::NotFound);
    assert_invalid(c.withdraw(withdraw("bad id", None)).await, "id");
    assert_invalid(c.withdraw(withdraw("", None)).await, "id");
    assert_eq!(node.head_seq(), head + 1);
}

// ---------------------------------------------------------------- Import

fn item_fields(r: &pb::ImportItemResult) -> Vec<String> {
    match &r.outcome {
        Some(Outcome::Error(b)) => b.field_violations.iter().map(|f| f.field.clone()).collect(),
        other => panic!("item {} expected an error, got {other:?}", r.index),
    }
}

fn revision(r: &pb::ImportItemResult) -> u64 {
    match &r.outcome {
        Some(Outcome::Revision(n)) => *n,
        other => panic!("item {} expected a revision, got {other:?}", r.index),
    }
}

async fn import_v(c: &mut Vacancies, items: Vec<Option<pb::Vacancy>>) -> pb::ImportSummary {
    let stream = tokio_stream::iter(
        items
            .into_iter()
            .map(|vacancy| pb::ImportVacancyRequest { vacancy }),
    );
    c.import(stream).await.expect("import").into_inner()
}

#[tokio::test]
async fn vacancy_import_reports_each_item_in_order() {
    let node = TestNode::start(AGENCY).await;
    let mut c = node.vacancies("publisher").await;
    let mut bad_title = full_vacancy("I-2");
    bad_title.title.clear();
    let mut bad_isco = full_vacancy("I-4");
    bad_isco.occupation.as_mut().unwrap().isco08 = "72".into();
    let mut foreign = full_vacancy("I-6");
    foreign.origin = "tg.anpe".into();
    let items = vec![
        Some(full_vacancy("I-1")),
        Some(bad_title),
        Some(full_vacancy("I-3")),
        Some(bad_isco),
        None,
        Some(foreign),
    ];
    let sum = import_v(&mut c, items).await;
    assert_eq!(
        (sum.received, sum.written, sum.unchanged, sum.rejected),
        (6, 2, 0, 4)
    );
    let r = &sum.results;
    assert_eq!(r.len(), 6);
    for (i, item) in r.iter().enumerate() {
        assert_eq!(item.index, i as u64);
    }
    let got_ids: Vec<&str> = r.iter().map(|x| x.id.as_str()).collect();
    assert_eq!(got_ids, ["I-1", "I-2", "I-3", "I-4", "", "I-6"]);
    assert_eq!((revision(&r[0]), r[0].changed), (1, true));
    assert_eq!(item_fields(&r[1]), ["vacancy.title"]);
    assert!(!r[1].changed);
    assert_eq!((revision(&r[2]), r[2].changed), (1, true));
    assert_eq!(item_fields(&r[3]), ["vacancy.occupation.isco08"]);
    let empty = item_fields(&r[4]);
    for f in [
        "vacancy.id",
        "vacancy.status",
        "vacancy.title",
        "vacancy.positions",
    ] {
        assert!(empty.contains(&f.to_string()), "{f} missing in {empty:?}");
    }
    assert_eq!(item_fields(&r[5]), ["vacancy.origin"]);

    assert_eq!(node.head_seq(), 2);
    assert_eq!(get_v(&mut c, "I-1").await.unwrap().revision, 1);
    assert_eq!(get_v(&mut c, "I-3").await.unwrap().revision, 1);
    for id in ["I-2", "I-4", "I-6"] {
        assert_code(get_v(&mut c, id).await, Code::NotFound);
    }

    // the nightly re-import of the same file changes nothing
    let again = import_v(
        &mut c,
        vec![Some(full_vacancy("I-1")), Some(full_vacancy("I-3"))],
    )
    .await;
    assert_eq!(
        (
            again.received,
            again.written,
            again.unchanged,
            again.rejected
        ),
        (2, 0, 2, 0)
    );
    for x in &again.results {
        assert_eq!((revision(x), x.changed), (1, false));
    }
    assert_eq!(node.head_seq(), 2);
}

#[tokio::test]
async fn import_of_one_id_several_times_gets_successive_revisions() {
    let node = TestNode::start(AGENCY).await;
    let mut c = node.vacancies("publisher").await;
    let version = |title: &str| {
        let mut v = full_vacancy("D-1");
        v.title = title.into();
        Some(v)
    };
    let sum = import_v(
        &mut c,
        vec![version("a"), version("b"), version("b"), version("c")],
    )
    .await;
    let got: Vec<(u64, bool)> = sum
        .results
        .iter()
        .map(|x| (revision(x), x.changed))
        .collect();
    assert_eq!(got, [(1, true), (2, true), (2, false), (3, true)]);
    assert_eq!((sum.written, sum.unchanged), (3, 1));
    assert_eq!(node.head_seq(), 3);
    let stored = get_v(&mut c, "D-1").await.unwrap();
    assert_eq!((stored.title.as_str(), stored.revision), ("c", 3));
}

#[tokio::test]
async fn large_import_keeps_indexes_across_batches() {
    let node = TestNode::start(AGENCY).await;
    let mut c = node.vacancies("publisher").await;
    let n = 2100;
    let bad = [0usize, 999, 1000, 1999, 2099];
    let items: Vec<Option<pb::Vacancy>> = (0..n)
        .map(|i| {
            let mut v = full_vacancy(&format!("L-{i:04}"));
            if bad.contains(&i) {
                v.positions = 0;
            }
            Some(v)
        })
        .collect();
    let sum = import_v(&mut c, items).await;
    assert_eq!(sum.received, n as u64);
    assert_eq!(sum.rejected, bad.len() as u64);
    assert_eq!(sum.written, (n - bad.len()) as u64);
    assert_eq!(sum.results.len(), n);
    for (i, r) in sum.results.iter().enumerate() {
        assert_eq!(r.index, i as u64);
        assert_eq!(r.id, format!("L-{i:04}"));
        if bad.contains(&i) {
            assert_eq!(item_fields(r), ["vacancy.positions"], "item {i}");
        } else {
            assert_eq!((revision(r), r.changed), (1, true), "item {i}");
        }
    }
    assert_eq!(node.head_seq(), (n - bad.len()) as u64);
    assert_code(get_v(&mut c, "L-1000").await, Code::NotFound);
    assert_eq!(get_v(&mut c, "L-1001").await.unwrap().revision, 1);
}

#[tokio::test]
async fn shortage_and_supply_imports_report_each_item() {
    let node = TestNode::start(AGENCY).await;
    let mut s = node.shortages("publisher").await;
    let mut cells = node.supply("publisher").await;

    let mut bad_year = full_shortage("S-2");
    bad_year.year = 1989;
    let stream = tokio_stream::iter(
        [full_shortage("S-1"), bad_year, full_shortage("S-3")]
            .into_iter()
            .map(|x| pb::ImportShortageRequest { shortage: Some(x) }),
    );
    let sum = s.import(stream).await.unwrap().into_inner();
    assert_eq!((sum.received, sum.written, sum.rejected), (3, 2, 1));
    let r = &sum.results;
    assert_eq!(
        r.iter()
            .map(|x| (x.index, x.id.as_str()))
            .collect::<Vec<_>>(),
        [(0, "S-1"), (1, "S-2"), (2, "S-3")]
    );
    assert_eq!(revision(&r[0]), 1);
    assert_eq!(item_fields(&r[1]), ["shortage.year"]);
    assert_eq!(revision(&r[2]), 1);
    assert_code(get_s(&mut s, "S-2").await, Code::NotFound);

    let mut small = full_supply("C-2");
    small.registered_jobseekers = 3;
    small.willing_to_migrate = 0;
    let stream = tokio_stream::iter(
        [
            full_supply("C-1"),
            small,
            full_supply("C-1"),
            full_supply("C-3"),
        ]
        .into_iter()
        .map(|x| pb::ImportSupplyRequest { cell: Some(x) }),
    );
    let sum = cells.import(stream).await.unwrap().into_inner();
    assert_eq!(
        (sum.received, sum.written, sum.unchanged, sum.rejected),
        (4, 2, 1, 1)
    );
    let r = &sum.results;
    assert_eq!(
        r.iter()
            .map(|x| (x.index, x.id.as_str()))
            .collect::<Vec<_>>(),
        [(0, "C-1"), (1, "C-2"), (2, "C-1"), (3, "C-3")]
    );
    assert_eq!((revision(&r[0]), r[0].changed), (1, true));
    assert_eq!(item_fields(&r[1]), ["cell.registered_jobseekers"]);
    assert_eq!((revision(&r[2]), r[2].changed), (1, false));
    assert_eq!((revision(&r[3]), r[3].changed), (1, true));
    assert_code(get_c(&mut cells, "C-2").await, Code::NotFound);
    assert_eq!(node.head_seq(), 4);
}

// ---------------------------------------------------------------- compression

#[tokio::test]
async fn gzip_and_zstd_clients_work() {
    let node = TestNode::start(AGENCY).await;
    for (encoding, name) in [
        (CompressionEncoding::Gzip, "gzip"),
        (CompressionEncoding::Zstd, "zstd"),
    ] {
        let mut c = VacanciesClient::new(node.channel("publisher").await)
            .send_compressed(encoding)
            .accept_compressed(encoding);
        let id = format!("Z-{name}");
        let mut v = full_vacancy(&id);
        // compressible and large enough to matter
        v.description = "Lassen van constructies. ".repeat(700);
        let put = c
            .put(pb::PutVacancyRequest {
                vacancy: Some(v.clone()),
                expected_revision: None,
            })
            .await
            .unwrap();
        assert_eq!(
            put.metadata()
                .get("grpc-encoding")
                .map(|h| h.to_str().unwrap()),
            Some(name),
            "the node answers in the encoding the client accepts"
        );
        assert_eq!(put.into_inner().revision, 1);
        let got = c
            .get(pb::GetVacancyRequest {
                origin: String::new(),
                id: id.clone(),
            })
            .await
            .unwrap();
        assert_eq!(
            got.metadata()
                .get("grpc-encoding")
                .map(|h| h.to_str().unwrap()),
            Some(name)
        );
        assert_eq!(got.into_inner().description, v.description);

        // compressed client streams too
        let stream = tokio_stream::iter(
            [full_vacancy(&format!("{id}-imp"))]
                .into_iter()
                .map(|v| pb::ImportVacancyRequest { vacancy: Some(v) }),
        );
        let sum = c.import(stream).await.unwrap().into_inner();
        assert_eq!(sum.written, 1);
    }
}

// ---------------------------------------------------------------- health and reflection

#[tokio::test]
async fn health_and_reflection_for_an_analyst() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let node = TestNode::start(AGENCY).await;
    let channel = node.channel("analyst").await;

    let mut health = HealthClient::new(channel.clone());
    for service in [
        "passerelle.v1.Vacancies",
        "passerelle.v1.Shortages",
        "passerelle.v1.Supply",
    ] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status, ServingStatus::Serving as i32, "{service}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "passerelle.v1.Nope".into(),
        })
        .await;
    assert_code(unknown, Code::NotFound);

    let mut reflection = ServerReflectionClient::new(channel);
    let requests = vec![
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "passerelle.v1.Vacancies".into(),
            )),
        },
    ];
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let first = answers.message().await.unwrap().expect("list answer");
    let Some(MessageResponse::ListServicesResponse(list)) = first.message_response else {
        panic!("expected a service list, got {first:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "passerelle.v1.Vacancies",
        "passerelle.v1.Shortages",
        "passerelle.v1.Supply",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not in {names:?}"
        );
    }
    let second = answers.message().await.unwrap().expect("file answer");
    let Some(MessageResponse::FileDescriptorResponse(files)) = second.message_response else {
        panic!("expected file descriptors, got {second:?}");
    };
    let file_names: Vec<String> = files
        .file_descriptor_proto
        .iter()
        .map(|b| {
            <prost_types::FileDescriptorProto as prost::Message>::decode(b.as_slice())
                .unwrap()
                .name()
                .to_owned()
        })
        .collect();
    assert!(
        file_names
            .iter()
            .any(|n| n == "passerelle/v1/vacancies.proto"),
        "{file_names:?}"
    );
}

// ---------------------------------------------------------------- sizes

const FIVE_MB: usize = 5 * 1000 * 1000;

#[tokio::test]
async fn oversize_message_is_refused_and_nothing_stored() {
    let node = TestNode::start(AGENCY).await;
    let mut c = node.vacancies("publisher").await;
    let mut v = full_vacancy("BIG");
    v.description = "x".repeat(FIVE_MB);
    let r = put_v(&mut c, v, None).await;
    let s = r.expect_err("a 5 MB message must be refused");
    assert_ne!(
        s.code(),
        Code::InvalidArgument,
        "refused by the transport: {s:?}"
    );
    assert_code(get_v(&mut c, "BIG").await, Code::NotFound);
    assert_eq!(node.head_seq(), 0);
    // the connection is still usable afterwards
    assert_eq!(
        put_v(&mut c, full_vacancy("SMALL"), None).await.unwrap(),
        (1, true)
    );
}

#[tokio::test]
async fn oversize_message_is_resource_exhausted() {
    let node = TestNode::start(AGENCY).await;
    let mut c = node.vacancies("publisher").await;
    let mut v = full_vacancy("BIG");
    v.description = "x".repeat(FIVE_MB);
    assert_code(
        put_v(&mut c, v.clone(), None).await,
        Code::ResourceExhausted,
    );
    assert_code(get_v(&mut c, "BIG").await, Code::NotFound);

    // one oversize item fails an Import stream the same way
    let items = [full_vacancy("SMALL"), v]
        .into_iter()
        .map(|v| pb::ImportVacancyRequest { vacancy: Some(v) });
    assert_code(
        c.import(tokio_stream::iter(items)).await,
        Code::ResourceExhausted,
    );
    assert_code(get_v(&mut c, "BIG").await, Code::NotFound);
    assert_eq!(node.head_seq(), 0);
}

#[tokio::test]
async fn oversize_compressed_message_is_resource_exhausted() {
    let node = TestNode::start(AGENCY).await;
    for encoding in [CompressionEncoding::Gzip, CompressionEncoding::Zstd] {
        let mut c = VacanciesClient::new(node.channel("publisher").await).send_compressed(encoding);
        let mut v = full_vacancy("BIG");
        // a few KB on the wire, 5 MB once decompressed
        v.description = "x".repeat(FIVE_MB);
        assert_code(put_v(&mut c, v, None).await, Code::ResourceExhausted);
        assert_code(get_v(&mut c, "BIG").await, Code::NotFound);
    }
    assert_eq!(node.head_seq(), 0);
}

#[tokio::test]
async fn oversize_description_in_an_acceptable_message_is_invalid() {
    let node = TestNode::start(AGENCY).await;
    let mut c = node.vacancies("publisher").await;
    for (len, ch) in [(20_001, 'x'), (20_001, 'é'), (3_000_000, 'x')] {
        let mut v = full_vacancy("D-1");
        v.description = std::iter::repeat_n(ch, len).collect();
        assert_invalid(put_v(&mut c, v, None).await, "vacancy.description");
    }
    assert_code(get_v(&mut c, "D-1").await, Code::NotFound);
    assert_eq!(node.head_seq(), 0);

    // 20 000 characters is the limit, counted in characters, not bytes
    let mut v = full_vacancy("D-1");
    v.description = "é".repeat(20_000);
    assert_eq!(put_v(&mut c, v.clone(), None).await.unwrap(), (1, true));
    assert_eq!(
        get_v(&mut c, "D-1").await.unwrap().description,
        v.description
    );
}
