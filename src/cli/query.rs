//! `passerelle query skills|occupations|shortages|gap|trend`: analytics for people (aligned
//! table) and for tools (`--format csv` opens in a spreadsheet as is, `--format json`).

use anyhow::Context;
use clap::{Args, Subcommand};
use tonic::transport::Channel;

use super::records::{status_lines, write_table};
use super::{OutputFormat, ProfileArg};
use crate::client::Profile;
use crate::pb::v1 as pb;
use crate::pb::v1::analytics_client::AnalyticsClient;

#[derive(Args, Debug, Clone, Default)]
pub struct FilterArgs {
    /// ISO 3166-1 country of the vacancies (repeatable).
    #[arg(long)]
    pub country: Vec<String>,
    /// ISO 3166-2 subdivision, children included (repeatable).
    #[arg(long)]
    pub subdivision: Vec<String>,
    /// ISCO-08 code prefix (1 to 4 digits).
    #[arg(long)]
    pub isco: Option<String>,
    /// Only records of these origins (repeatable).
    #[arg(long)]
    pub origin: Vec<String>,
    /// Only vacancies open (true) or not (false) to international candidates.
    #[arg(long)]
    pub international: Option<bool>,
    /// First day of the posted_on window (YYYY-MM-DD, inclusive).
    #[arg(long)]
    pub posted_from: Option<String>,
    /// Last day of the posted_on window (YYYY-MM-DD, inclusive).
    #[arg(long)]
    pub posted_to: Option<String>,
    /// "Open" at this date (YYYY-MM-DD, default today UTC).
    #[arg(long)]
    pub as_of: Option<String>,
}

impl FilterArgs {
    fn to_pb(&self) -> pb::DemandFilter {
        pb::DemandFilter {
            countries: self.country.clone(),
            subdivisions: self.subdivision.clone(),
            isco_prefix: self.isco.clone().unwrap_or_default(),
            origins: self.origin.clone(),
            open_to_international: self.international,
            posted_from: self.posted_from.clone().unwrap_or_default(),
            posted_to: self.posted_to.clone().unwrap_or_default(),
            as_of: self.as_of.clone().unwrap_or_default(),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum QueryCommand {
    /// Skills most required by open vacancies.
    Skills {
        #[command(flatten)]
        profile: ProfileArg,
        #[command(flatten)]
        filter: FilterArgs,
        /// How many skills (default 50).
        #[arg(long, default_value_t = 50)]
        top: u32,
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
    },
    /// Open vacancies per ISCO group, with shortage causes.
    Occupations {
        #[command(flatten)]
        profile: ProfileArg,
        #[command(flatten)]
        filter: FilterArgs,
        /// ISCO level 1..4.
        #[arg(long, default_value_t = 4)]
        level: u32,
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
    },
    /// A country's shortage list with today's open vacancies per occupation.
    Shortages {
        #[command(flatten)]
        profile: ProfileArg,
        /// ISO 3166-1 country.
        #[arg(long)]
        country: String,
        /// List year (default the latest).
        #[arg(long)]
        year: Option<u32>,
        #[arg(long)]
        as_of: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
    },
    /// Demand at a destination beside supply at a source, per ISCO group.
    Gap {
        #[command(flatten)]
        profile: ProfileArg,
        /// Destination country (demand), e.g. BE.
        #[arg(long)]
        destination: String,
        /// Source country (supply), e.g. TG.
        #[arg(long)]
        source: String,
        /// ISCO level 1..4.
        #[arg(long, default_value_t = 4)]
        level: u32,
        #[arg(long)]
        as_of: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
    },
    /// Vacancies posted per month and country, for an ISCO prefix or a skill.
    Trend {
        #[command(flatten)]
        profile: ProfileArg,
        #[command(flatten)]
        filter: FilterArgs,
        /// An ESCO skill URI.
        #[arg(long)]
        skill: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
    },
}

/// Columns holding counts or fractions; every other column (ISCO codes, periods, months,
/// national codes) is text in JSON even when it looks like a number ("0110", "2026").
const NUMERIC_COLUMNS: &[&str] = &[
    "vacancies",
    "positions",
    "essential",
    "share",
    "international",
    "open_vacancies",
    "open_positions",
    "jobseekers",
    "willing_to_migrate",
];

/// A result as rows of text cells under a header.
pub struct Table {
    pub header: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn print(&self, format: OutputFormat) -> anyhow::Result<()> {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        match format {
            OutputFormat::Table => write_table(&mut out, &self.header, &self.rows)?,
            OutputFormat::Csv => {
                let mut w = csv::Writer::from_writer(out);
                w.write_record(&self.header)?;
                for r in &self.rows {
                    w.write_record(r)?;
                }
                w.flush()?;
            }
            OutputFormat::Json => {
                let rows: Vec<serde_json::Map<String, serde_json::Value>> = self
                    .rows
                    .iter()
                    .map(|r| {
                        self.header
                            .iter()
                            .zip(r)
                            .map(|(h, c)| {
                                // counts are numbers for scripts; codes stay strings whatever they look like
                                let numeric = NUMERIC_COLUMNS.contains(h);
                                let v = c
                                    .parse::<serde_json::Number>()
                                    .ok()
                                    .filter(|_| numeric)
                                    .map(serde_json::Value::Number)
                                    .unwrap_or_else(|| serde_json::Value::String(c.clone()));
                                (h.to_string(), v)
                            })
                            .collect()
                    })
                    .collect();
                serde_json::to_writer_pretty(&mut out, &rows)?;
                use std::io::Write;
                writeln!(out)?;
            }
        }
        Ok(())
    }
}

fn causes(c: &[i32]) -> String {
    c.iter()
        .filter_map(|c| pb::ShortageCause::try_from(*c).ok())
        .map(|c| match c {
            pb::ShortageCause::Quantitative => "quantitative",
            pb::ShortageCause::Qualitative => "qualitative",
            pb::ShortageCause::WorkingConditions => "working_conditions",
            pb::ShortageCause::Unspecified => "",
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn figure(f: &Option<pb::SupplyFigure>) -> String {
    match f.as_ref().and_then(|f| f.value.as_ref()) {
        Some(pb::supply_figure::Value::Count(n)) => n.to_string(),
        Some(pb::supply_figure::Value::Suppressed(_)) => "suppressed".into(),
        None => String::new(),
    }
}

pub fn skills_table(r: &pb::SkillsDemandResponse) -> Table {
    Table {
        header: vec![
            "esco_uri",
            "vacancies",
            "positions",
            "essential",
            "share",
            "label",
        ],
        rows: r
            .rows
            .iter()
            .map(|x| {
                vec![
                    x.esco_uri.clone(),
                    x.vacancies.to_string(),
                    x.positions.to_string(),
                    x.essential.to_string(),
                    format!("{:.4}", x.share),
                    x.label.clone(),
                ]
            })
            .collect(),
    }
}

pub fn occupations_table(r: &pb::OccupationDemandResponse) -> Table {
    Table {
        header: vec![
            "isco08",
            "vacancies",
            "positions",
            "international",
            "shortage_causes",
            "label",
        ],
        rows: r
            .rows
            .iter()
            .map(|x| {
                vec![
                    x.isco08.clone(),
                    x.vacancies.to_string(),
                    x.positions.to_string(),
                    x.international.to_string(),
                    causes(&x.shortage_causes),
                    x.label.clone(),
                ]
            })
            .collect(),
    }
}

pub fn shortages_table(r: &pb::ShortageOverviewResponse) -> Table {
    Table {
        header: vec![
            "isco08",
            "list",
            "subdivision",
            "national_code",
            "causes",
            "open_vacancies",
            "open_positions",
            "label",
        ],
        rows: r
            .rows
            .iter()
            .map(|x| {
                vec![
                    x.isco08.clone(),
                    x.list.clone(),
                    x.subdivision.clone(),
                    x.national_code.clone(),
                    causes(&x.causes),
                    x.open_vacancies.to_string(),
                    x.open_positions.to_string(),
                    x.label.clone(),
                ]
            })
            .collect(),
    }
}

pub fn gap_table(r: &pb::SupplyGapResponse) -> Table {
    Table {
        header: vec![
            "isco08",
            "match",
            "open_vacancies",
            "open_positions",
            "shortage_causes",
            "jobseekers",
            "willing_to_migrate",
            "period",
            "label",
        ],
        rows: r
            .rows
            .iter()
            .map(|x| {
                vec![
                    x.isco08.clone(),
                    if x.r#match { "yes" } else { "no" }.into(),
                    x.open_vacancies.to_string(),
                    x.open_positions.to_string(),
                    causes(&x.shortage_causes),
                    figure(&x.registered_jobseekers),
                    figure(&x.willing_to_migrate),
                    x.period.clone(),
                    x.label.clone(),
                ]
            })
            .collect(),
    }
}

pub fn trend_table(r: &pb::DemandTrendResponse) -> Table {
    Table {
        header: vec!["month", "country", "vacancies"],
        rows: r
            .rows
            .iter()
            .map(|x| vec![x.month.clone(), x.country.clone(), x.vacancies.to_string()])
            .collect(),
    }
}

async fn client(profile: &ProfileArg) -> anyhow::Result<AnalyticsClient<Channel>> {
    let ch = Profile::load(&profile.profile)?
        .connect()
        .await
        .context("cannot reach the node")?;
    Ok(AnalyticsClient::new(ch))
}

/// Runs a query command; returns the process exit code.
pub async fn run(cmd: QueryCommand) -> anyhow::Result<i32> {
    let (result, format) = match cmd {
        QueryCommand::Skills {
            profile,
            filter,
            top,
            format,
        } => {
            let r = client(&profile)
                .await?
                .skills_demand(pb::SkillsDemandRequest {
                    filter: Some(filter.to_pb()),
                    top,
                })
                .await
                .map(|r| {
                    let r = r.into_inner();
                    eprintln!("{} open vacancies match the filter", r.matching_vacancies);
                    skills_table(&r)
                });
            (r, format)
        }
        QueryCommand::Occupations {
            profile,
            filter,
            level,
            format,
        } => {
            let r = client(&profile)
                .await?
                .occupation_demand(pb::OccupationDemandRequest {
                    filter: Some(filter.to_pb()),
                    level,
                })
                .await
                .map(|r| occupations_table(&r.into_inner()));
            (r, format)
        }
        QueryCommand::Shortages {
            profile,
            country,
            year,
            as_of,
            format,
        } => {
            let r = client(&profile)
                .await?
                .shortage_overview(pb::ShortageOverviewRequest {
                    country,
                    year: year.unwrap_or(0),
                    as_of: as_of.unwrap_or_default(),
                })
                .await
                .map(|r| {
                    let r = r.into_inner();
                    eprintln!("shortage list year {}", r.year);
                    shortages_table(&r)
                });
            (r, format)
        }
        QueryCommand::Gap {
            profile,
            destination,
            source,
            level,
            as_of,
            format,
        } => {
            let r = client(&profile)
                .await?
                .supply_gap(pb::SupplyGapRequest {
                    destination,
                    source,
                    level,
                    as_of: as_of.unwrap_or_default(),
                })
                .await
                .map(|r| gap_table(&r.into_inner()));
            (r, format)
        }
        QueryCommand::Trend {
            profile,
            filter,
            skill,
            format,
        } => {
            let r = client(&profile)
                .await?
                .demand_trend(pb::DemandTrendRequest {
                    filter: Some(filter.to_pb()),
                    skill_uri: skill.unwrap_or_default(),
                })
                .await
                .map(|r| trend_table(&r.into_inner()));
            (r, format)
        }
    };
    match result {
        Ok(table) => {
            table.print(format)?;
            Ok(0)
        }
        Err(s) => {
            for l in status_lines("", &s) {
                eprintln!("{l}");
            }
            Ok(1)
        }
    }
}
