//! `passerelle vacancy|shortage|supply put|get|list|withdraw|import`: record commands against a node.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, Context};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use passerelle_model::{Kind, Record};
use tonic::codec::CompressionEncoding;
use tonic::transport::Channel;
use tonic::{Code, Status};

use super::files::{self, Format, Line};
use super::{OutputFormat, ProfileArg};
use crate::client::Profile;
use crate::convert::{self, WireRecord};
use crate::error::violations_of;
use crate::pb::v1 as pb;
use crate::pb::v1::shortages_client::ShortagesClient;
use crate::pb::v1::supply_client::SupplyClient;
use crate::pb::v1::vacancies_client::VacanciesClient;

#[derive(Subcommand, Debug)]
pub enum RecordCommand {
    /// Create or update one own record from a JSON file (`-` reads standard input).
    Put {
        #[command(flatten)]
        profile: ProfileArg,
        file: PathBuf,
        /// Refuse the write unless the stored revision is this (0: must not exist yet).
        #[arg(long)]
        expected_revision: Option<u64>,
    },
    /// Show one record as JSON.
    Get {
        #[command(flatten)]
        profile: ProfileArg,
        id: String,
        /// The publishing agency (default: the node's own).
        #[arg(long)]
        origin: Option<String>,
    },
    /// List records, every page, with filters.
    List {
        #[command(flatten)]
        profile: ProfileArg,
        /// Only these origins (repeatable).
        #[arg(long)]
        origin: Vec<String>,
        /// Vacancies: only these statuses (OPEN, FILLED, WITHDRAWN, EXPIRED; repeatable).
        #[arg(long)]
        status: Vec<String>,
        /// Only these ISO 3166-1 countries (repeatable).
        #[arg(long)]
        country: Vec<String>,
        /// Only occupations whose ISCO-08 code starts with this.
        #[arg(long)]
        isco: Option<String>,
        /// Vacancies: only those open (true) or closed (false) to international candidates.
        #[arg(long)]
        international: Option<bool>,
        /// Shortages: only this list.
        #[arg(long)]
        list: Option<String>,
        /// Shortages: only this year.
        #[arg(long)]
        year: Option<u32>,
        /// Supply: only this period.
        #[arg(long)]
        period: Option<String>,
        /// Stop after this many records.
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
    },
    /// Withdraw an own vacancy (a tombstone that replicates).
    Withdraw {
        #[command(flatten)]
        profile: ProfileArg,
        id: String,
        #[arg(long)]
        expected_revision: Option<u64>,
    },
    /// Import records from a .jsonl or .csv file; refused items are listed, good ones stored.
    Import {
        #[command(flatten)]
        profile: ProfileArg,
        file: PathBuf,
        /// Items per Import call.
        #[arg(long, default_value_t = 10_000)]
        batch: usize,
    },
}

/// Describes a refused call: one line per violation when the node sent them, else the code,
/// the message and the underlying cause (a TLS alert, a refused connection).
pub fn status_lines(prefix: &str, s: &Status) -> Vec<String> {
    let violations = violations_of(s);
    if s.code() == Code::InvalidArgument && !violations.is_empty() {
        let indent = " ".repeat(prefix.chars().count() + 2);
        let mut out = vec![format!("{prefix}refused, {} problem(s):", violations.len())];
        out.extend(
            violations
                .into_iter()
                .map(|(field, why)| format!("{indent}{field}: {why}")),
        );
        return out;
    }
    let mut line = format!("{prefix}{}: {}", code_name(s.code()), s.message());
    let hint = matches!(
        s.code(),
        Code::Cancelled | Code::Unknown | Code::Unavailable
    );
    let mut cause = std::error::Error::source(s);
    while let Some(c) = cause {
        let text = c.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = c.source();
    }
    if hint && line.contains("connection closed") {
        line.push_str(
            " (the node closed the connection: its log says why, e.g. a client certificate \
             that is expired, revoked or not from a trusted agency CA)",
        );
    }
    vec![line]
}

/// Prints a refused call to standard error.
pub fn print_status(prefix: &str, s: &Status) {
    for l in status_lines(prefix, s) {
        eprintln!("{l}");
    }
}

fn code_name(c: Code) -> String {
    format!("{c:?}").chars().fold(String::new(), |mut acc, ch| {
        if ch.is_uppercase() && !acc.is_empty() {
            acc.push('_');
        }
        acc.push(ch.to_ascii_uppercase());
        acc
    })
}

/// Runs a record command; returns the process exit code.
pub async fn run(kind: Kind, cmd: RecordCommand) -> anyhow::Result<i32> {
    match cmd {
        RecordCommand::Put {
            profile,
            file,
            expected_revision,
        } => {
            let text = if file.as_os_str() == "-" {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
                s
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?
            };
            let value: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| anyhow!("{}: not JSON: {e}", file.display()))?;
            let record = files::record_from_json(kind, value)
                .map_err(|e| anyhow!("{}: {e}", file.display()))?;
            let ch = connect(&profile).await?;
            match put(ch, record, expected_revision).await {
                Ok(r) if r.changed => println!("stored revision {}", r.revision),
                Ok(r) => println!("unchanged at revision {}", r.revision),
                Err(s) => {
                    print_status("", &s);
                    return Ok(1);
                }
            }
            Ok(0)
        }
        RecordCommand::Get {
            profile,
            id,
            origin,
        } => {
            let ch = connect(&profile).await?;
            match get(ch, kind, origin.unwrap_or_default(), id).await {
                Ok(r) => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&files::record_to_json(&r))?
                    );
                    Ok(0)
                }
                Err(s) => {
                    print_status("", &s);
                    Ok(1)
                }
            }
        }
        RecordCommand::List {
            profile,
            origin,
            status,
            country,
            isco,
            international,
            list,
            year,
            period,
            limit,
            format,
        } => {
            let mut statuses = Vec::new();
            for s in &status {
                let v = pb::VacancyStatus::from_str_name(&format!(
                    "VACANCY_STATUS_{}",
                    s.to_ascii_uppercase()
                ))
                .filter(|v| *v != pb::VacancyStatus::Unspecified)
                .ok_or_else(|| {
                    anyhow!("--status {s:?} must be OPEN, FILLED, WITHDRAWN or EXPIRED")
                })?;
                statuses.push(v as i32);
            }
            let q = ListQuery {
                origins: origin,
                statuses,
                countries: country,
                isco_prefix: isco.unwrap_or_default(),
                open_to_international: international,
                list: list.unwrap_or_default(),
                year: year.unwrap_or_default(),
                period: period.unwrap_or_default(),
            };
            let ch = connect(&profile).await?;
            let records = match list_all(ch, kind, &q, limit).await {
                Ok(r) => r,
                Err(s) => {
                    print_status("", &s);
                    return Ok(1);
                }
            };
            print_records(kind, &records, format)?;
            Ok(0)
        }
        RecordCommand::Withdraw {
            profile,
            id,
            expected_revision,
        } => {
            if kind != Kind::Vacancy {
                return Err(anyhow!("only vacancies can be withdrawn"));
            }
            let ch = connect(&profile).await?;
            let r = VacanciesClient::new(ch)
                .withdraw(pb::WithdrawVacancyRequest {
                    id,
                    expected_revision,
                })
                .await;
            match r {
                Ok(r) => {
                    let r = r.into_inner();
                    if r.changed {
                        println!("withdrawn at revision {}", r.revision);
                    } else {
                        println!("already closed at revision {}", r.revision);
                    }
                    Ok(0)
                }
                Err(s) => {
                    print_status("", &s);
                    Ok(1)
                }
            }
        }
        RecordCommand::Import {
            profile,
            file,
            batch,
        } => {
            let ch = connect(&profile).await?;
            let report = import_file(ch, kind, &file, batch.max(1)).await?;
            println!("{report}");
            Ok(if report.rejected == 0 { 0 } else { 1 })
        }
    }
}

async fn connect(profile: &ProfileArg) -> anyhow::Result<Channel> {
    Profile::load(&profile.profile)?.connect().await
}

pub async fn put(
    ch: Channel,
    record: Record,
    expected_revision: Option<u64>,
) -> Result<pb::PutResponse, Status> {
    let r = match convert::record_out(&record) {
        WireRecord::Vacancy(v) => {
            VacanciesClient::new(ch)
                .put(pb::PutVacancyRequest {
                    vacancy: Some(v),
                    expected_revision,
                })
                .await
        }
        WireRecord::Shortage(s) => {
            ShortagesClient::new(ch)
                .put(pb::PutShortageRequest {
                    shortage: Some(s),
                    expected_revision,
                })
                .await
        }
        WireRecord::Supply(c) => {
            SupplyClient::new(ch)
                .put(pb::PutSupplyRequest {
                    cell: Some(c),
                    expected_revision,
                })
                .await
        }
    };
    r.map(|r| r.into_inner())
}

fn back(w: WireRecord) -> Result<Record, Status> {
    let (r, v) = convert::record_in(w, "");
    if v.is_empty() {
        Ok(r)
    } else {
        Err(Status::internal(format!(
            "node sent an unreadable record: {v}"
        )))
    }
}

fn with_version(mut r: Record, revision: u64, ts: Option<prost_types::Timestamp>) -> Record {
    let micros = ts.map_or(0, |t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1000);
    r.set_version(revision, micros);
    r
}

pub async fn get(ch: Channel, kind: Kind, origin: String, id: String) -> Result<Record, Status> {
    match kind {
        Kind::Vacancy => {
            let v = VacanciesClient::new(ch)
                .get(pb::GetVacancyRequest { origin, id })
                .await?
                .into_inner();
            let (rev, ts) = (v.revision, v.updated_at);
            Ok(with_version(back(WireRecord::Vacancy(v))?, rev, ts))
        }
        Kind::Shortage => {
            let s = ShortagesClient::new(ch)
                .get(pb::GetShortageRequest { origin, id })
                .await?
                .into_inner();
            let (rev, ts) = (s.revision, s.updated_at);
            Ok(with_version(back(WireRecord::Shortage(s))?, rev, ts))
        }
        Kind::Supply => {
            let c = SupplyClient::new(ch)
                .get(pb::GetSupplyRequest { origin, id })
                .await?
                .into_inner();
            let (rev, ts) = (c.revision, c.updated_at);
            Ok(with_version(back(WireRecord::Supply(c))?, rev, ts))
        }
    }
}

/// Filters of `list`, for any kind (fields that do not apply are ignored).
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub origins: Vec<String>,
    pub statuses: Vec<i32>,
    pub countries: Vec<String>,
    pub isco_prefix: String,
    pub open_to_international: Option<bool>,
    pub list: String,
    pub year: u32,
    pub period: String,
}

/// Reads every page (or up to `limit` records).
pub async fn list_all(
    ch: Channel,
    kind: Kind,
    q: &ListQuery,
    limit: Option<usize>,
) -> Result<Vec<Record>, Status> {
    let mut out = Vec::new();
    let mut token = String::new();
    let page_size = 1000;
    loop {
        let (page, next) = match kind {
            Kind::Vacancy => {
                let r = VacanciesClient::new(ch.clone())
                    .accept_compressed(CompressionEncoding::Zstd)
                    .list(pb::ListVacanciesRequest {
                        origins: q.origins.clone(),
                        statuses: q.statuses.clone(),
                        countries: q.countries.clone(),
                        isco_prefix: q.isco_prefix.clone(),
                        open_to_international: q.open_to_international,
                        page_size,
                        page_token: token.clone(),
                    })
                    .await?
                    .into_inner();
                let recs = r
                    .vacancies
                    .into_iter()
                    .map(|v| {
                        let (rev, ts) = (v.revision, v.updated_at);
                        back(WireRecord::Vacancy(v)).map(|r| with_version(r, rev, ts))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                (recs, r.next_page_token)
            }
            Kind::Shortage => {
                let r = ShortagesClient::new(ch.clone())
                    .accept_compressed(CompressionEncoding::Zstd)
                    .list(pb::ListShortagesRequest {
                        origins: q.origins.clone(),
                        countries: q.countries.clone(),
                        isco_prefix: q.isco_prefix.clone(),
                        list: q.list.clone(),
                        year: q.year,
                        page_size,
                        page_token: token.clone(),
                    })
                    .await?
                    .into_inner();
                let recs = r
                    .shortages
                    .into_iter()
                    .map(|s| {
                        let (rev, ts) = (s.revision, s.updated_at);
                        back(WireRecord::Shortage(s)).map(|r| with_version(r, rev, ts))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                (recs, r.next_page_token)
            }
            Kind::Supply => {
                let r = SupplyClient::new(ch.clone())
                    .accept_compressed(CompressionEncoding::Zstd)
                    .list(pb::ListSupplyRequest {
                        origins: q.origins.clone(),
                        countries: q.countries.clone(),
                        isco_prefix: q.isco_prefix.clone(),
                        period: q.period.clone(),
                        page_size,
                        page_token: token.clone(),
                    })
                    .await?
                    .into_inner();
                let recs = r
                    .cells
                    .into_iter()
                    .map(|c| {
                        let (rev, ts) = (c.revision, c.updated_at);
                        back(WireRecord::Supply(c)).map(|r| with_version(r, rev, ts))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                (recs, r.next_page_token)
            }
        };
        out.extend(page);
        if let Some(l) = limit {
            if out.len() >= l {
                out.truncate(l);
                break;
            }
        }
        if next.is_empty() {
            break;
        }
        token = next;
    }
    Ok(out)
}

/// Prints records as an aligned table, CSV (import columns) or JSON lines.
pub fn print_records(kind: Kind, records: &[Record], format: OutputFormat) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match format {
        OutputFormat::Json => {
            for r in records {
                writeln!(out, "{}", serde_json::to_string(&files::record_to_json(r))?)?;
            }
        }
        OutputFormat::Csv => files::write_csv(kind, records, out)?,
        OutputFormat::Table => {
            let (header, rows): (Vec<&str>, Vec<Vec<String>>) = match kind {
                Kind::Vacancy => (
                    vec![
                        "origin", "id", "rev", "status", "isco", "country", "pos", "intl",
                        "posted", "title",
                    ],
                    records
                        .iter()
                        .filter_map(|r| match r {
                            Record::Vacancy(v) => Some(vec![
                                v.origin.clone(),
                                v.id.clone(),
                                v.revision.to_string(),
                                format!("{:?}", v.status).to_uppercase(),
                                v.occupation.isco08.clone(),
                                v.location.country.clone(),
                                v.positions.to_string(),
                                if v.open_to_international { "yes" } else { "no" }.into(),
                                v.posted_on.clone(),
                                v.title.clone(),
                            ]),
                            _ => None,
                        })
                        .collect(),
                ),
                Kind::Shortage => (
                    vec![
                        "origin",
                        "id",
                        "rev",
                        "list",
                        "year",
                        "country",
                        "isco",
                        "causes",
                        "occupation",
                    ],
                    records
                        .iter()
                        .filter_map(|r| match r {
                            Record::Shortage(s) => Some(vec![
                                s.origin.clone(),
                                s.id.clone(),
                                s.revision.to_string(),
                                s.list.clone(),
                                s.year.to_string(),
                                s.country.clone(),
                                s.occupation.isco08.clone(),
                                s.causes
                                    .iter()
                                    .map(|c| cause_name(*c))
                                    .collect::<Vec<_>>()
                                    .join(","),
                                passerelle_refdata::isco(&s.occupation.isco08)
                                    .map(|g| g.label.to_owned())
                                    .unwrap_or_default(),
                            ]),
                            _ => None,
                        })
                        .collect(),
                ),
                Kind::Supply => (
                    vec![
                        "origin",
                        "id",
                        "rev",
                        "period",
                        "country",
                        "isco",
                        "jobseekers",
                        "willing",
                        "occupation",
                    ],
                    records
                        .iter()
                        .filter_map(|r| match r {
                            Record::Supply(c) => Some(vec![
                                c.origin.clone(),
                                c.id.clone(),
                                c.revision.to_string(),
                                c.period.clone(),
                                c.country.clone(),
                                c.occupation.isco08.clone(),
                                if c.suppressed {
                                    "suppressed".into()
                                } else {
                                    c.registered_jobseekers.to_string()
                                },
                                if c.suppressed {
                                    "suppressed".into()
                                } else {
                                    c.willing_to_migrate.to_string()
                                },
                                passerelle_refdata::isco(&c.occupation.isco08)
                                    .map(|g| g.label.to_owned())
                                    .unwrap_or_default(),
                            ]),
                            _ => None,
                        })
                        .collect(),
                ),
            };
            write_table(&mut out, &header, &rows)?;
            if rows.is_empty() {
                writeln!(out, "(no {kind} records)")?;
            }
        }
    }
    Ok(())
}

fn cause_name(c: passerelle_model::ShortageCause) -> &'static str {
    match c {
        passerelle_model::ShortageCause::Quantitative => "quantitative",
        passerelle_model::ShortageCause::Qualitative => "qualitative",
        passerelle_model::ShortageCause::WorkingConditions => "working_conditions",
    }
}

/// An aligned text table; the last column is left unpadded.
pub fn write_table(
    out: &mut impl Write,
    header: &[&str],
    rows: &[Vec<String>],
) -> std::io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let n = cells.len();
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i + 1 == n {
                    c.to_string()
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for r in rows {
        writeln!(out, "{}", line(r.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

/// What an import did, printed at the end.
#[derive(Debug, Default, Clone)]
pub struct ImportReport {
    pub file: String,
    pub lines: u64,
    pub written: u64,
    pub unchanged: u64,
    pub rejected: u64,
    pub unreadable: u64,
    pub seconds: f64,
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rate = if self.seconds > 0.0 {
            self.lines as f64 / self.seconds
        } else {
            0.0
        };
        write!(
            f,
            "imported {}: {} records, {} written, {} unchanged, {} refused ({} unreadable) in {:.1}s ({:.0} records/s)",
            self.file,
            self.lines,
            self.written,
            self.unchanged,
            self.rejected,
            self.unreadable,
            self.seconds,
            rate
        )
    }
}

/// Imports a file in Import calls of `batch` items; refused items are printed with their line.
pub async fn import_file(
    ch: Channel,
    kind: Kind,
    path: &std::path::Path,
    batch: usize,
) -> anyhow::Result<ImportReport> {
    let format = Format::from_path(path)?;
    let (input, total): (Box<dyn BufRead + Send>, Option<u64>) = if path.as_os_str() == "-" {
        (Box::new(BufReader::new(std::io::stdin())), None)
    } else {
        let f =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let len = f.metadata().ok().map(|m| m.len());
        (Box::new(BufReader::with_capacity(1 << 20, f)), len)
    };
    let lines =
        files::read_records(kind, format, input).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let bar = progress(total);
    let started = Instant::now();
    let mut report = ImportReport {
        file: path.display().to_string(),
        ..Default::default()
    };
    let mut pending: Vec<(u64, Record)> = Vec::with_capacity(batch);
    let mut inflight: Option<Inflight> = None;
    let mut lines = lines.peekable();
    loop {
        let next: Option<Line> = lines.next();
        let done = next.is_none();
        if let Some(l) = next {
            bar.inc(l.bytes);
            report.lines += 1;
            match l.record {
                Ok(r) => pending.push((l.line, r)),
                Err(e) => {
                    report.rejected += 1;
                    report.unreadable += 1;
                    bar.suspend(|| println!("line {}: {e}", l.line));
                }
            }
        }
        if pending.len() >= batch || (done && !pending.is_empty()) {
            // one call in flight while the next chunk is parsed: client and node work at once
            let chunk = std::mem::take(&mut pending);
            let (ch2, kind2) = (ch.clone(), kind);
            let call = tokio::spawn(async move {
                let r = import_chunk(ch2, kind2, &chunk).await;
                (chunk, r)
            });
            if let Some(prev) = inflight.replace(call) {
                settle(prev, &mut report, &bar).await?;
            }
        }
        if done {
            if let Some(prev) = inflight.take() {
                settle(prev, &mut report, &bar).await?;
            }
            break;
        }
    }
    bar.finish_and_clear();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

type Inflight = tokio::task::JoinHandle<(Vec<(u64, Record)>, Result<pb::ImportSummary, Status>)>;

/// Waits for an Import call and reports its refused items with their line numbers.
async fn settle(
    call: Inflight,
    report: &mut ImportReport,
    bar: &ProgressBar,
) -> anyhow::Result<()> {
    let (chunk, result) = call.await.map_err(|e| anyhow!("import task failed: {e}"))?;
    let summary = result.map_err(|s| {
        bar.abandon();
        anyhow!(
            "import stopped after {} records: {}",
            report.written + report.unchanged + report.rejected,
            status_lines("", &s).join("; ")
        )
    })?;
    report.written += summary.written;
    report.unchanged += summary.unchanged;
    report.rejected += summary.rejected;
    for item in summary.results {
        if let Some(pb::import_item_result::Outcome::Error(bad)) = item.outcome {
            let line = chunk.get(item.index as usize).map_or(0, |c| c.0);
            bar.suspend(|| {
                for v in bad.field_violations {
                    println!(
                        "line {line} (id {}): {}: {}",
                        item.id, v.field, v.description
                    );
                }
            });
        }
    }
    Ok(())
}

fn progress(total: Option<u64>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    match total {
        Some(n) => {
            let bar = ProgressBar::new(n);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .expect("valid template"),
            );
            bar
        }
        None => ProgressBar::new_spinner(),
    }
}

/// Sends one Import call; items are (line, record).
pub async fn import_chunk(
    ch: Channel,
    kind: Kind,
    chunk: &[(u64, Record)],
) -> Result<pb::ImportSummary, Status> {
    let wire: Vec<WireRecord> = chunk.iter().map(|(_, r)| convert::record_out(r)).collect();
    // items go uncompressed: gRPC compresses each message on its own, and a fresh zstd context
    // per 1.5 KB record cost more CPU on both sides than the bytes it saved (profiled); the
    // summary that comes back is one large message, worth compressing
    let r = match kind {
        Kind::Vacancy => {
            let items: Vec<_> = wire
                .into_iter()
                .filter_map(|w| match w {
                    WireRecord::Vacancy(v) => Some(pb::ImportVacancyRequest { vacancy: Some(v) }),
                    _ => None,
                })
                .collect();
            VacanciesClient::new(ch)
                .accept_compressed(CompressionEncoding::Zstd)
                .max_decoding_message_size(64 << 20)
                .import(tokio_stream::iter(items))
                .await
        }
        Kind::Shortage => {
            let items: Vec<_> = wire
                .into_iter()
                .filter_map(|w| match w {
                    WireRecord::Shortage(s) => {
                        Some(pb::ImportShortageRequest { shortage: Some(s) })
                    }
                    _ => None,
                })
                .collect();
            ShortagesClient::new(ch)
                .accept_compressed(CompressionEncoding::Zstd)
                .max_decoding_message_size(64 << 20)
                .import(tokio_stream::iter(items))
                .await
        }
        Kind::Supply => {
            let items: Vec<_> = wire
                .into_iter()
                .filter_map(|w| match w {
                    WireRecord::Supply(c) => Some(pb::ImportSupplyRequest { cell: Some(c) }),
                    _ => None,
                })
                .collect();
            SupplyClient::new(ch)
                .accept_compressed(CompressionEncoding::Zstd)
                .max_decoding_message_size(64 << 20)
                .import(tokio_stream::iter(items))
                .await
        }
    };
    r.map(|r| r.into_inner())
}
