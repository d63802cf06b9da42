//! Record files for import and export: JSON Lines (one record per line) and CSV (one column per field).
//!
//! CSV columns are field paths (`occupation.isco08`, `salary.max`); list
//! fields are `;`-separated: skills as `uri|label|essential`, languages as
//! `code:LEVEL`, causes and programmes as plain values. Every parse error
//! names the line and the field.

use std::io::BufRead;

use anyhow::anyhow;
use passerelle_model::{Kind, Record};
use serde_json::{Map, Value};

/// How a CSV column is typed.
#[derive(Clone, Copy)]
enum Ty {
    Str,
    Num,
    Bool,
    StrList,
    Skills,
    Languages,
}

use Ty::*;

const VACANCY_COLUMNS: &[(&str, Ty)] = &[
    ("id", Str),
    ("status", Str),
    ("title", Str),
    ("description", Str),
    ("language", Str),
    ("occupation.isco08", Str),
    ("occupation.esco_uri", Str),
    ("skills", Skills),
    ("location.country", Str),
    ("location.subdivision", Str),
    ("location.nuts", Str),
    ("location.locality", Str),
    ("employer_name", Str),
    ("contract", Str),
    ("schedule", Str),
    ("positions", Num),
    ("salary.min", Num),
    ("salary.max", Num),
    ("salary.currency", Str),
    ("salary.period", Str),
    ("languages", Languages),
    ("isced_level", Num),
    ("experience_months", Num),
    ("posted_on", Str),
    ("closes_on", Str),
    ("open_to_international", Bool),
    ("programmes", StrList),
    ("origin", Str),
    ("revision", Num),
];

const SHORTAGE_COLUMNS: &[(&str, Ty)] = &[
    ("id", Str),
    ("list", Str),
    ("year", Num),
    ("country", Str),
    ("subdivision", Str),
    ("occupation.isco08", Str),
    ("occupation.esco_uri", Str),
    ("national_code", Str),
    ("causes", StrList),
    ("skills", Skills),
    ("unfilled_vacancies", Num),
    ("median_days_open", Num),
    ("jobseekers_per_100_vacancies", Num),
    ("origin", Str),
    ("revision", Num),
];

const SUPPLY_COLUMNS: &[(&str, Ty)] = &[
    ("id", Str),
    ("period", Str),
    ("country", Str),
    ("subdivision", Str),
    ("occupation.isco08", Str),
    ("occupation.esco_uri", Str),
    ("isced_level", Num),
    ("registered_jobseekers", Num),
    ("willing_to_migrate", Num),
    ("suppressed", Bool),
    ("origin", Str),
    ("revision", Num),
];

fn columns(kind: Kind) -> &'static [(&'static str, Ty)] {
    match kind {
        Kind::Vacancy => VACANCY_COLUMNS,
        Kind::Shortage => SHORTAGE_COLUMNS,
        Kind::Supply => SUPPLY_COLUMNS,
    }
}

/// The file formats `import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
}

impl Format {
    pub fn from_path(path: &std::path::Path) -> anyhow::Result<Format> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("jsonl") | Some("ndjson") | Some("json") => Ok(Format::Jsonl),
            Some("csv") => Ok(Format::Csv),
            _ => Err(anyhow!(
                "{}: cannot tell the format, name the file .jsonl or .csv",
                path.display()
            )),
        }
    }
}

/// Parses one JSON object into a record; the error names the field path.
pub fn record_from_json(kind: Kind, value: Value) -> anyhow::Result<Record> {
    typed_record(kind, value)
}

/// Parses one JSON text into a record in a single pass; the error names the field path.
pub fn record_from_str(kind: Kind, text: &str) -> anyhow::Result<Record> {
    let mut de = serde_json::Deserializer::from_str(text);
    let r = typed_record(kind, &mut de)?;
    de.end().map_err(|e| anyhow!("not JSON: {e}"))?;
    Ok(r)
}

fn typed_record<'de, D>(kind: Kind, de: D) -> anyhow::Result<Record>
where
    D: serde::Deserializer<'de>,
    D::Error: std::fmt::Display,
{
    fn named<E: std::fmt::Display>(e: serde_path_to_error::Error<E>) -> anyhow::Error {
        let path = e.path().to_string();
        if path == "." {
            anyhow!("{}", e.inner())
        } else {
            anyhow!("{path}: {}", e.inner())
        }
    }
    Ok(match kind {
        Kind::Vacancy => Record::Vacancy(serde_path_to_error::deserialize(de).map_err(named)?),
        Kind::Shortage => Record::Shortage(serde_path_to_error::deserialize(de).map_err(named)?),
        Kind::Supply => Record::Supply(serde_path_to_error::deserialize(de).map_err(named)?),
    })
}

pub fn record_to_json(r: &Record) -> Value {
    match r {
        Record::Vacancy(v) => serde_json::to_value(v),
        Record::Shortage(s) => serde_json::to_value(s),
        Record::Supply(c) => serde_json::to_value(c),
    }
    .expect("records serialise to JSON")
}

/// One line of an input file: its 1-based line number and either a record or why it was refused.
pub struct Line {
    pub line: u64,
    pub bytes: u64,
    pub record: anyhow::Result<Record>,
}

/// Reads records lazily from a JSONL or CSV source.
pub fn read_records(
    kind: Kind,
    format: Format,
    input: Box<dyn BufRead + Send>,
) -> anyhow::Result<Box<dyn Iterator<Item = Line> + Send>> {
    match format {
        Format::Jsonl => {
            let mut n = 0u64;
            Ok(Box::new(input.lines().filter_map(move |l| {
                n += 1;
                match l {
                    Err(e) => Some(Line {
                        line: n,
                        bytes: 0,
                        record: Err(anyhow!("cannot read: {e}")),
                    }),
                    Ok(text) if text.trim().is_empty() => None,
                    Ok(text) => {
                        let bytes = text.len() as u64 + 1;
                        let record = record_from_str(kind, &text);
                        Some(Line {
                            line: n,
                            bytes,
                            record,
                        })
                    }
                }
            })))
        }
        Format::Csv => {
            let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(input);
            let headers = reader.headers()?.clone();
            let cols = columns(kind);
            let mut types = Vec::with_capacity(headers.len());
            for h in headers.iter() {
                let t = cols
                    .iter()
                    .find(|(name, _)| *name == h)
                    .map(|(_, t)| *t)
                    .ok_or_else(|| {
                        anyhow!(
                            "unknown CSV column {h:?}; {} columns are: {}",
                            kind,
                            cols.iter().map(|c| c.0).collect::<Vec<_>>().join(", ")
                        )
                    })?;
                types.push(t);
            }
            let mut last_pos = 0u64;
            Ok(Box::new(reader.into_records().map(move |row| {
                let (line, record, bytes) = match row {
                    Err(e) => {
                        let line = e.position().map_or(0, |p| p.line());
                        (line, Err(anyhow!("bad CSV: {e}")), 0)
                    }
                    Ok(row) => {
                        let pos = row.position().map_or(0, |p| p.byte());
                        let bytes = pos.saturating_sub(last_pos);
                        last_pos = pos;
                        let line = row.position().map_or(0, |p| p.line());
                        let r =
                            csv_row(&headers, &types, &row).and_then(|v| record_from_json(kind, v));
                        (line, r, bytes)
                    }
                };
                Line {
                    line,
                    bytes,
                    record,
                }
            })))
        }
    }
}

fn csv_row(
    headers: &csv::StringRecord,
    types: &[Ty],
    row: &csv::StringRecord,
) -> anyhow::Result<Value> {
    let mut obj = Map::new();
    for ((h, ty), cell) in headers.iter().zip(types).zip(row.iter()) {
        if cell.is_empty() {
            continue;
        }
        let value = match ty {
            Str => Value::String(cell.to_owned()),
            Num => {
                let n: serde_json::Number = cell
                    .trim()
                    .parse()
                    .map_err(|_| anyhow!("{h}: {cell:?} is not a number"))?;
                Value::Number(n)
            }
            Bool => match cell.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => Value::Bool(true),
                "false" | "no" | "0" => Value::Bool(false),
                _ => return Err(anyhow!("{h}: {cell:?} is not true or false")),
            },
            StrList => Value::Array(
                cell.split(';')
                    .map(|s| Value::String(s.trim().to_owned()))
                    .collect(),
            ),
            Skills => {
                let mut out = Vec::new();
                for (i, part) in cell.split(';').enumerate() {
                    let mut f = part.splitn(3, '|');
                    let uri = f.next().unwrap_or_default().trim();
                    let label = f.next().unwrap_or_default().trim();
                    let essential = match f.next().map(|s| s.trim().to_ascii_lowercase()) {
                        None => false,
                        Some(s) if s == "true" || s == "essential" || s == "1" => true,
                        Some(s) if s == "false" || s == "optional" || s == "0" || s.is_empty() => {
                            false
                        }
                        Some(s) => return Err(anyhow!("{h}[{i}]: {s:?} is not true or false")),
                    };
                    out.push(serde_json::json!({"esco_uri": uri, "label": label, "essential": essential}));
                }
                Value::Array(out)
            }
            Languages => {
                let mut out = Vec::new();
                for (i, part) in cell.split(';').enumerate() {
                    let (code, level) = part.split_once(':').ok_or_else(|| {
                        anyhow!("{h}[{i}]: {part:?} must be code:LEVEL, e.g. fr:B2")
                    })?;
                    out.push(serde_json::json!({"code": code.trim(), "level": level.trim()}));
                }
                Value::Array(out)
            }
        };
        insert_path(&mut obj, h, value);
    }
    Ok(Value::Object(obj))
}

fn insert_path(obj: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            obj.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let child = obj
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = child {
                insert_path(m, rest, value);
            }
        }
    }
}

/// Writes records as CSV with the same columns `import` reads.
pub fn write_csv(kind: Kind, records: &[Record], out: impl std::io::Write) -> anyhow::Result<()> {
    let cols = columns(kind);
    let mut w = csv::Writer::from_writer(out);
    w.write_record(cols.iter().map(|c| c.0))?;
    for r in records {
        let v = record_to_json(r);
        let row: Vec<String> = cols.iter().map(|(name, ty)| cell(&v, name, *ty)).collect();
        w.write_record(&row)?;
    }
    w.flush()?;
    Ok(())
}

fn cell(v: &Value, path: &str, ty: Ty) -> String {
    let mut cur = v;
    for part in path.split('.') {
        match cur.get(part) {
            Some(x) => cur = x,
            None => return String::new(),
        }
    }
    match (ty, cur) {
        (_, Value::Null) => String::new(),
        (_, Value::String(s)) => s.clone(),
        (Skills, Value::Array(a)) => a
            .iter()
            .map(|s| {
                format!(
                    "{}|{}|{}",
                    s["esco_uri"].as_str().unwrap_or_default(),
                    s["label"].as_str().unwrap_or_default(),
                    s["essential"].as_bool().unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join(";"),
        (Languages, Value::Array(a)) => a
            .iter()
            .map(|l| {
                format!(
                    "{}:{}",
                    l["code"].as_str().unwrap_or_default(),
                    l["level"].as_str().unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join(";"),
        (_, Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| x.to_string())
            })
            .collect::<Vec<_>>()
            .join(";"),
        (_, other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_errors_name_the_field() {
        let data = "id,status,title,positions\nV1,OPEN,Nurse,three\nV2,SHUT,Nurse,1\n";
        let lines: Vec<_> = read_records(Kind::Vacancy, Format::Csv, Box::new(data.as_bytes()))
            .unwrap()
            .collect();
        let e1 = lines[0].record.as_ref().unwrap_err().to_string();
        assert!(e1.starts_with("positions:"), "{e1}");
        let e2 = lines[1].record.as_ref().unwrap_err().to_string();
        assert!(e2.starts_with("status:"), "{e2}");
        assert_eq!(lines[1].line, 3);
    }

    #[test]
    fn unknown_csv_column_is_refused() {
        let data = "id,colour\nV1,red\n";
        let err = read_records(Kind::Vacancy, Format::Csv, Box::new(data.as_bytes()))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("\"colour\""), "{err}");
    }

    #[test]
    fn json_errors_name_nested_fields() {
        let data = r#"{"id":"V1","status":"OPEN","title":"x","salary":{"min":1,"max":2,"period":"MONTHLY"}}"#;
        let lines: Vec<_> = read_records(Kind::Vacancy, Format::Jsonl, Box::new(data.as_bytes()))
            .unwrap()
            .collect();
        let e = lines[0].record.as_ref().unwrap_err().to_string();
        assert!(e.starts_with("salary.period:"), "{e}");
    }

    #[test]
    fn csv_round_trips_through_write_csv() {
        let data = "id,status,title,skills,languages,location.country,positions,open_to_international,salary.min,salary.max,salary.currency,salary.period\n\
                    V1,OPEN,Nurse,http://x/s1|care|true;http://x/s2||false,fr:B2;nl:A2,BE,2,true,100,200,EUR,MONTH\n";
        let recs: Vec<Record> = read_records(Kind::Vacancy, Format::Csv, Box::new(data.as_bytes()))
            .unwrap()
            .map(|l| l.record.unwrap())
            .collect();
        let mut out = Vec::new();
        write_csv(Kind::Vacancy, &recs, &mut out).unwrap();
        let again: Vec<Record> = read_records(
            Kind::Vacancy,
            Format::Csv,
            Box::new(std::io::Cursor::new(out)),
        )
        .unwrap()
        .map(|l| l.record.unwrap())
        .collect();
        assert_eq!(recs, again);
        let Record::Vacancy(v) = &recs[0] else {
            panic!()
        };
        assert_eq!(v.skills.len(), 2);
        assert!(v.skills[0].essential);
        assert_eq!(v.languages[1].code, "nl");
        assert_eq!(v.salary.as_ref().unwrap().currency, "EUR");
    }
}
