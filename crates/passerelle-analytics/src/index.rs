//! The in-memory index behind the queries, and how `apply` keeps it current.
//!
//! Vacancies are compact [`Row`]s (28 bytes) stored in *shards*, one per (ISCO unit group,
//! status is OPEN or not), so that "postings of an ISCO prefix" are a few contiguous vectors
//! read sequentially. Skills live next to the rows in a per-shard arena of 8-byte
//! [`SkillRef`]s. A key finds its row through a 128-bit fingerprint and a stable key id.
//!
//! Aggregates are kept per *group*: a place group is (country + subdivision, origin,
//! open_to_international), a country group is (country, origin, open_to_international).
//! For vacancies open at the *roll day* ([`State::day`]) every group holds counts per unit
//! group, and skill counts (dense per country group, sparse per place group with a
//! subdivision). For every vacancy, whatever its status, country groups hold posting-month
//! counts per unit group, and each (country group, posting month) a table of counts per
//! skill. Label votes count every vacancy and shortage line. Shortage lines and supply cells
//! are few and kept whole, indexed by country and year or period.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};
use std::mem::size_of;

use passerelle_model::{
    Date, Kind, Record, RecordKey, Shortage, ShortageCause, Skill, SupplyCell, Vacancy,
    VacancyStatus,
};
use passerelle_refdata as refdata;

use crate::intern::{esco_skill_uuid, FxMap, Interner};
use crate::isco;

/// `closes` of a vacancy without `closes_on`: open for ever.
pub(crate) const NO_CLOSE: i32 = i32::MAX;
/// `label` of a skill given without a label: it casts no vote.
pub(crate) const NO_LABEL: u32 = u32::MAX;
const ESSENTIAL: u32 = 1 << 31;

/// One vacancy, as the queries need it. Unit group and status are those of its shard.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Row {
    pub posted: i32,
    pub closes: i32,
    pub positions: u32,
    key: u32,
    skills_at: u32,
    pub pgroup: u32,
    skills_len: u8,
}

impl Row {
    /// Open at `day` when its status is OPEN (which the shard tells).
    pub(crate) fn open_at(&self, day: i32) -> bool {
        self.posted <= day && day <= self.closes
    }
}

/// A skill of a vacancy or shortage line: skill id (top bit: essential) and label id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SkillRef {
    skill: u32,
    label: u32,
}

impl SkillRef {
    pub(crate) fn id(self) -> u32 {
        self.skill & !ESSENTIAL
    }

    pub(crate) fn essential(self) -> bool {
        self.skill & ESSENTIAL != 0
    }
}

/// The rows of one (unit group, open status) pair and their skills.
#[derive(Debug, Default)]
pub(crate) struct Shard {
    pub rows: Vec<Row>,
    skills: Vec<SkillRef>,
    garbage: usize,
}

impl Shard {
    pub(crate) fn skills_of(&self, r: &Row) -> &[SkillRef] {
        &self.skills[r.skills_at as usize..][..r.skills_len as usize]
    }

    fn push(&mut self, mut row: Row, skills: &[SkillRef]) -> u32 {
        row.skills_at = u32::try_from(self.skills.len()).expect("shard arena below 2^32");
        self.skills.extend_from_slice(skills);
        self.rows.push(row);
        (self.rows.len() - 1) as u32
    }

    /// Removes row `idx` by moving the last row into its place; returns that row's key.
    fn remove(&mut self, idx: usize) -> Option<u32> {
        let r = self.rows.swap_remove(idx);
        self.garbage += r.skills_len as usize;
        // amortised: the arena is rewritten once at least half of it is dead
        if self.garbage > 64 && self.garbage * 2 > self.skills.len() {
            let mut skills = Vec::with_capacity(self.skills.len() - self.garbage);
            for r in &mut self.rows {
                let at = skills.len() as u32;
                skills.extend_from_slice(
                    &self.skills[r.skills_at as usize..][..r.skills_len as usize],
                );
                r.skills_at = at;
            }
            self.skills = skills;
            self.garbage = 0;
        }
        self.rows.get(idx).map(|m| m.key)
    }

    fn bytes(&self) -> usize {
        self.rows.capacity() * size_of::<Row>() + self.skills.capacity() * size_of::<SkillRef>()
    }
}

#[derive(Debug, Clone, Copy)]
struct Loc {
    shard: u32,
    idx: u32,
}

const FREE: Loc = Loc {
    shard: u32::MAX,
    idx: u32::MAX,
};

/// A vacancy key as two SipHash values under random per-process keys. Keeping 16 bytes instead
/// of the key's strings halves the key table; two distinct keys share a fingerprint with
/// probability about n²/2¹²⁹ (10⁻²⁷ at a million keys), and the random keys make it
/// impossible to aim for a collision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint(u64, u64);

impl Hash for Fingerprint {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(self.0);
    }
}

/// The fingerprint is already a uniform hash: use it as is.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Open vacancies and positions.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Occ {
    pub vac: u32,
    pub pos: u64,
}

impl Occ {
    fn add(&mut self, positions: u32, sign: i32) {
        self.vac = self.vac.wrapping_add_signed(sign);
        self.pos = add_signed(self.pos, u64::from(positions), sign);
    }
}

/// Open vacancies listing a skill, their positions, and how many mark it essential.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SkillAgg {
    pub vac: u32,
    pub ess: u32,
    pub pos: u64,
}

impl SkillAgg {
    fn add(&mut self, positions: u32, essential: bool, sign: i32) {
        self.vac = self.vac.wrapping_add_signed(sign);
        if essential {
            self.ess = self.ess.wrapping_add_signed(sign);
        }
        self.pos = add_signed(self.pos, u64::from(positions), sign);
    }

    pub(crate) fn merge(&mut self, o: &SkillAgg) {
        self.vac += o.vac;
        self.ess += o.ess;
        self.pos += o.pos;
    }
}

fn add_signed(x: u64, v: u64, sign: i32) -> u64 {
    if sign > 0 {
        x + v
    } else {
        debug_assert!(x >= v, "aggregate would go negative");
        x.wrapping_sub(v)
    }
}

/// A country and optional subdivision ("" when none).
#[derive(Debug)]
pub(crate) struct Place {
    pub country: u32,
    pub sub: Box<str>,
}

/// Vacancies of one place, origin and `open_to_international` value.
#[derive(Debug)]
pub(crate) struct PlaceGroup {
    pub place: u32,
    pub country: u32,
    pub origin: u32,
    pub intl: bool,
    pub cgroup: u32,
    /// Skill counts are kept only for places with a subdivision: a subdivision filter never
    /// matches the others, and without one the country groups answer.
    pub has_sub: bool,
    /// Open at the roll day, per unit group.
    pub occ: Box<[Occ]>,
    pub skills: FxMap<u32, SkillAgg>,
}

/// Vacancies of one country, origin and `open_to_international` value.
#[derive(Debug)]
pub(crate) struct CountryGroup {
    pub country: u32,
    pub origin: u32,
    pub intl: bool,
    /// Open at the roll day, per unit group.
    pub occ: Box<[Occ]>,
    /// Open at the roll day, dense by skill id.
    pub skills: Vec<SkillAgg>,
    /// Every status: per posting month, the vacancies and those of each unit group.
    pub trend: BTreeMap<i32, MonthCounts>,
}

/// Vacancies posted in one month: all of them, and per unit group.
#[derive(Debug)]
pub(crate) struct MonthCounts {
    pub total: u32,
    pub units: Box<[u32]>,
}

/// The label votes of one skill. Most skills only ever get one label, kept inline.
#[derive(Debug, Default, Clone)]
pub(crate) struct Votes {
    /// (label, count); a count of 0 means no vote at all (`rest` is then empty too).
    first: (u32, u32),
    rest: Vec<(u32, u32)>,
}

impl Votes {
    fn add(&mut self, label: u32, sign: i32) {
        if self.first.1 > 0 && self.first.0 == label {
            self.first.1 = self.first.1.wrapping_add_signed(sign);
            if self.first.1 == 0 {
                self.first = self.rest.pop().unwrap_or_default();
            }
        } else if let Some(i) = self.rest.iter().position(|(l, _)| *l == label) {
            self.rest[i].1 = self.rest[i].1.wrapping_add_signed(sign);
            if self.rest[i].1 == 0 {
                self.rest.swap_remove(i);
            }
        } else {
            debug_assert!(sign > 0, "vote withdrawn that was never cast");
            if self.first.1 == 0 {
                self.first = (label, 1);
            } else {
                self.rest.push((label, 1));
            }
        }
    }

    /// (label, count) pairs, counts above 0.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        std::iter::once(self.first)
            .filter(|v| v.1 > 0)
            .chain(self.rest.iter().copied())
    }
}

/// One shortage-list line, as the queries need it.
#[derive(Debug)]
pub(crate) struct Line {
    pub country: u32,
    pub year: u32,
    pub unit: u16,
    pub list: String,
    pub subdivision: String,
    pub national_code: String,
    /// Bits of [`cause_bit`].
    pub causes: u8,
    skills: Vec<SkillRef>,
}

/// How many lines of a year list a unit group, and how many name each cause.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct UnitLines {
    pub lines: u32,
    pub causes: [u32; 3],
}

#[derive(Debug, Default)]
pub(crate) struct YearLines {
    pub keys: BTreeSet<RecordKey>,
    pub units: HashMap<u16, UnitLines>,
}

/// One supply cell, as the queries need it.
#[derive(Debug)]
pub(crate) struct Cell {
    pub country: u32,
    pub period: Period,
    pub code: String,
    pub registered: u64,
    pub willing: u64,
    pub suppressed: bool,
}

/// A supply period ordered by its last day, then by its first day: the latest period is the
/// one that ends last, and of periods ending the same day the shortest (2025-12 comes after
/// 2025-Q4, which comes after 2025).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Period {
    pub end: i32,
    pub start: i32,
}

impl Period {
    /// `YYYY`, `YYYY-Qn` or `YYYY-MM`.
    pub(crate) fn parse(s: &str) -> Option<Period> {
        let year: i32 = s.get(..4)?.parse().ok()?;
        if !s.as_bytes()[..4].iter().all(u8::is_ascii_digit) {
            return None;
        }
        let (first, months) = match s.len() {
            4 => (1, 12),
            7 if s.as_bytes()[4] == b'-' && s.as_bytes()[5] == b'Q' => {
                let q: u32 = s[6..].parse().ok().filter(|q| (1..=4).contains(q))?;
                (3 * q - 2, 3)
            }
            7 if s.as_bytes()[4] == b'-' && s.as_bytes()[5..].iter().all(u8::is_ascii_digit) => {
                let m: u32 = s[5..].parse().ok().filter(|m| (1..=12).contains(m))?;
                (m, 1)
            }
            _ => return None,
        };
        let start = Date::from_ymd(year, first, 1)?.0;
        let next = first + months;
        let after = if next > 12 {
            Date::from_ymd(year + 1, next - 12, 1)?
        } else {
            Date::from_ymd(year, next, 1)?
        };
        Some(Period {
            end: after.0 - 1,
            start,
        })
    }
}

#[derive(Debug)]
pub(crate) struct PeriodCells {
    pub text: String,
    pub keys: BTreeSet<RecordKey>,
}

pub(crate) fn cause_bit(c: ShortageCause) -> u8 {
    match c {
        ShortageCause::Quantitative => 1,
        ShortageCause::Qualitative => 2,
        ShortageCause::WorkingConditions => 4,
    }
}

/// The causes of a mask, in enum order.
pub(crate) fn causes_of(mask: u8) -> Vec<ShortageCause> {
    [
        ShortageCause::Quantitative,
        ShortageCause::Qualitative,
        ShortageCause::WorkingConditions,
    ]
    .into_iter()
    .filter(|c| mask & cause_bit(*c) != 0)
    .collect()
}

/// Months since year 0: `year * 12 + month - 1`.
pub(crate) fn month_index(day: i32) -> i32 {
    let (y, m, _) = Date(day).ymd();
    y * 12 + m as i32 - 1
}

pub(crate) fn month_text(month: i32) -> String {
    format!(
        "{:04}-{:02}",
        month.div_euclid(12),
        month.rem_euclid(12) + 1
    )
}

/// Vacancy keys and rows.
#[derive(Debug, Default)]
pub(crate) struct Store {
    seeds: (RandomState, RandomState),
    keys: HashMap<Fingerprint, u32, BuildHasherDefault<PassThrough>>,
    locs: Vec<Loc>,
    free: Vec<u32>,
    pub shards: Vec<Shard>,
}

impl Store {
    fn fingerprint(&self, key: &RecordKey) -> Fingerprint {
        let one = |seed: &RandomState| {
            let mut h = seed.build_hasher();
            key.origin.as_str().hash(&mut h);
            key.id.hash(&mut h);
            h.finish()
        };
        Fingerprint(one(&self.seeds.0), one(&self.seeds.1))
    }

    fn new_key(&mut self, fp: Fingerprint) -> u32 {
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.locs.push(FREE);
                u32::try_from(self.locs.len() - 1).expect("fewer than 2^32 vacancies")
            }
        };
        self.keys.insert(fp, id);
        id
    }
}

/// Interned strings and places.
#[derive(Debug)]
pub(crate) struct Dict {
    pub countries: Interner,
    pub origins: Interner,
    /// The first `ref_skills` ids are the reference-data skills in URI order, so comparing
    /// two of them by id compares their URIs.
    pub skills: Interner,
    pub ref_skills: usize,
    /// Canonical skill URIs by UUID, a faster way to the same ids as `skills`.
    skill_uuids: FxMap<u128, u32>,
    pub labels: Interner,
    /// Per reference skill, the label id of its reference-data label once seen.
    ref_labels: Vec<u32>,
    pub places: Vec<Place>,
    place_ids: FxMap<u32, HashMap<Box<str>, u32>>,
}

impl Dict {
    fn place(&mut self, country: u32, sub: &str) -> u32 {
        let ids = self.place_ids.entry(country).or_default();
        if let Some(&p) = ids.get(sub) {
            return p;
        }
        let p = self.places.len() as u32;
        ids.insert(sub.into(), p);
        self.places.push(Place {
            country,
            sub: sub.into(),
        });
        p
    }

    /// The id of a skill URI, if it was ever seen (or is in the reference data).
    pub(crate) fn skill_id(&self, uri: &str) -> Option<u32> {
        match esco_skill_uuid(uri) {
            Some(uuid) => self.skill_uuids.get(&uuid).copied(),
            None => self.skills.get(uri),
        }
    }

    fn intern_skill(&mut self, uri: &str) -> u32 {
        match esco_skill_uuid(uri) {
            Some(uuid) => match self.skill_uuids.get(&uuid) {
                Some(&id) => id,
                None => {
                    let id = self.skills.intern(uri);
                    self.skill_uuids.insert(uuid, id);
                    id
                }
            },
            None => self.skills.intern(uri),
        }
    }

    fn intern_label(&mut self, skill: u32, label: &str) -> u32 {
        if label.is_empty() {
            return NO_LABEL;
        }
        // most publishers copy the reference label: compare instead of hashing
        let s = skill as usize;
        if s < self.ref_skills && refdata::esco_skills()[s].label == label {
            if self.ref_labels[s] == NO_LABEL {
                self.ref_labels[s] = self.labels.intern(label);
            }
            return self.ref_labels[s];
        }
        self.labels.intern(label)
    }

    /// Skill references, first occurrence of each URI only, at most 255.
    fn skill_refs(&mut self, skills: &[Skill]) -> Vec<SkillRef> {
        let mut out: Vec<SkillRef> = Vec::with_capacity(skills.len());
        for s in skills {
            let id = self.intern_skill(&s.esco_uri);
            if out.len() == usize::from(u8::MAX) || out.iter().any(|r| r.id() == id) {
                continue;
            }
            let label = self.intern_label(id, &s.label);
            let skill = if s.essential { id | ESSENTIAL } else { id };
            out.push(SkillRef { skill, label });
        }
        out
    }
}

/// The groups and their aggregates, the label votes and the skill trends.
#[derive(Debug, Default)]
pub(crate) struct Aggs {
    pub pgroups: Vec<PlaceGroup>,
    pgroup_ids: FxMap<(u32, u32, bool), u32>,
    pub cgroups: Vec<CountryGroup>,
    cgroup_ids: FxMap<(u32, u32, bool), u32>,
    pub pgroups_of: FxMap<u32, Vec<u32>>,
    pub cgroups_of: FxMap<u32, Vec<u32>>,
    /// Per skill id: how many records give each label.
    pub votes: Vec<Votes>,
    /// Vacancies of every status per (country group, posting month), then per skill id.
    /// Keyed this way, one vacancy's skills land in one small table.
    pub skill_trend: FxMap<(u32, i32), FxMap<u32, u32>>,
    pub rows: u64,
    pub open_rows: u64,
}

impl Aggs {
    fn ensure_skills(&mut self, n: usize) {
        if self.votes.len() < n {
            self.votes.resize_with(n, Votes::default);
        }
    }

    fn pgroup(&mut self, dict: &Dict, place: u32, origin: u32, intl: bool) -> u32 {
        if let Some(&g) = self.pgroup_ids.get(&(place, origin, intl)) {
            return g;
        }
        let p = &dict.places[place as usize];
        let cgroup = self.cgroup(dict, p.country, origin, intl);
        let g = self.pgroups.len() as u32;
        self.pgroups.push(PlaceGroup {
            place,
            country: p.country,
            origin,
            intl,
            cgroup,
            has_sub: !p.sub.is_empty(),
            occ: vec![Occ::default(); isco::count()].into(),
            skills: FxMap::default(),
        });
        self.pgroup_ids.insert((place, origin, intl), g);
        self.pgroups_of.entry(p.country).or_default().push(g);
        g
    }

    fn cgroup(&mut self, dict: &Dict, country: u32, origin: u32, intl: bool) -> u32 {
        if let Some(&g) = self.cgroup_ids.get(&(country, origin, intl)) {
            return g;
        }
        let g = self.cgroups.len() as u32;
        self.cgroups.push(CountryGroup {
            country,
            origin,
            intl,
            occ: vec![Occ::default(); isco::count()].into(),
            skills: vec![SkillAgg::default(); dict.skills.len()],
            trend: BTreeMap::new(),
        });
        self.cgroup_ids.insert((country, origin, intl), g);
        self.cgroups_of.entry(country).or_default().push(g);
        g
    }

    fn vote(&mut self, skills: &[SkillRef], sign: i32) {
        for s in skills.iter().filter(|s| s.label != NO_LABEL) {
            self.votes[s.id() as usize].add(s.label, sign);
        }
    }

    /// Adds (`sign` 1) or removes (-1) everything a vacancy row contributes.
    fn contribute(&mut self, shard: usize, row: &Row, skills: &[SkillRef], day: i32, sign: i32) {
        let unit = (shard / 2) as u16;
        self.rows = self.rows.wrapping_add_signed(i64::from(sign));
        self.vote(skills, sign);
        let cg = self.pgroups[row.pgroup as usize].cgroup;
        let month = month_index(row.posted);
        let c = &mut self.cgroups[cg as usize];
        let m = c.trend.entry(month).or_insert_with(|| MonthCounts {
            total: 0,
            units: vec![0; isco::count()].into(),
        });
        m.total = m.total.wrapping_add_signed(sign);
        m.units[unit as usize] = m.units[unit as usize].wrapping_add_signed(sign);
        if m.total == 0 {
            c.trend.remove(&month);
        }
        let cells = self.skill_trend.entry((cg, month)).or_default();
        for s in skills {
            if sign > 0 {
                *cells.entry(s.id()).or_insert(0) += 1;
            } else if let Some(n) = cells.get_mut(&s.id()) {
                *n -= 1;
                if *n == 0 {
                    cells.remove(&s.id());
                }
            }
        }
        if cells.is_empty() {
            self.skill_trend.remove(&(cg, month));
        }
        if shard % 2 == 1 && row.open_at(day) {
            self.add_open(unit, row, skills, sign);
        }
    }

    /// The part of [`Aggs::contribute`] that depends on the roll day.
    fn add_open(&mut self, unit: u16, row: &Row, skills: &[SkillRef], sign: i32) {
        self.open_rows = self.open_rows.wrapping_add_signed(i64::from(sign));
        let pg = &mut self.pgroups[row.pgroup as usize];
        pg.occ[unit as usize].add(row.positions, sign);
        if pg.has_sub {
            for s in skills {
                let e = pg.skills.entry(s.id()).or_default();
                e.add(row.positions, s.essential(), sign);
                if e.vac == 0 {
                    pg.skills.remove(&s.id());
                }
            }
        }
        let cg = &mut self.cgroups[pg.cgroup as usize];
        cg.occ[unit as usize].add(row.positions, sign);
        for s in skills {
            let id = s.id() as usize;
            if cg.skills.len() <= id {
                cg.skills.resize(id + 1, SkillAgg::default());
            }
            cg.skills[id].add(row.positions, s.essential(), sign);
        }
    }
}

/// Shortage lines and supply cells.
#[derive(Debug, Default)]
pub(crate) struct Lists {
    pub lines: HashMap<RecordKey, Line>,
    /// Per country: the lines of each year.
    pub years: HashMap<u32, BTreeMap<u32, YearLines>>,
    pub cells: HashMap<RecordKey, Cell>,
    /// Per country: the cells of each period.
    pub periods: HashMap<u32, BTreeMap<Period, PeriodCells>>,
}

/// Everything the engine holds; `Analytics` wraps it in a lock.
#[derive(Debug)]
pub(crate) struct State {
    /// The roll day: the aggregates of "open" describe this date.
    pub day: i32,
    pub store: Store,
    pub dict: Dict,
    pub agg: Aggs,
    pub lists: Lists,
}

impl State {
    pub(crate) fn new(day: Date) -> Self {
        // ids 0.. are the reference skills in URI order (the table is sorted and unique)
        let skills = Interner::with(refdata::esco_skills().iter().map(|s| s.uri));
        let ref_skills = skills.len();
        let skill_uuids = refdata::esco_skills()
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((esco_skill_uuid(s.uri)?, i as u32)))
            .collect();
        let mut agg = Aggs::default();
        agg.ensure_skills(ref_skills);
        State {
            day: day.0,
            store: Store {
                shards: (0..2 * isco::count()).map(|_| Shard::default()).collect(),
                ..Store::default()
            },
            dict: Dict {
                countries: Interner::default(),
                origins: Interner::default(),
                skills,
                ref_skills,
                skill_uuids,
                labels: Interner::default(),
                ref_labels: vec![NO_LABEL; ref_skills],
                places: Vec::new(),
                place_ids: FxMap::default(),
            },
            agg,
            lists: Lists::default(),
        }
    }

    pub(crate) fn apply(&mut self, key: &RecordKey, record: Option<&Record>) {
        match (key.kind, record) {
            (Kind::Vacancy, Some(Record::Vacancy(v))) => self.put_vacancy(key, v),
            (Kind::Vacancy, _) => self.remove_vacancy(key),
            (Kind::Shortage, Some(Record::Shortage(s))) => self.put_shortage(key, s),
            (Kind::Shortage, _) => self.remove_shortage(key),
            (Kind::Supply, Some(Record::Supply(c))) => self.put_supply(key, c),
            (Kind::Supply, _) => self.remove_supply(key),
        }
    }

    /// Recomputes the "open at the roll day" aggregates for `day`: O(open-status rows).
    pub(crate) fn roll_day(&mut self, day: Date) {
        if day.0 == self.day {
            return;
        }
        self.day = day.0;
        let agg = &mut self.agg;
        for g in &mut agg.pgroups {
            g.occ.fill(Occ::default());
            g.skills = FxMap::default();
        }
        for g in &mut agg.cgroups {
            g.occ.fill(Occ::default());
            g.skills.fill(SkillAgg::default());
        }
        agg.open_rows = 0;
        for (s, shard) in self.store.shards.iter().enumerate().skip(1).step_by(2) {
            for row in shard.rows.iter().filter(|r| r.open_at(day.0)) {
                agg.add_open((s / 2) as u16, row, shard.skills_of(row), 1);
            }
        }
    }

    fn put_vacancy(&mut self, key: &RecordKey, v: &Vacancy) {
        let (Some(unit), Some(posted)) =
            (isco::index(&v.occupation.isco08), Date::parse(&v.posted_on))
        else {
            // the store never holds such a vacancy; leave it out rather than guess
            return self.remove_vacancy(key);
        };
        let closes = if v.closes_on.is_empty() {
            NO_CLOSE
        } else {
            match Date::parse(&v.closes_on) {
                Some(d) => d.0,
                None => return self.remove_vacancy(key),
            }
        };
        let country = self.dict.countries.intern(&v.location.country);
        let place = self.dict.place(country, &v.location.subdivision);
        let origin = self.dict.origins.intern(key.origin.as_str());
        let pgroup = self
            .agg
            .pgroup(&self.dict, place, origin, v.open_to_international);
        let skills = self.dict.skill_refs(&v.skills);
        self.agg.ensure_skills(self.dict.skills.len());
        let shard = unit as usize * 2 + usize::from(v.status == VacancyStatus::Open);
        let fp = self.store.fingerprint(key);
        let kid = match self.store.keys.get(&fp) {
            Some(&kid) => {
                self.unlink(kid);
                kid
            }
            None => self.store.new_key(fp),
        };
        let row = Row {
            posted: posted.0,
            closes,
            positions: v.positions,
            key: kid,
            skills_at: 0,
            pgroup,
            skills_len: skills.len() as u8,
        };
        self.agg.contribute(shard, &row, &skills, self.day, 1);
        let idx = self.store.shards[shard].push(row, &skills);
        self.store.locs[kid as usize] = Loc {
            shard: shard as u32,
            idx,
        };
    }

    fn remove_vacancy(&mut self, key: &RecordKey) {
        let fp = self.store.fingerprint(key);
        if let Some(kid) = self.store.keys.remove(&fp) {
            self.unlink(kid);
            self.store.free.push(kid);
        }
    }

    /// Takes the row of `kid` out of its shard and its contribution out of the aggregates.
    fn unlink(&mut self, kid: u32) {
        let loc = self.store.locs[kid as usize];
        let shard = &self.store.shards[loc.shard as usize];
        let row = shard.rows[loc.idx as usize];
        self.agg.contribute(
            loc.shard as usize,
            &row,
            shard.skills_of(&row),
            self.day,
            -1,
        );
        if let Some(moved) = self.store.shards[loc.shard as usize].remove(loc.idx as usize) {
            self.store.locs[moved as usize] = loc;
        }
        self.store.locs[kid as usize] = FREE;
    }

    fn put_shortage(&mut self, key: &RecordKey, s: &Shortage) {
        self.remove_shortage(key);
        let Some(unit) = isco::index(&s.occupation.isco08) else {
            return;
        };
        let country = self.dict.countries.intern(&s.country);
        let causes = s.causes.iter().fold(0, |m, c| m | cause_bit(*c));
        let skills = self.dict.skill_refs(&s.skills);
        self.agg.ensure_skills(self.dict.skills.len());
        self.agg.vote(&skills, 1);
        let year = self
            .lists
            .years
            .entry(country)
            .or_default()
            .entry(s.year)
            .or_default();
        year.keys.insert(key.clone());
        let u = year.units.entry(unit).or_default();
        u.lines += 1;
        for (i, n) in u.causes.iter_mut().enumerate() {
            if causes & (1 << i) != 0 {
                *n += 1;
            }
        }
        self.lists.lines.insert(
            key.clone(),
            Line {
                country,
                year: s.year,
                unit,
                list: s.list.clone(),
                subdivision: s.subdivision.clone(),
                national_code: s.national_code.clone(),
                causes,
                skills,
            },
        );
    }

    fn remove_shortage(&mut self, key: &RecordKey) {
        let Some(line) = self.lists.lines.remove(key) else {
            return;
        };
        self.agg.vote(&line.skills, -1);
        let Some(years) = self.lists.years.get_mut(&line.country) else {
            return;
        };
        if let Some(year) = years.get_mut(&line.year) {
            year.keys.remove(key);
            if let Some(u) = year.units.get_mut(&line.unit) {
                u.lines -= 1;
                for (i, n) in u.causes.iter_mut().enumerate() {
                    if line.causes & (1 << i) != 0 {
                        *n -= 1;
                    }
                }
                if u.lines == 0 {
                    year.units.remove(&line.unit);
                }
            }
            if year.keys.is_empty() {
                years.remove(&line.year);
            }
        }
        if years.is_empty() {
            self.lists.years.remove(&line.country);
        }
    }

    fn put_supply(&mut self, key: &RecordKey, c: &SupplyCell) {
        self.remove_supply(key);
        let Some(period) = Period::parse(&c.period) else {
            return;
        };
        if refdata::isco(&c.occupation.isco08).is_none() {
            return;
        }
        let country = self.dict.countries.intern(&c.country);
        self.lists
            .periods
            .entry(country)
            .or_default()
            .entry(period)
            .or_insert_with(|| PeriodCells {
                text: c.period.clone(),
                keys: BTreeSet::new(),
            })
            .keys
            .insert(key.clone());
        self.lists.cells.insert(
            key.clone(),
            Cell {
                country,
                period,
                code: c.occupation.isco08.clone(),
                registered: c.registered_jobseekers,
                willing: c.willing_to_migrate,
                suppressed: c.suppressed,
            },
        );
    }

    fn remove_supply(&mut self, key: &RecordKey) {
        let Some(cell) = self.lists.cells.remove(key) else {
            return;
        };
        if let Some(periods) = self.lists.periods.get_mut(&cell.country) {
            if let Some(p) = periods.get_mut(&cell.period) {
                p.keys.remove(key);
                if p.keys.is_empty() {
                    periods.remove(&cell.period);
                }
            }
            if periods.is_empty() {
                self.lists.periods.remove(&cell.country);
            }
        }
    }

    /// Estimated heap bytes: capacities times element sizes; trees and hash tables get a
    /// per-entry allowance for their nodes and control bytes.
    pub(crate) fn approx_bytes(&self) -> usize {
        const TREE: usize = 16; // B-tree node overhead per entry, roughly
        let store = &self.store;
        let mut n = store.shards.iter().map(Shard::bytes).sum::<usize>()
            + store.shards.capacity() * size_of::<Shard>()
            + store.keys.capacity() * (size_of::<(Fingerprint, u32)>() + 1)
            + store.locs.capacity() * size_of::<Loc>()
            + store.free.capacity() * 4;
        let dict = &self.dict;
        n += dict.countries.bytes()
            + dict.origins.bytes()
            + dict.skills.bytes()
            + dict.labels.bytes();
        n += dict.skill_uuids.capacity() * (size_of::<(u128, u32)>() + 1)
            + dict.ref_labels.capacity() * 4;
        n += dict.places.capacity() * size_of::<Place>()
            + dict
                .places
                .iter()
                .map(|p| 2 * p.sub.len() + 48)
                .sum::<usize>();
        let agg = &self.agg;
        for g in &agg.pgroups {
            n += size_of::<PlaceGroup>()
                + g.occ.len() * size_of::<Occ>()
                + g.skills.capacity() * (size_of::<(u32, SkillAgg)>() + 1);
        }
        for g in &agg.cgroups {
            n += size_of::<CountryGroup>()
                + g.occ.len() * size_of::<Occ>()
                + g.skills.capacity() * size_of::<SkillAgg>()
                + g.trend.len() * (size_of::<(i32, MonthCounts)>() + TREE + 4 * isco::count());
        }
        n += agg.votes.capacity() * size_of::<Votes>()
            + agg
                .votes
                .iter()
                .map(|v| v.rest.capacity() * 8)
                .sum::<usize>();
        n += agg.skill_trend.capacity() * (size_of::<((u32, i32), FxMap<u32, u32>)>() + 1)
            + agg
                .skill_trend
                .values()
                .map(|m| m.capacity() * (size_of::<(u32, u32)>() + 1))
                .sum::<usize>();
        n += (agg.pgroup_ids.capacity() + agg.cgroup_ids.capacity()) * 16;
        let lists = &self.lists;
        n += lists.lines.len() * (size_of::<(RecordKey, Line)>() + 128 + TREE + 64);
        n += lists.cells.len() * (size_of::<(RecordKey, Cell)>() + 64 + TREE + 64);
        n
    }
}
