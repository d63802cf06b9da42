//! Validation of every rule of PRODUCT.md section 1, reporting all violations of a record at once.
//!
//! Paths are relative to the request (`vacancy.skills[2].esco_uri`); a rule
//! that spans two fields is reported on the later one (section 7).

use std::collections::HashMap;

use passerelle_refdata as refdata;

use crate::dates::Date;
use crate::ids::{is_agency_id, is_record_id};
use crate::records::{Location, Occupation, Salary, Shortage, Skill, SupplyCell, Vacancy};
use crate::violations::{path, Violations};

pub const MAX_TITLE: usize = 300;
pub const MAX_DESCRIPTION: usize = 20_000;
pub const MAX_SKILLS: usize = 50;
pub const MAX_SKILL_LABEL: usize = 300;
pub const MAX_EMPLOYER: usize = 200;
pub const MAX_LOCALITY: usize = 200;
pub const MAX_LANGUAGES: usize = 20;
pub const MAX_PROGRAMMES: usize = 20;
pub const MAX_NATIONAL_CODE: usize = 64;
pub const MAX_EXPERIENCE_MONTHS: u32 = 600;
pub const MAX_ISCED: u32 = 8;
pub const MIN_YEAR: u32 = 1990;
pub const MAX_YEAR: u32 = 2100;
/// The smallest count a supply cell may publish unsuppressed (configurable upwards).
pub const DEFAULT_MIN_CELL_SIZE: u64 = 5;

/// Settings that tune validation per node.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub min_cell_size: u64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            min_cell_size: DEFAULT_MIN_CELL_SIZE,
        }
    }
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// Plain text: no control characters; `multiline` admits tab, CR and LF.
fn plain_text(s: &str, multiline: bool) -> bool {
    s.chars()
        .all(|c| !(c.is_control() && !(multiline && matches!(c, '\t' | '\n' | '\r'))))
}

/// `field` names the field only when there is something to report: most records are valid,
/// and formatting every path of every record showed in profiles.
fn text(
    v: &mut Violations,
    field: impl FnOnce() -> String,
    s: &str,
    min: usize,
    max: usize,
    multiline: bool,
) {
    let n = chars(s);
    if n < min {
        v.push(field(), "required");
    } else if n > max {
        v.push(
            field(),
            format!("must be at most {max} characters (has {n})"),
        );
    } else if !plain_text(s, multiline) {
        v.push(field(), "must be plain text without control characters");
    }
}

fn id(v: &mut Violations, prefix: &str, s: &str) {
    if !is_record_id(s) {
        v.push(path(prefix, "id"), "must be 1 to 64 of A-Z a-z 0-9 . _ -");
    }
}

fn origin(v: &mut Violations, prefix: &str, s: &str) {
    if !is_agency_id(s) {
        v.push(
            path(prefix, "origin"),
            "must be an agency id like 'tg.anpe' (set by the node)",
        );
    }
}

fn country(v: &mut Violations, field: String, s: &str) -> bool {
    if s.is_empty() {
        v.push(field, "required (ISO 3166-1 alpha-2 code)");
        false
    } else if refdata::country(s).is_none() {
        v.push(
            field,
            format!("{s:?} is not an ISO 3166-1 alpha-2 country code"),
        );
        false
    } else {
        true
    }
}

fn subdivision(v: &mut Violations, field: String, s: &str, country: Option<&str>) {
    if s.is_empty() {
        return;
    }
    match refdata::subdivision(s) {
        None => v.push(
            field,
            format!("{s:?} is not an ISO 3166-2 subdivision code"),
        ),
        Some(sub) => {
            if let Some(c) = country {
                if sub.country != c {
                    v.push(field, format!("{s:?} is not a subdivision of {c}"));
                }
            }
        }
    }
}

fn isced(v: &mut Violations, field: String, level: Option<u32>) {
    if let Some(l) = level {
        if l > MAX_ISCED {
            v.push(field, format!("must be an ISCED level 0..8 (got {l})"));
        }
    }
}

/// `unit_only`: vacancies and shortages need a 4-digit unit group; supply cells take any level.
fn occupation(v: &mut Violations, prefix: &str, o: &Occupation, unit_only: bool) {
    let p = path(prefix, "occupation");
    let isco_field = path(&p, "isco08");
    let mut isco_ok = false;
    if o.isco08.is_empty() {
        v.push(isco_field, "required (ISCO-08 code)");
    } else if unit_only {
        if refdata::is_isco_unit_group(&o.isco08) {
            isco_ok = true;
        } else {
            v.push(
                isco_field,
                format!(
                    "{:?} is not one of the 436 ISCO-08 unit groups (4 digits)",
                    o.isco08
                ),
            );
        }
    } else if refdata::isco(&o.isco08).is_some() {
        isco_ok = true;
    } else {
        v.push(
            isco_field,
            format!("{:?} is not an ISCO-08 group (1 to 4 digits)", o.isco08),
        );
    }
    if o.esco_uri.is_empty() {
        return;
    }
    let esco_field = path(&p, "esco_uri");
    match refdata::esco_occupation(&o.esco_uri) {
        None => v.push(
            esco_field,
            format!("{:?} is not a known ESCO occupation URI", o.esco_uri),
        ),
        Some(occ) => {
            if let (true, Some(group)) = (isco_ok, occ.isco) {
                if !group.starts_with(o.isco08.as_str()) {
                    v.push(
                        esco_field,
                        format!(
                            "ESCO occupation belongs to ISCO-08 group {group}, not {}",
                            o.isco08
                        ),
                    );
                }
            }
        }
    }
}

fn skills(v: &mut Violations, prefix: &str, list: &[Skill]) {
    let field = path(prefix, "skills");
    if list.len() > MAX_SKILLS {
        v.push(
            field.clone(),
            format!("at most {MAX_SKILLS} skills (has {})", list.len()),
        );
        return;
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, s) in list.iter().enumerate() {
        let item = || format!("{field}[{i}]");
        if s.esco_uri.is_empty() {
            v.push(format!("{}.esco_uri", item()), "required (ESCO skill URI)");
        } else if refdata::esco_skill(&s.esco_uri).is_none() {
            v.push(
                format!("{}.esco_uri", item()),
                format!("{:?} is not a known ESCO skill URI", s.esco_uri),
            );
        } else if let Some(first) = seen.insert(&s.esco_uri, i) {
            seen.insert(&s.esco_uri, first);
            v.push(item(), format!("duplicate of {field}[{first}]"));
        }
        text(
            v,
            || format!("{}.label", item()),
            &s.label,
            0,
            MAX_SKILL_LABEL,
            false,
        );
    }
}

fn location(v: &mut Violations, prefix: &str, l: &Location) {
    let p = path(prefix, "location");
    let ok = country(v, path(&p, "country"), &l.country);
    let c = ok.then_some(l.country.as_str());
    subdivision(v, path(&p, "subdivision"), &l.subdivision, c);
    if !l.nuts.is_empty() {
        let well_formed = (2..=5).contains(&l.nuts.len())
            && l.nuts
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if !well_formed {
            v.push(
                path(&p, "nuts"),
                format!("{:?} is not a NUTS code (2 to 5 of A-Z 0-9)", l.nuts),
            );
        } else if let Some(prefix) = c.and_then(refdata::nuts_prefix) {
            if !l.nuts.starts_with(prefix) {
                v.push(
                    path(&p, "nuts"),
                    format!(
                        "{:?} must start with {prefix}, the NUTS prefix of {}",
                        l.nuts, l.country
                    ),
                );
            }
        }
    }
    text(
        v,
        || path(&p, "locality"),
        &l.locality,
        0,
        MAX_LOCALITY,
        false,
    );
}

fn salary(v: &mut Violations, prefix: &str, s: &Salary) {
    let p = path(prefix, "salary");
    let min_ok = s.min.is_finite() && s.min >= 0.0;
    if !min_ok {
        v.push(path(&p, "min"), "must be a number ≥ 0");
    }
    if !(s.max.is_finite() && s.max >= 0.0) {
        v.push(path(&p, "max"), "must be a number ≥ 0");
    } else if min_ok && s.max < s.min {
        v.push(path(&p, "max"), format!("must be ≥ salary.min ({})", s.min));
    }
    if s.currency.is_empty() {
        v.push(
            path(&p, "currency"),
            "required when a salary is given (ISO 4217 code)",
        );
    } else if refdata::currency(&s.currency).is_none() {
        v.push(
            path(&p, "currency"),
            format!("{:?} is not an ISO 4217 currency code", s.currency),
        );
    }
    if s.period.is_none() {
        v.push(
            path(&p, "period"),
            "required when a salary is given (HOUR..YEAR)",
        );
    }
}

impl Vacancy {
    /// Checks every rule; `prefix` is the field path of the vacancy in the request.
    pub fn validate(&self, prefix: &str, v: &mut Violations) {
        id(v, prefix, &self.id);
        origin(v, prefix, &self.origin);
        text(
            v,
            || path(prefix, "title"),
            &self.title,
            1,
            MAX_TITLE,
            false,
        );
        text(
            v,
            || path(prefix, "description"),
            &self.description,
            0,
            MAX_DESCRIPTION,
            true,
        );
        if self.language.is_empty() {
            v.push(
                path(prefix, "language"),
                "required (BCP 47 tag, e.g. fr, nl-BE)",
            );
        } else if !refdata::is_bcp47(&self.language) {
            v.push(
                path(prefix, "language"),
                format!("{:?} is not a BCP 47 language tag", self.language),
            );
        }
        occupation(v, prefix, &self.occupation, true);
        skills(v, prefix, &self.skills);
        location(v, prefix, &self.location);
        text(
            v,
            || path(prefix, "employer_name"),
            &self.employer_name,
            0,
            MAX_EMPLOYER,
            false,
        );
        if self.positions == 0 {
            v.push(path(prefix, "positions"), "must be ≥ 1");
        }
        if let Some(s) = &self.salary {
            salary(v, prefix, s);
        }
        let lp = path(prefix, "languages");
        if self.languages.len() > MAX_LANGUAGES {
            v.push(
                lp,
                format!(
                    "at most {MAX_LANGUAGES} languages (has {})",
                    self.languages.len()
                ),
            );
        } else {
            let mut seen: HashMap<&str, usize> = HashMap::new();
            for (i, l) in self.languages.iter().enumerate() {
                let item = format!("{lp}[{i}]");
                let ok_code = (l.code.len() == 2 || l.code.len() == 3)
                    && refdata::language(&l.code).is_some();
                if !ok_code {
                    v.push(
                        format!("{item}.code"),
                        format!("{:?} is not an ISO 639-1 or 639-3 code", l.code),
                    );
                } else if let Some(first) = seen.get(l.code.as_str()) {
                    v.push(item.clone(), format!("duplicate of {lp}[{first}]"));
                } else {
                    seen.insert(&l.code, i);
                }
                if l.level.is_none() {
                    v.push(format!("{item}.level"), "required (CEFR A1..C2)");
                }
            }
        }
        isced(v, path(prefix, "isced_level"), self.isced_level);
        if self.experience_months > MAX_EXPERIENCE_MONTHS {
            v.push(
                path(prefix, "experience_months"),
                format!("must be at most {MAX_EXPERIENCE_MONTHS}"),
            );
        }
        let posted = if self.posted_on.is_empty() {
            v.push(path(prefix, "posted_on"), "required (YYYY-MM-DD)");
            None
        } else {
            let d = Date::parse(&self.posted_on);
            if d.is_none() {
                v.push(
                    path(prefix, "posted_on"),
                    format!("{:?} is not a date YYYY-MM-DD", self.posted_on),
                );
            }
            d
        };
        if !self.closes_on.is_empty() {
            match Date::parse(&self.closes_on) {
                None => v.push(
                    path(prefix, "closes_on"),
                    format!("{:?} is not a date YYYY-MM-DD", self.closes_on),
                ),
                Some(c) => {
                    if posted.is_some_and(|p| c < p) {
                        v.push(
                            path(prefix, "closes_on"),
                            format!("must be on or after posted_on ({})", self.posted_on),
                        );
                    }
                }
            }
        }
        let pp = path(prefix, "programmes");
        if self.programmes.len() > MAX_PROGRAMMES {
            v.push(
                pp,
                format!(
                    "at most {MAX_PROGRAMMES} programmes (has {})",
                    self.programmes.len()
                ),
            );
        } else {
            for (i, p) in self.programmes.iter().enumerate() {
                if !is_record_id(p) {
                    v.push(format!("{pp}[{i}]"), "must be 1 to 64 of A-Z a-z 0-9 . _ -");
                } else if let Some(first) = self.programmes[..i].iter().position(|q| q == p) {
                    v.push(format!("{pp}[{i}]"), format!("duplicate of {pp}[{first}]"));
                }
            }
        }
    }
}

impl Shortage {
    pub fn validate(&self, prefix: &str, v: &mut Violations) {
        id(v, prefix, &self.id);
        origin(v, prefix, &self.origin);
        if !is_record_id(&self.list) {
            v.push(
                path(prefix, "list"),
                "must name the list: 1 to 64 of A-Z a-z 0-9 . _ -",
            );
        }
        if !(MIN_YEAR..=MAX_YEAR).contains(&self.year) {
            v.push(
                path(prefix, "year"),
                format!("must be a year {MIN_YEAR}..{MAX_YEAR} (got {})", self.year),
            );
        }
        let ok = country(v, path(prefix, "country"), &self.country);
        subdivision(
            v,
            path(prefix, "subdivision"),
            &self.subdivision,
            ok.then_some(self.country.as_str()),
        );
        occupation(v, prefix, &self.occupation, true);
        text(
            v,
            || path(prefix, "national_code"),
            &self.national_code,
            0,
            MAX_NATIONAL_CODE,
            false,
        );
        let cp = path(prefix, "causes");
        if self.causes.is_empty() {
            v.push(cp, "at least one cause is required");
        } else {
            for (i, c) in self.causes.iter().enumerate() {
                if let Some(first) = self.causes[..i].iter().position(|d| d == c) {
                    v.push(format!("{cp}[{i}]"), format!("duplicate of {cp}[{first}]"));
                }
            }
        }
        skills(v, prefix, &self.skills);
        if let Some(d) = self.median_days_open {
            if d > 3650 {
                v.push(
                    path(prefix, "median_days_open"),
                    "must be at most 3650 days",
                );
            }
        }
        if let Some(r) = self.jobseekers_per_100_vacancies {
            if !(r.is_finite() && r >= 0.0) {
                v.push(
                    path(prefix, "jobseekers_per_100_vacancies"),
                    "must be a number ≥ 0",
                );
            }
        }
    }
}

/// `YYYY`, `YYYY-Qn` (n 1..4) or `YYYY-MM`.
pub fn is_period(s: &str) -> bool {
    let b = s.as_bytes();
    let year_ok = b.len() >= 4
        && b[..4].iter().all(u8::is_ascii_digit)
        && (MIN_YEAR..=MAX_YEAR).contains(&s[..4].parse::<u32>().unwrap_or(0));
    if !year_ok {
        return false;
    }
    match b.len() {
        4 => true,
        7 if b[4] == b'-' && b[5] == b'Q' => (b'1'..=b'4').contains(&b[6]),
        7 if b[4] == b'-' => {
            b[5..].iter().all(u8::is_ascii_digit)
                && (1..=12).contains(&s[5..].parse::<u32>().unwrap_or(0))
        }
        _ => false,
    }
}

impl SupplyCell {
    pub fn validate(&self, prefix: &str, rules: &Rules, v: &mut Violations) {
        id(v, prefix, &self.id);
        origin(v, prefix, &self.origin);
        if !is_period(&self.period) {
            v.push(
                path(prefix, "period"),
                format!("{:?} must be YYYY, YYYY-Qn or YYYY-MM", self.period),
            );
        }
        let ok = country(v, path(prefix, "country"), &self.country);
        subdivision(
            v,
            path(prefix, "subdivision"),
            &self.subdivision,
            ok.then_some(self.country.as_str()),
        );
        occupation(v, prefix, &self.occupation, false);
        isced(v, path(prefix, "isced_level"), self.isced_level);
        let min = rules.min_cell_size;
        let counts = [
            ("registered_jobseekers", self.registered_jobseekers),
            ("willing_to_migrate", self.willing_to_migrate),
        ];
        for (name, n) in counts {
            if self.suppressed {
                if n != 0 {
                    v.push(path(prefix, name), "must be 0 when the cell is suppressed");
                }
            } else if n > 0 && n < min {
                v.push(
                    path(prefix, name),
                    format!(
                        "{n} is below the minimum cell size {min}: publish the cell as suppressed"
                    ),
                );
            }
        }
        if self.willing_to_migrate > self.registered_jobseekers && !self.suppressed {
            v.push(
                path(prefix, "willing_to_migrate"),
                "must not exceed registered_jobseekers",
            );
        }
    }
}
