//! The expiry sweep (`Node::expire_due`): a complete scan the first time it runs for a day,
//! then only the own vacancies written meanwhile already due. Every case checks that what is
//! due is expired whichever way the sweep finds it, and nothing else.

mod common;

use passerelle_model::{Date, Record, RecordKey, VacancyStatus};
use passerelle_node::Node;

fn node(dir: &std::path::Path) -> Node {
    common::mem_node(dir, "be.vdab", |_| {})
}

fn sample() -> passerelle_model::Vacancy {
    common::sample_vacancy()
}

/// A vacancy posted 60 days ago, closing `closes` days from today.
fn vacancy(id: &str, closes: i32) -> Record {
    let today = Date::today();
    let mut v = sample();
    v.id = id.into();
    v.status = VacancyStatus::Open;
    v.posted_on = Date(today.0 - 60).to_string();
    v.closes_on = Date(today.0 + closes).to_string();
    Record::Vacancy(v)
}

fn status(node: &Node, id: &str) -> VacancyStatus {
    let key: RecordKey = format!("be.vdab/vacancy/{id}").parse().expect("key");
    match node.get(&key).expect("stored") {
        Record::Vacancy(v) => v.status,
        other => panic!("not a vacancy: {other:?}"),
    }
}

#[test]
fn what_is_due_expires_whether_a_scan_or_a_note_finds_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = node(dir.path());
    let today = Date::today();
    node.put(vacancy("FUTURE", 30), None).expect("put");
    node.put(vacancy("PAST", -1), None).expect("put");
    node.put(vacancy("TODAY", 0), None).expect("put");

    // the first sweep of the day scans everything
    assert_eq!(node.expire_due(today).expect("sweep"), 1);
    assert_eq!(status(&node, "PAST"), VacancyStatus::Expired);
    assert_eq!(status(&node, "TODAY"), VacancyStatus::Open);

    // written after it, already due: one put, one batch of puts, one update of an open
    // vacancy, one noted then withdrawn before the sweep, one written twice
    node.put(vacancy("LATE", -3), None).expect("put");
    let batch = node.put_many(vec![
        (vacancy("B1", -2), None, Default::default()),
        (vacancy("B2", 10), None, Default::default()),
    ]);
    assert!(batch.iter().all(|r| r.is_ok()), "{batch:?}");
    node.put(vacancy("FUTURE", -5), None).expect("update");
    node.put(vacancy("GONE", -1), None).expect("put");
    node.withdraw("GONE", None).expect("withdraw");
    node.put(vacancy("TWICE", -1), None).expect("put");
    let mut again = vacancy("TWICE", -2);
    if let Record::Vacancy(v) = &mut again {
        v.title.push_str(" (updated)");
    }
    node.put(again, None).expect("put");
    assert_eq!(node.expire_due(today).expect("sweep"), 4);
    for id in ["LATE", "B1", "FUTURE", "TWICE"] {
        assert_eq!(status(&node, id), VacancyStatus::Expired, "{id}");
    }
    assert_eq!(status(&node, "B2"), VacancyStatus::Open);
    assert_eq!(status(&node, "GONE"), VacancyStatus::Withdrawn);
    assert_eq!(node.expire_due(today).expect("sweep"), 0, "nothing left");

    // the next day scans again: what closed today is due then
    assert_eq!(node.expire_due(Date(today.0 + 1)).expect("sweep"), 1);
    assert_eq!(status(&node, "TODAY"), VacancyStatus::Expired);
    assert_eq!(node.expire_due(Date(today.0 + 1)).expect("sweep"), 0);

    // a sweep at a later day than the real one (a simulated clock) still sees what is written
    // due relative to it
    let later = Date(today.0 + 20);
    assert_eq!(
        node.expire_due(later).expect("sweep"),
        1,
        "B2, closing in 10 days"
    );
    node.put(vacancy("SOON", 5), None).expect("put");
    assert_eq!(node.expire_due(later).expect("sweep"), 1);
    assert_eq!(status(&node, "SOON"), VacancyStatus::Expired);
}
