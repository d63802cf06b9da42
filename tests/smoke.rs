//! Smoke test: a node starts on port 0 and a publisher round-trips one vacancy.

mod common;

use common::*;
use passerelle::pb::v1 as pb;

#[tokio::test]
async fn publisher_puts_and_gets_a_vacancy() {
    let node = TestNode::start("be.vdab").await;
    let mut c = node.vacancies("publisher").await;
    let r = c
        .put(pb::PutVacancyRequest {
            vacancy: Some(full_vacancy("V-1")),
            expected_revision: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.revision, r.changed), (1, true));
    let got = c
        .get(pb::GetVacancyRequest {
            origin: String::new(),
            id: "V-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.origin, "be.vdab");
    assert_eq!(got.title, "Lasser TIG/MIG");
}
