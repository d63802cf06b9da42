//! What the queries return: plain domain rows, shaped to fill `passerelle/v1/analytics.proto`.

use passerelle_model::{Date, ShortageCause};

/// `SkillsDemand`: open vacancies matching the filter and, per ESCO skill, its demand.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SkillsDemand {
    /// Open vacancies matching the filter: the denominator of every `share`.
    pub matching_vacancies: u64,
    /// Ranked by `vacancies` descending, then `esco_uri` ascending.
    pub rows: Vec<SkillRow>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SkillRow {
    pub esco_uri: String,
    /// The label publishers give most often for the URI (ties: the smallest string), else
    /// the reference-data label.
    pub label: String,
    /// Open matching vacancies that list the skill.
    pub vacancies: u64,
    /// Sum of their positions.
    pub positions: u64,
    /// Of those vacancies, how many mark the skill essential.
    pub essential: u64,
    /// `vacancies / matching_vacancies`, 0..1.
    pub share: f64,
}

/// One ISCO group of `OccupationDemand`.
#[derive(Debug, Clone, PartialEq)]
pub struct OccupationRow {
    /// The group code at the requested level (1 to 4 digits).
    pub isco08: String,
    pub label: String,
    pub vacancies: u64,
    pub positions: u64,
    /// Of `vacancies`, how many are open to international candidates.
    pub international: u64,
    /// Causes reported for the group (any unit group under it) in the latest list year of
    /// each relevant country, in enum order, without repeats.
    pub shortage_causes: Vec<ShortageCause>,
}

/// `ShortageOverview`: the lines of one country's lists for one year.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ShortageOverview {
    /// The year asked for, else the latest year of the country (0 when it has no list).
    pub year: u32,
    /// Ordered by ISCO code, list, subdivision, national code, then record key.
    pub rows: Vec<ShortageRow>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ShortageRow {
    /// The unit group of the line.
    pub isco08: String,
    pub label: String,
    pub list: String,
    pub subdivision: String,
    pub national_code: String,
    pub causes: Vec<ShortageCause>,
    /// Vacancies of the unit group open at the as-of date in the line's subdivision (with
    /// its children) when it has one, else in the whole country.
    pub open_vacancies: u64,
    pub open_positions: u64,
}

/// A supply figure: a number, or the mark that the source suppressed (part of) it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figure {
    Count(u64),
    Suppressed,
}

/// One ISCO group of `SupplyGap`.
#[derive(Debug, Clone, PartialEq)]
pub struct GapRow {
    pub isco08: String,
    pub label: String,
    /// Destination vacancies of the group open at the as-of date, and their positions.
    pub open_vacancies: u64,
    pub open_positions: u64,
    /// Causes reported for the group in the destination's latest list year.
    pub shortage_causes: Vec<ShortageCause>,
    /// `None` when no supply cell of the source's latest period contributes to the group.
    pub registered_jobseekers: Option<Figure>,
    pub willing_to_migrate: Option<Figure>,
    /// The source's latest period (empty when the source published no supply).
    pub period: String,
    /// In shortage at the destination and with supply at the source.
    pub matched: bool,
}

/// One cell of `DemandTrend`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrendRow {
    /// `YYYY-MM` of `posted_on`.
    pub month: String,
    pub country: String,
    pub vacancies: u64,
}

/// Sizes of the index, for metrics and the benchmark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// The day the "open today" aggregates describe (see `Analytics::roll_day`).
    pub day: Date,
    /// Vacancies indexed, of any status.
    pub vacancies: u64,
    /// Of those, open at `day`.
    pub open_vacancies: u64,
    pub shortage_lines: u64,
    pub supply_cells: u64,
    /// Distinct skill URIs known (the reference data is pre-loaded).
    pub skills: u64,
    pub labels: u64,
    /// Aggregation groups: (place, origin, international) and (country, origin, international).
    pub place_groups: u64,
    pub country_groups: u64,
    /// Estimated heap bytes held by the index (capacities times element sizes, plus an
    /// allowance for tree and table overhead).
    pub approx_bytes: u64,
}
