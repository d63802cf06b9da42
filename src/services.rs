//! The record services (Vacancies, Shortages, Supply): thin adapters from the wire to the node core.

use std::sync::Arc;

use passerelle_model::{AgencyId, Kind, Record, RecordKey, Violations};
use passerelle_node::{ListFilter, Node, NodeError, PutResult};
use tonic::{Request, Response, Status, Streaming};

use crate::convert::{self, WireRecord};
use crate::error::{from_node, invalid, invalid_field};
use crate::pb::v1 as pb;

/// Items of an Import stream handled per atomic batch: large enough for throughput,
/// small enough that a crash loses little work and memory stays bounded.
const IMPORT_CHUNK: usize = 1000;
const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

/// Shared state of the record services.
#[derive(Clone)]
pub struct Records {
    node: Arc<Node>,
}

impl Records {
    pub fn new(node: Arc<Node>) -> Self {
        Records { node }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Node) -> T + Send + 'static,
    ) -> Result<T, Status> {
        let node = self.node.clone();
        tokio::task::spawn_blocking(move || f(&node))
            .await
            .map_err(|e| Status::internal(format!("worker failed: {e}")))
    }

    async fn put(
        &self,
        record: Record,
        pre: Violations,
        expected: Option<u64>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        let r = self
            .blocking(move |n| n.put_checked(record, expected, pre))
            .await?
            .map_err(from_node)?;
        Ok(Response::new(put_response(r)))
    }

    async fn get(&self, kind: Kind, origin: String, id: String) -> Result<Record, Status> {
        let origin = if origin.is_empty() {
            self.node.agency().clone()
        } else {
            AgencyId::parse(&origin).map_err(|e| invalid_field("origin", e.to_string()))?
        };
        let key =
            RecordKey::new(origin, kind, id).map_err(|e| invalid_field("id", e.to_string()))?;
        self.blocking(move |n| n.get(&key))
            .await?
            .map_err(from_node)
    }

    async fn list(
        &self,
        kind: Kind,
        filter: ListFilter,
        page_size: u32,
        page_token: String,
    ) -> Result<(Vec<Record>, String), Status> {
        let after = if page_token.is_empty() {
            None
        } else {
            let key: RecordKey = page_token
                .parse()
                .map_err(|_| invalid_field("page_token", "not a token from a previous page"))?;
            if key.kind != kind {
                return Err(invalid_field("page_token", "token is for another kind"));
            }
            Some(key)
        };
        if page_size > MAX_PAGE {
            return Err(invalid_field(
                "page_size",
                format!("must be at most {MAX_PAGE}"),
            ));
        }
        let limit = if page_size == 0 {
            DEFAULT_PAGE
        } else {
            page_size
        } as usize;
        let (records, next) = self
            .blocking(move |n| n.list(kind, &filter, after.as_ref(), limit))
            .await?
            .map_err(from_node)?;
        Ok((records, next.map(|k| k.to_string()).unwrap_or_default()))
    }

    /// Reads an Import stream in chunks; each item is judged on its own. A reader task decodes
    /// the chunks, a preparing task validates and signs the next one while the previous one is
    /// written.
    async fn import<T, F>(
        &self,
        mut stream: Streaming<T>,
        item: F,
        prefix: &'static str,
    ) -> Result<Response<pb::ImportSummary>, Status>
    where
        T: Send + 'static,
        F: Fn(T, &str) -> (Record, Violations, String) + Send + 'static,
    {
        type Chunk = Vec<(Record, Option<u64>, Violations)>;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<(Chunk, Vec<String>), Status>>(2);
        let reader = tokio::spawn(async move {
            let mut chunk = Vec::with_capacity(IMPORT_CHUNK);
            let mut ids = Vec::with_capacity(IMPORT_CHUNK);
            loop {
                let next = match stream.message().await {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                let done = next.is_none();
                if let Some(msg) = next {
                    let (record, pre, id) = item(msg, prefix);
                    ids.push(id);
                    chunk.push((record, None, pre));
                }
                if chunk.len() == IMPORT_CHUNK || (done && !chunk.is_empty()) {
                    let c = std::mem::replace(&mut chunk, Vec::with_capacity(IMPORT_CHUNK));
                    let i = std::mem::replace(&mut ids, Vec::with_capacity(IMPORT_CHUNK));
                    if tx.send(Ok((c, i))).await.is_err() {
                        return;
                    }
                }
                if done {
                    return;
                }
            }
        });
        let _reader = AbortOnDrop(reader);
        // a preparing task validates and signs the next chunk (CPU over every core) while the
        // previous one is written and flushed below
        let (ptx, mut prx) = tokio::sync::mpsc::channel::<Result<_, Status>>(1);
        let node = self.node.clone();
        let preparer = tokio::spawn(async move {
            while let Some(next) = rx.recv().await {
                let prepared = match next {
                    Ok((batch, ids)) => {
                        let n = node.clone();
                        tokio::task::spawn_blocking(move || (n.prepare_puts(batch), ids))
                            .await
                            .map_err(|e| Status::internal(format!("worker failed: {e}")))
                    }
                    Err(e) => Err(e),
                };
                let failed = prepared.is_err();
                if ptx.send(prepared).await.is_err() || failed {
                    return;
                }
            }
        });
        let _preparer = AbortOnDrop(preparer);
        let mut summary = pb::ImportSummary::default();
        while let Some(next) = prx.recv().await {
            let (prepared, ids) = next?;
            let results = self.blocking(move |n| n.commit_puts(prepared)).await?;
            for (id, r) in ids.into_iter().zip(results) {
                let index = summary.received;
                summary.received += 1;
                let outcome = match r {
                    Ok(PutResult { revision, changed }) => {
                        if changed {
                            summary.written += 1;
                        } else {
                            summary.unchanged += 1;
                        }
                        summary.results.push(pb::ImportItemResult {
                            index,
                            id,
                            changed,
                            outcome: Some(pb::import_item_result::Outcome::Revision(revision)),
                        });
                        continue;
                    }
                    Err(NodeError::Invalid(v)) => v,
                    Err(NodeError::RevisionMismatch {
                        expected, actual, ..
                    }) => {
                        let mut v = Violations::new();
                        v.push(
                            "expected_revision",
                            format!("expected {expected}, stored {actual}"),
                        );
                        v
                    }
                    // the store failed: nothing more can be written, say so for the whole call
                    Err(e) => return Err(from_node(e)),
                };
                summary.rejected += 1;
                summary.results.push(pb::ImportItemResult {
                    index,
                    id,
                    changed: false,
                    outcome: Some(pb::import_item_result::Outcome::Error(
                        convert::bad_request(&outcome),
                    )),
                });
            }
        }
        tracing::info!(
            received = summary.received,
            written = summary.written,
            unchanged = summary.unchanged,
            rejected = summary.rejected,
            "import finished"
        );
        Ok(Response::new(summary))
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn put_response(r: PutResult) -> pb::PutResponse {
    pb::PutResponse {
        revision: r.revision,
        changed: r.changed,
    }
}

fn origins(v: &mut Violations, raw: Vec<String>) -> Vec<AgencyId> {
    raw.into_iter()
        .enumerate()
        .filter_map(|(i, o)| match AgencyId::parse(&o) {
            Ok(a) => Some(a),
            Err(e) => {
                v.push(format!("origins[{i}]"), e.to_string());
                None
            }
        })
        .collect()
}

fn countries(v: &mut Violations, raw: Vec<String>) -> Vec<String> {
    for (i, c) in raw.iter().enumerate() {
        if passerelle_refdata::country(c).is_none() {
            v.push(
                format!("countries[{i}]"),
                format!("{c:?} is not an ISO 3166-1 alpha-2 country code"),
            );
        }
    }
    raw
}

fn isco_prefix(v: &mut Violations, p: String) -> String {
    if !p.is_empty() && passerelle_refdata::isco(&p).is_none() {
        v.push(
            "isco_prefix",
            format!("{p:?} is not an ISCO-08 group code (1 to 4 digits)"),
        );
    }
    p
}

/// The filters every List takes (origins, countries, ISCO prefix); `v` collects what is wrong.
fn common_filter(
    v: &mut Violations,
    raw_origins: Vec<String>,
    raw_countries: Vec<String>,
    raw_isco: String,
) -> ListFilter {
    ListFilter {
        origins: origins(v, raw_origins),
        countries: countries(v, raw_countries),
        isco_prefix: isco_prefix(v, raw_isco),
        ..Default::default()
    }
}

fn missing(field: &str) -> Status {
    invalid_field(field, "required")
}

fn vacancy_item(p: pb::Vacancy, prefix: &str) -> (Record, Violations, String) {
    let id = p.id.clone();
    let (r, v) = convert::record_in(WireRecord::Vacancy(p), prefix);
    (r, v, id)
}

fn shortage_item(p: pb::Shortage, prefix: &str) -> (Record, Violations, String) {
    let id = p.id.clone();
    let (r, v) = convert::record_in(WireRecord::Shortage(p), prefix);
    (r, v, id)
}

fn supply_item(p: pb::SupplyCell, prefix: &str) -> (Record, Violations, String) {
    let id = p.id.clone();
    let (r, v) = convert::record_in(WireRecord::Supply(p), prefix);
    (r, v, id)
}

#[tonic::async_trait]
impl pb::vacancies_server::Vacancies for Records {
    async fn put(
        &self,
        req: Request<pb::PutVacancyRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        let req = req.into_inner();
        let vacancy = req.vacancy.ok_or_else(|| missing("vacancy"))?;
        let (record, pre, _) = vacancy_item(vacancy, "vacancy");
        Records::put(self, record, pre, req.expected_revision).await
    }

    async fn get(
        &self,
        req: Request<pb::GetVacancyRequest>,
    ) -> Result<Response<pb::Vacancy>, Status> {
        let req = req.into_inner();
        match Records::get(self, Kind::Vacancy, req.origin, req.id).await? {
            Record::Vacancy(v) => Ok(Response::new(convert::vacancy_out(&v))),
            _ => Err(Status::internal("kind mismatch")),
        }
    }

    async fn list(
        &self,
        req: Request<pb::ListVacanciesRequest>,
    ) -> Result<Response<pb::ListVacanciesResponse>, Status> {
        let req = req.into_inner();
        let mut v = Violations::new();
        let statuses = req
            .statuses
            .iter()
            .enumerate()
            .filter_map(|(i, s)| convert::status_filter(&mut v, format!("statuses[{i}]"), *s))
            .collect();
        let filter = ListFilter {
            statuses,
            open_to_international: req.open_to_international,
            ..common_filter(&mut v, req.origins, req.countries, req.isco_prefix)
        };
        if !v.is_empty() {
            return Err(invalid(&v));
        }
        let (records, next) =
            Records::list(self, Kind::Vacancy, filter, req.page_size, req.page_token).await?;
        Ok(Response::new(pb::ListVacanciesResponse {
            vacancies: records
                .iter()
                .filter_map(|r| match r {
                    Record::Vacancy(v) => Some(convert::vacancy_out(v)),
                    _ => None,
                })
                .collect(),
            next_page_token: next,
        }))
    }

    async fn withdraw(
        &self,
        req: Request<pb::WithdrawVacancyRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        let req = req.into_inner();
        let r = self
            .blocking(move |n| n.withdraw(&req.id, req.expected_revision))
            .await?
            .map_err(from_node)?;
        Ok(Response::new(put_response(r)))
    }

    async fn import(
        &self,
        req: Request<Streaming<pb::ImportVacancyRequest>>,
    ) -> Result<Response<pb::ImportSummary>, Status> {
        self.import(
            req.into_inner(),
            |m: pb::ImportVacancyRequest, p| vacancy_item(m.vacancy.unwrap_or_default(), p),
            "vacancy",
        )
        .await
    }
}

#[tonic::async_trait]
impl pb::shortages_server::Shortages for Records {
    async fn put(
        &self,
        req: Request<pb::PutShortageRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        let req = req.into_inner();
        let shortage = req.shortage.ok_or_else(|| missing("shortage"))?;
        let (record, pre, _) = shortage_item(shortage, "shortage");
        Records::put(self, record, pre, req.expected_revision).await
    }

    async fn get(
        &self,
        req: Request<pb::GetShortageRequest>,
    ) -> Result<Response<pb::Shortage>, Status> {
        let req = req.into_inner();
        match Records::get(self, Kind::Shortage, req.origin, req.id).await? {
            Record::Shortage(s) => Ok(Response::new(convert::shortage_out(&s))),
            _ => Err(Status::internal("kind mismatch")),
        }
    }

    async fn list(
        &self,
        req: Request<pb::ListShortagesRequest>,
    ) -> Result<Response<pb::ListShortagesResponse>, Status> {
        let req = req.into_inner();
        let mut v = Violations::new();
        let filter = ListFilter {
            list: req.list,
            year: req.year,
            ..common_filter(&mut v, req.origins, req.countries, req.isco_prefix)
        };
        if !v.is_empty() {
            return Err(invalid(&v));
        }
        let (records, next) =
            Records::list(self, Kind::Shortage, filter, req.page_size, req.page_token).await?;
        Ok(Response::new(pb::ListShortagesResponse {
            shortages: records
                .iter()
                .filter_map(|r| match r {
                    Record::Shortage(s) => Some(convert::shortage_out(s)),
                    _ => None,
                })
                .collect(),
            next_page_token: next,
        }))
    }

    async fn import(
        &self,
        req: Request<Streaming<pb::ImportShortageRequest>>,
    ) -> Result<Response<pb::ImportSummary>, Status> {
        self.import(
            req.into_inner(),
            |m: pb::ImportShortageRequest, p| shortage_item(m.shortage.unwrap_or_default(), p),
            "shortage",
        )
        .await
    }
}

#[tonic::async_trait]
impl pb::supply_server::Supply for Records {
    async fn put(
        &self,
        req: Request<pb::PutSupplyRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        let req = req.into_inner();
        let cell = req.cell.ok_or_else(|| missing("cell"))?;
        let (record, pre, _) = supply_item(cell, "cell");
        Records::put(self, record, pre, req.expected_revision).await
    }

    async fn get(
        &self,
        req: Request<pb::GetSupplyRequest>,
    ) -> Result<Response<pb::SupplyCell>, Status> {
        let req = req.into_inner();
        match Records::get(self, Kind::Supply, req.origin, req.id).await? {
            Record::Supply(c) => Ok(Response::new(convert::supply_out(&c))),
            _ => Err(Status::internal("kind mismatch")),
        }
    }

    async fn list(
        &self,
        req: Request<pb::ListSupplyRequest>,
    ) -> Result<Response<pb::ListSupplyResponse>, Status> {
        let req = req.into_inner();
        let mut v = Violations::new();
        let filter = ListFilter {
            period: req.period,
            ..common_filter(&mut v, req.origins, req.countries, req.isco_prefix)
        };
        if !v.is_empty() {
            return Err(invalid(&v));
        }
        let (records, next) =
            Records::list(self, Kind::Supply, filter, req.page_size, req.page_token).await?;
        Ok(Response::new(pb::ListSupplyResponse {
            cells: records
                .iter()
                .filter_map(|r| match r {
                    Record::Supply(c) => Some(convert::supply_out(c)),
                    _ => None,
                })
                .collect(),
            next_page_token: next,
        }))
    }

    async fn import(
        &self,
        req: Request<Streaming<pb::ImportSupplyRequest>>,
    ) -> Result<Response<pb::ImportSummary>, Status> {
        self.import(
            req.into_inner(),
            |m: pb::ImportSupplyRequest, p| supply_item(m.cell.unwrap_or_default(), p),
            "cell",
        )
        .await
    }
}
