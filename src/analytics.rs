//! The `Analytics` service: the queries of PRODUCT.md section 5 over the node's in-memory index.

use std::sync::Arc;

use passerelle_analytics as a;
use passerelle_model::{Date, ShortageCause};
use passerelle_node::Node;
use tonic::{Request, Response, Status};

use crate::convert::cause_out;
use crate::error::invalid;
use crate::pb::v1 as pb;

pub struct AnalyticsService {
    node: Arc<Node>,
}

impl AnalyticsService {
    pub fn new(node: Arc<Node>) -> Self {
        AnalyticsService { node }
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&a::Analytics) -> T + Send + 'static,
    ) -> Result<T, Status> {
        let node = self.node.clone();
        tokio::task::spawn_blocking(move || f(node.analytics()))
            .await
            .map_err(|e| Status::internal(format!("worker failed: {e}")))
    }
}

fn filter_in(f: Option<pb::DemandFilter>) -> a::DemandFilter {
    let f = f.unwrap_or_default();
    a::DemandFilter {
        countries: f.countries,
        subdivisions: f.subdivisions,
        isco_prefix: f.isco_prefix,
        origins: f.origins,
        open_to_international: f.open_to_international,
        posted_from: f.posted_from,
        posted_to: f.posted_to,
        as_of: f.as_of,
    }
}

fn causes(c: &[ShortageCause]) -> Vec<i32> {
    c.iter().map(|c| cause_out(*c) as i32).collect()
}

fn figure(f: Option<a::Figure>) -> Option<pb::SupplyFigure> {
    f.map(|f| pb::SupplyFigure {
        value: Some(match f {
            a::Figure::Count(n) => pb::supply_figure::Value::Count(n),
            a::Figure::Suppressed => pb::supply_figure::Value::Suppressed(true),
        }),
    })
}

#[tonic::async_trait]
impl pb::analytics_server::Analytics for AnalyticsService {
    async fn skills_demand(
        &self,
        req: Request<pb::SkillsDemandRequest>,
    ) -> Result<Response<pb::SkillsDemandResponse>, Status> {
        let r = req.into_inner();
        let (q, top) = a::SkillsDemandRequest {
            filter: filter_in(r.filter),
            top: r.top,
        }
        .validate(Date::today())
        .map_err(|v| invalid(&v))?;
        let out = self.run(move |x| x.skills_demand(&q, top)).await?;
        Ok(Response::new(pb::SkillsDemandResponse {
            matching_vacancies: out.matching_vacancies,
            rows: out
                .rows
                .into_iter()
                .map(|r| pb::SkillDemandRow {
                    esco_uri: r.esco_uri,
                    label: r.label,
                    vacancies: r.vacancies,
                    positions: r.positions,
                    essential: r.essential,
                    share: r.share,
                })
                .collect(),
        }))
    }

    async fn occupation_demand(
        &self,
        req: Request<pb::OccupationDemandRequest>,
    ) -> Result<Response<pb::OccupationDemandResponse>, Status> {
        let r = req.into_inner();
        let (q, level) = a::OccupationDemandRequest {
            filter: filter_in(r.filter),
            level: r.level,
        }
        .validate(Date::today())
        .map_err(|v| invalid(&v))?;
        let rows = self.run(move |x| x.occupation_demand(&q, level)).await?;
        Ok(Response::new(pb::OccupationDemandResponse {
            rows: rows
                .into_iter()
                .map(|r| pb::OccupationDemandRow {
                    isco08: r.isco08,
                    label: r.label,
                    vacancies: r.vacancies,
                    positions: r.positions,
                    international: r.international,
                    shortage_causes: causes(&r.shortage_causes),
                })
                .collect(),
        }))
    }

    async fn shortage_overview(
        &self,
        req: Request<pb::ShortageOverviewRequest>,
    ) -> Result<Response<pb::ShortageOverviewResponse>, Status> {
        let r = req.into_inner();
        let q = a::ShortageOverviewRequest {
            country: r.country,
            year: r.year,
            as_of: r.as_of,
        }
        .validate(Date::today())
        .map_err(|v| invalid(&v))?;
        let out = self
            .run(move |x| x.shortage_overview(&q.country, q.year, q.as_of))
            .await?;
        Ok(Response::new(pb::ShortageOverviewResponse {
            year: out.year,
            rows: out
                .rows
                .into_iter()
                .map(|r| pb::ShortageOverviewRow {
                    isco08: r.isco08,
                    label: r.label,
                    list: r.list,
                    subdivision: r.subdivision,
                    national_code: r.national_code,
                    causes: causes(&r.causes),
                    open_vacancies: r.open_vacancies,
                    open_positions: r.open_positions,
                })
                .collect(),
        }))
    }

    async fn supply_gap(
        &self,
        req: Request<pb::SupplyGapRequest>,
    ) -> Result<Response<pb::SupplyGapResponse>, Status> {
        let r = req.into_inner();
        let q = a::SupplyGapRequest {
            destination: r.destination,
            source: r.source,
            level: r.level,
            as_of: r.as_of,
        }
        .validate(Date::today())
        .map_err(|v| invalid(&v))?;
        let rows = self
            .run(move |x| x.supply_gap(&q.destination, &q.source, q.level, q.as_of))
            .await?;
        Ok(Response::new(pb::SupplyGapResponse {
            rows: rows
                .into_iter()
                .map(|r| pb::SupplyGapRow {
                    isco08: r.isco08,
                    label: r.label,
                    open_vacancies: r.open_vacancies,
                    open_positions: r.open_positions,
                    shortage_causes: causes(&r.shortage_causes),
                    registered_jobseekers: figure(r.registered_jobseekers),
                    willing_to_migrate: figure(r.willing_to_migrate),
                    period: r.period,
                    r#match: r.matched,
                })
                .collect(),
        }))
    }

    async fn demand_trend(
        &self,
        req: Request<pb::DemandTrendRequest>,
    ) -> Result<Response<pb::DemandTrendResponse>, Status> {
        let r = req.into_inner();
        let (q, skill) = a::DemandTrendRequest {
            filter: filter_in(r.filter),
            skill_uri: r.skill_uri,
        }
        .validate(Date::today())
        .map_err(|v| invalid(&v))?;
        let rows = self
            .run(move |x| x.demand_trend(&q, skill.as_deref()))
            .await?;
        Ok(Response::new(pb::DemandTrendResponse {
            rows: rows
                .into_iter()
                .map(|r| pb::DemandTrendRow {
                    month: r.month,
                    country: r.country,
                    vacancies: r.vacancies,
                })
                .collect(),
        }))
    }
}
