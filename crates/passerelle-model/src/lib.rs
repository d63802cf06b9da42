//! Domain model of passerelle: record kinds, keys, revisions and the validation rules of PRODUCT.md section 1.
//!
//! This crate knows nothing of the wire (tonic, prost) or of storage: the
//! wire layer converts to these types at the edge, and the store sees only
//! the canonical bytes of [`codec`].

pub mod codec;
pub mod dates;
pub mod envelope;
pub mod ids;
pub mod records;
pub mod validate;
pub mod violations;

pub use dates::Date;
pub use ids::{AgencyId, IdError, Kind, RecordKey};
pub use records::{
    CefrLevel, Contract, LanguageRequirement, Location, Occupation, Record, Salary, SalaryPeriod,
    Schedule, Shortage, ShortageCause, Skill, SupplyCell, Vacancy, VacancyStatus,
};
pub use validate::Rules;
pub use violations::{Violation, Violations};

impl Record {
    /// Checks every rule of section 1 for this record; `prefix` is its path in the request.
    pub fn validate(&self, prefix: &str, rules: &Rules) -> Result<(), Violations> {
        let mut v = Violations::new();
        match self {
            Record::Vacancy(r) => r.validate(prefix, &mut v),
            Record::Shortage(r) => r.validate(prefix, &mut v),
            Record::Supply(r) => r.validate(prefix, rules, &mut v),
        }
        v.into_result()
    }
}
