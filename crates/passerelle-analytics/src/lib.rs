//! Analytics engine of passerelle (PRODUCT.md section 5): skills demand, occupation demand,
//! shortage overview, supply gap and demand trend over whatever records a node holds.
//!
//! The engine is an in-memory index fed by [`Analytics::apply`] with every stored change in
//! commit order (at start-up, with every stored record). It is domain only: no wire types;
//! results are plain rows shaped like `passerelle/v1/analytics.proto`.
//!
//! # Definitions
//!
//! - A vacancy is *open at D* when its current status is OPEN, `posted_on` ≤ D and
//!   `closes_on` is empty or ≥ D. Dates are UTC days; windows are inclusive.
//! - Filters ([`DemandQuery`]) combine with AND; the values inside one list with OR. A
//!   subdivision includes its ISO 3166-2 children (`BE-VLG` includes `BE-VAN`) and never
//!   matches a vacancy without a subdivision.
//! - **SkillsDemand**: among open vacancies matching the filter, per ESCO skill the vacancies
//!   listing it, the sum of their positions, how many mark it essential, and `share` =
//!   vacancies / matching open vacancies. Ranked by vacancies descending, then URI
//!   ascending; the first `top`. The label is the one publishers give most often for the
//!   URI, counting one vote per vacancy (any status) and shortage line the node holds that
//!   lists the skill with a non-empty label; ties go to the smallest string; without votes,
//!   the reference-data label.
//! - **OccupationDemand**: per ISCO group at `level` (the first `level` digits of the unit
//!   group) with at least one matching open vacancy: vacancies, positions, how many of them
//!   are open to international candidates, and shortage causes. Causes are the union, over
//!   the *relevant countries*, of the causes of every line of that country's latest list
//!   year (all lists of that year together) whose unit group lies in the group. The
//!   relevant countries are the filter's countries when it names some, else the countries
//!   of the vacancies counted in the row. Rows by vacancies descending, then code.
//! - **ShortageOverview**: the lines of a country's latest list year (or the given year),
//!   each with its causes and the vacancies of its unit group open at the as-of date in the
//!   line's subdivision (children included) when it has one, else in the whole country.
//! - **SupplyGap**: per ISCO group at `level`: destination vacancies open at the as-of date
//!   and their positions; the destination's shortage causes (latest list year); the
//!   source's supply from its *latest period*: the period that ends last, and of periods
//!   ending the same day the one that starts last (`2025-12` over `2025-Q4` over `2025`).
//!   Cells of that period whose ISCO code has at least `level` digits are summed into the
//!   group their first `level` digits name (cells are summed as published, across
//!   subdivisions and ISCED levels, so a source should publish one non-overlapping
//!   breakdown per period); coarser cells are ignored. If any contributing cell is
//!   suppressed, both figures of the group are [`Figure::Suppressed`], never a number.
//!   A group has *supply* when its registered job seekers are suppressed or above 0, and is
//!   *in shortage* when a line of the destination's latest year lists a unit group in it.
//!   Rows: every group with open demand, a shortage or supply; first the matched ones (in
//!   shortage with supply), then the rest; in each block by open positions descending,
//!   then code. A group without any contributing cell has no figures (`None`).
//! - **DemandTrend**: vacancies of any status matching the filter (and listing the skill,
//!   when one is given), counted by the month of `posted_on` and country. The filter's
//!   `as_of` plays no part. Rows by month, then country.
//!
//! # Cost of the queries
//!
//! Vacancies live in compact rows grouped by (ISCO unit group, OPEN or not), so the rows of
//! an ISCO prefix are a few contiguous vectors. Aggregates describe the vacancies open at
//! the *roll day* (see [`Analytics::roll_day`], normally today). With N vacancies, G
//! aggregation groups (place × origin × international flag; 92 in the benchmark) and S
//! skills (about 14 000):
//!
//! | query and filter | path | cost |
//! |---|---|---|
//! | SkillsDemand, as-of = roll day, no window, no ISCO prefix | aggregates | O(country groups × S), with subdivisions O(their place groups' skills) |
//! | SkillsDemand with an ISCO prefix | scan of the prefix's OPEN rows | O(candidates) |
//! | OccupationDemand, as-of = roll day, no window | aggregates | O(G × unit groups of the prefix) |
//! | ShortageOverview / SupplyGap, as-of = roll day | aggregates | O(lines × G of the country) / O(G × 436 + supply cells) |
//! | DemandTrend, no subdivision, window absent or on month bounds | month counts | O(country groups × months) (skill: the same, one probe each) |
//! | DemandTrend with a subdivision, a window cutting a month, or skill + prefix | scan of the prefix's rows, any status | O(candidates); O(N) without a prefix |
//! | any demand query at another as-of date or with a posting window | scan of the prefix's OPEN rows | O(candidates); O(OPEN rows) without a prefix |
//! | ShortageOverview / SupplyGap at another as-of date | scan | O(OPEN rows of the listed unit groups) / O(OPEN rows) |
//!
//! `apply` is O(skills of the record) plus a few hash probes: about 3 to 6 µs per vacancy.
//! Memory is about 220 bytes per vacancy at a million (see `examples/analytics_bench.rs`).

mod engine;
mod index;
mod intern;
mod isco;
pub mod query;
pub mod results;

#[cfg(test)]
mod tests;

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use passerelle_model::{Date, Record, RecordKey};

pub use query::{
    DemandFilter, DemandQuery, DemandTrendRequest, OccupationDemandRequest, ShortageOverviewQuery,
    ShortageOverviewRequest, SkillsDemandRequest, SupplyGapQuery, SupplyGapRequest, DEFAULT_LEVEL,
    DEFAULT_TOP, MAX_TOP,
};
pub use results::{
    Figure, GapRow, OccupationRow, ShortageOverview, ShortageRow, SkillRow, SkillsDemand, Stats,
    TrendRow,
};

/// The analytics index. `Send + Sync`: queries share a read lock, `apply` and `roll_day`
/// take the write lock.
#[derive(Debug)]
pub struct Analytics {
    state: RwLock<index::State>,
}

impl Default for Analytics {
    fn default() -> Self {
        Analytics::new()
    }
}

impl Analytics {
    /// An empty index whose roll day is today (UTC).
    pub fn new() -> Self {
        Analytics::with_day(Date::today())
    }

    /// An empty index whose roll day is `day`.
    pub fn with_day(day: Date) -> Self {
        Analytics {
            state: RwLock::new(index::State::new(day)),
        }
    }

    /// Applies one stored change: `record` is the new current version of `key`, `None` when
    /// the key was removed (purged). Changes must come in commit order; applying the same
    /// version twice is harmless. A record whose kind differs from the key's counts as a
    /// removal, and so does a vacancy the store could not hold (unknown unit group,
    /// unreadable dates). The origin filter matches the key's origin.
    pub fn apply(&self, key: &RecordKey, record: Option<&Record>) {
        self.write().apply(key, record);
    }

    /// Applies many changes under one lock, e.g. every stored record at start-up.
    pub fn apply_all<'a>(
        &self,
        changes: impl IntoIterator<Item = (&'a RecordKey, Option<&'a Record>)>,
    ) {
        let mut state = self.write();
        for (key, record) in changes {
            state.apply(key, record);
        }
    }

    /// Moves the roll day, the date whose "open" aggregates are kept, to `day`. A no-op when
    /// it is already `day`, else a rebuild of those aggregates, O(OPEN-status vacancies),
    /// under the write lock (0.2 s at a million vacancies in the benchmark). The node calls
    /// it with `Date::today()` when the UTC date changes, or before queries (it is cheap when
    /// nothing changes); queries at other dates stay correct, only slower.
    pub fn roll_day(&self, day: Date) {
        if self.read().day != day.0 {
            self.write().roll_day(day);
        }
    }

    /// The current roll day.
    pub fn day(&self) -> Date {
        Date(self.read().day)
    }

    /// Skills of open vacancies matching `q`, the `top` first.
    pub fn skills_demand(&self, q: &DemandQuery, top: usize) -> SkillsDemand {
        self.read().skills_demand(q, top)
    }

    /// Open vacancies matching `q` per ISCO group at `level` (1..=4; clamped).
    pub fn occupation_demand(&self, q: &DemandQuery, level: u8) -> Vec<OccupationRow> {
        self.read().occupation_demand(q, level)
    }

    /// A country's shortage lines of `year` (`None`: the latest) with vacancies open at `as_of`.
    pub fn shortage_overview(
        &self,
        country: &str,
        year: Option<u32>,
        as_of: Date,
    ) -> ShortageOverview {
        self.read().shortage_overview(country, year, as_of)
    }

    /// Destination demand beside source supply per ISCO group at `level` (1..=4; clamped).
    pub fn supply_gap(
        &self,
        destination: &str,
        source: &str,
        level: u8,
        as_of: Date,
    ) -> Vec<GapRow> {
        self.read().supply_gap(destination, source, level, as_of)
    }

    /// Vacancies posted per month and country, of any status, matching `q` (whose `as_of`
    /// is ignored) and listing `skill` when given.
    pub fn demand_trend(&self, q: &DemandQuery, skill: Option<&str>) -> Vec<TrendRow> {
        self.read().demand_trend(q, skill)
    }

    /// Counts and an estimate of the memory the index uses.
    pub fn stats(&self) -> Stats {
        self.read().stats()
    }

    // A panic while holding the lock can only come from a bug in this crate; the data is
    // still usable for reads, so do not turn one panic into a panic on every later query.
    fn read(&self) -> RwLockReadGuard<'_, index::State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, index::State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod send_sync {
    fn assert<T: Send + Sync>() {}

    #[test]
    fn analytics_is_send_and_sync() {
        assert::<super::Analytics>();
    }
}
