//! The three record kinds (Vacancy, Shortage, SupplyCell) and their parts, as the domain sees them.
//!
//! Field names follow PRODUCT.md section 1 (they are a contract). Enums are
//! serialised with their upper-case names so JSON import files read like the
//! specification (`"status": "OPEN"`).

use serde::{Deserialize, Serialize};

use crate::ids::{AgencyId, Kind, RecordKey};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VacancyStatus {
    Open,
    Filled,
    Withdrawn,
    Expired,
}

impl VacancyStatus {
    /// FILLED, WITHDRAWN and EXPIRED end a vacancy's life; they replicate as tombstones.
    pub fn is_tombstone(self) -> bool {
        !matches!(self, VacancyStatus::Open)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Contract {
    Permanent,
    FixedTerm,
    Temporary,
    Seasonal,
    Apprenticeship,
    Internship,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Schedule {
    FullTime,
    PartTime,
    Flexible,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SalaryPeriod {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CefrLevel {
    A1,
    A2,
    B1,
    B2,
    C1,
    C2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ShortageCause {
    Quantitative,
    Qualitative,
    WorkingConditions,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Occupation {
    pub isco08: String,
    pub esco_uri: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Skill {
    pub esco_uri: String,
    pub label: String,
    pub essential: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Location {
    pub country: String,
    pub subdivision: String,
    pub nuts: String,
    pub locality: String,
}

/// A salary range; `currency` empty or `period` absent make it incomplete (refused).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Salary {
    pub min: f64,
    pub max: f64,
    #[serde(default)]
    pub currency: String,
    #[serde(default)]
    pub period: Option<SalaryPeriod>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LanguageRequirement {
    pub code: String,
    pub level: Option<CefrLevel>,
}

/// A job vacancy. `revision` and `updated_at_micros` are set by the origin node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vacancy {
    pub id: String,
    #[serde(default)]
    pub origin: String,
    #[serde(default)]
    pub revision: u64,
    pub status: VacancyStatus,
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub language: String,
    #[serde(default)]
    pub occupation: Occupation,
    #[serde(default)]
    pub skills: Vec<Skill>,
    #[serde(default)]
    pub location: Location,
    #[serde(default)]
    pub employer_name: String,
    #[serde(default)]
    pub contract: Option<Contract>,
    #[serde(default)]
    pub schedule: Option<Schedule>,
    #[serde(default)]
    pub positions: u32,
    #[serde(default)]
    pub salary: Option<Salary>,
    #[serde(default)]
    pub languages: Vec<LanguageRequirement>,
    #[serde(default)]
    pub isced_level: Option<u32>,
    #[serde(default)]
    pub experience_months: u32,
    #[serde(default)]
    pub posted_on: String,
    #[serde(default)]
    pub closes_on: String,
    #[serde(default)]
    pub open_to_international: bool,
    #[serde(default)]
    pub programmes: Vec<String>,
    #[serde(default)]
    pub updated_at_micros: i64,
}

/// One line of a shortage-occupation list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shortage {
    pub id: String,
    #[serde(default)]
    pub origin: String,
    #[serde(default)]
    pub revision: u64,
    pub list: String,
    pub year: u32,
    pub country: String,
    #[serde(default)]
    pub subdivision: String,
    #[serde(default)]
    pub occupation: Occupation,
    #[serde(default)]
    pub national_code: String,
    #[serde(default)]
    pub causes: Vec<ShortageCause>,
    #[serde(default)]
    pub skills: Vec<Skill>,
    #[serde(default)]
    pub unfilled_vacancies: Option<u32>,
    #[serde(default)]
    pub median_days_open: Option<u32>,
    #[serde(default)]
    pub jobseekers_per_100_vacancies: Option<f64>,
    #[serde(default)]
    pub updated_at_micros: i64,
}

/// Aggregate labour supply for one occupation, place and period: never a person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SupplyCell {
    pub id: String,
    #[serde(default)]
    pub origin: String,
    #[serde(default)]
    pub revision: u64,
    pub period: String,
    pub country: String,
    #[serde(default)]
    pub subdivision: String,
    #[serde(default)]
    pub occupation: Occupation,
    #[serde(default)]
    pub isced_level: Option<u32>,
    #[serde(default)]
    pub registered_jobseekers: u64,
    #[serde(default)]
    pub willing_to_migrate: u64,
    #[serde(default)]
    pub suppressed: bool,
    #[serde(default)]
    pub updated_at_micros: i64,
}

/// Any record, for code that handles the three kinds alike (store, sync).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Record {
    Vacancy(Vacancy),
    Shortage(Shortage),
    Supply(SupplyCell),
}

macro_rules! each {
    ($self:expr, $r:ident => $e:expr) => {
        match $self {
            Record::Vacancy($r) => $e,
            Record::Shortage($r) => $e,
            Record::Supply($r) => $e,
        }
    };
}

impl Record {
    pub fn kind(&self) -> Kind {
        match self {
            Record::Vacancy(_) => Kind::Vacancy,
            Record::Shortage(_) => Kind::Shortage,
            Record::Supply(_) => Kind::Supply,
        }
    }

    pub fn id(&self) -> &str {
        each!(self, r => &r.id)
    }

    pub fn origin(&self) -> &str {
        each!(self, r => &r.origin)
    }

    pub fn revision(&self) -> u64 {
        each!(self, r => r.revision)
    }

    pub fn updated_at_micros(&self) -> i64 {
        each!(self, r => r.updated_at_micros)
    }

    pub fn set_origin(&mut self, origin: &AgencyId) {
        each!(self, r => r.origin = origin.as_str().to_owned())
    }

    /// Sets the fields the origin node assigns (revision and change time).
    pub fn set_version(&mut self, revision: u64, updated_at_micros: i64) {
        each!(self, r => {
            r.revision = revision;
            r.updated_at_micros = updated_at_micros;
        })
    }

    /// The record's key; fails when origin or id are malformed.
    pub fn key(&self) -> Result<RecordKey, crate::ids::IdError> {
        RecordKey::new(AgencyId::parse(self.origin())?, self.kind(), self.id())
    }
}

impl From<Vacancy> for Record {
    fn from(v: Vacancy) -> Self {
        Record::Vacancy(v)
    }
}

impl From<Shortage> for Record {
    fn from(v: Shortage) -> Self {
        Record::Shortage(v)
    }
}

impl From<SupplyCell> for Record {
    fn from(v: SupplyCell) -> Self {
        Record::Supply(v)
    }
}
