//! Identifiers: agency ids, record kinds and record keys (`<origin>/<kind>/<id>`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why an identifier was refused; the message is lowercase and names the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IdError(pub String);

/// An agency id: ISO 3166-1 alpha-2 country, a dot, a short name (`tg.anpe`, `be.vdab`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AgencyId(String);

impl AgencyId {
    /// Checks `^[a-z]{2}\.[a-z0-9-]{2,32}$`.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if is_agency_id(s) {
            Ok(AgencyId(s.to_owned()))
        } else {
            Err(IdError(format!(
                "agency id {s:?} must look like 'tg.anpe': two lowercase letters, a dot, 2 to 32 of a-z 0-9 -"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The ISO 3166-1 alpha-2 country of the agency, uppercase (`TG`).
    pub fn country(&self) -> String {
        self.0[..2].to_ascii_uppercase()
    }
}

/// True when `s` is a well-formed agency id.
pub fn is_agency_id(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 5 || b.len() > 35 || b[2] != b'.' {
        return false;
    }
    b[..2].iter().all(|c| c.is_ascii_lowercase())
        && b[3..]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// True when `s` is a well-formed record id: `^[A-Za-z0-9._-]{1,64}$`.
pub fn is_record_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-')
}

impl fmt::Display for AgencyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for AgencyId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AgencyId::parse(s)
    }
}

impl TryFrom<String> for AgencyId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        AgencyId::parse(&s)
    }
}

impl From<AgencyId> for String {
    fn from(a: AgencyId) -> String {
        a.0
    }
}

/// The three kinds of record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Vacancy,
    Shortage,
    Supply,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Vacancy, Kind::Shortage, Kind::Supply];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Vacancy => "vacancy",
            Kind::Shortage => "shortage",
            Kind::Supply => "supply",
        }
    }

    /// A stable one-byte tag, used in storage keys.
    pub fn tag(self) -> u8 {
        match self {
            Kind::Vacancy => b'v',
            Kind::Shortage => b's',
            Kind::Supply => b'p',
        }
    }

    pub fn from_tag(t: u8) -> Option<Kind> {
        match t {
            b'v' => Some(Kind::Vacancy),
            b's' => Some(Kind::Shortage),
            b'p' => Some(Kind::Supply),
            _ => None,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "vacancy" => Ok(Kind::Vacancy),
            "shortage" => Ok(Kind::Shortage),
            "supply" => Ok(Kind::Supply),
            _ => Err(IdError(format!(
                "kind {s:?} must be one of vacancy, shortage, supply"
            ))),
        }
    }
}

/// The key of a record: `<origin>/<kind>/<id>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecordKey {
    pub origin: AgencyId,
    pub kind: Kind,
    pub id: String,
}

impl RecordKey {
    pub fn new(origin: AgencyId, kind: Kind, id: impl Into<String>) -> Result<Self, IdError> {
        let id = id.into();
        if !is_record_id(&id) {
            return Err(IdError(format!(
                "record id {id:?} must be 1 to 64 of A-Z a-z 0-9 . _ -"
            )));
        }
        Ok(RecordKey { origin, kind, id })
    }
}

impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.origin, self.kind, self.id)
    }
}

impl FromStr for RecordKey {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.splitn(3, '/');
        let (Some(o), Some(k), Some(i)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(IdError(format!(
                "record key {s:?} must look like '<origin>/<kind>/<id>'"
            )));
        };
        RecordKey::new(o.parse()?, k.parse()?, i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agency_ids() {
        assert!(is_agency_id("tg.anpe"));
        assert!(is_agency_id("be.vdab"));
        assert!(is_agency_id("fr.france-travail"));
        assert!(!is_agency_id("TG.anpe"));
        assert!(!is_agency_id("tg.a"));
        assert!(!is_agency_id("tga.npe"));
        assert!(!is_agency_id("tg.anpe_x"));
        assert!(!is_agency_id(&format!("tg.{}", "a".repeat(33))));
        assert_eq!(AgencyId::parse("tg.anpe").unwrap().country(), "TG");
    }

    #[test]
    fn record_keys_round_trip() {
        let k: RecordKey = "be.vdab/vacancy/V-2026-00042".parse().unwrap();
        assert_eq!(k.kind, Kind::Vacancy);
        assert_eq!(k.to_string(), "be.vdab/vacancy/V-2026-00042");
        assert!("be.vdab/job/x".parse::<RecordKey>().is_err());
        assert!("be.vdab/vacancy/a b".parse::<RecordKey>().is_err());
        assert!(!is_record_id(&"x".repeat(65)));
    }
}
