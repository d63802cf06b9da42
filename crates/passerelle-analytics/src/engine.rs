//! The five queries over the index: each answers from the roll-day aggregates when the
//! filter allows it, else by scanning the smallest set of shards that can hold the answer.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use passerelle_model::Date;
use passerelle_refdata as refdata;

use crate::index::{causes_of, month_index, month_text, Occ, Row, SkillAgg, SkillRef, State};
use crate::intern::FxMap;
use crate::isco;
use crate::query::DemandQuery;
use crate::results::{
    Figure, GapRow, OccupationRow, ShortageOverview, ShortageRow, SkillRow, SkillsDemand, Stats,
    TrendRow,
};

/// Bit of a unit-group mask saying the group is on the list (bits 0..2 are the causes).
const LISTED: u8 = 8;

/// A [`DemandQuery`] resolved against the index.
struct Filter {
    /// Place groups the filter admits (place, origin and international flag).
    pgroup_ok: Vec<bool>,
    /// Country groups the filter admits; meaningless when `by_place`.
    cgroup_ok: Vec<bool>,
    /// A subdivision filter is given, so only place groups can answer.
    by_place: bool,
    units: Range<usize>,
    from: i32,
    to: i32,
    as_of: i32,
}

impl Filter {
    fn windowed(&self) -> bool {
        self.from != i32::MIN || self.to != i32::MAX
    }

    fn all_units(&self) -> bool {
        self.units == (0..isco::count())
    }

    fn admits(&self, r: &Row) -> bool {
        self.pgroup_ok[r.pgroup as usize] && self.from <= r.posted && r.posted <= self.to
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct UnitAcc {
    vac: u64,
    pos: u64,
    intl: u64,
}

impl State {
    fn compile(&self, q: &DemandQuery) -> Filter {
        let dict = &self.dict;
        let country_ok: Vec<bool> = (0..dict.countries.len() as u32)
            .map(|c| {
                q.countries.is_empty() || q.countries.iter().any(|x| x == dict.countries.name(c))
            })
            .collect();
        let origin_ok: Vec<bool> = (0..dict.origins.len() as u32)
            .map(|o| q.origins.is_empty() || q.origins.iter().any(|x| x == dict.origins.name(o)))
            .collect();
        let intl_ok = |intl: bool| q.open_to_international.is_none_or(|want| want == intl);
        let place_ok: Vec<bool> = dict
            .places
            .iter()
            .map(|p| {
                country_ok[p.country as usize]
                    && (q.subdivisions.is_empty()
                        || (!p.sub.is_empty()
                            && q.subdivisions
                                .iter()
                                .any(|s| refdata::subdivision_within(&p.sub, s))))
            })
            .collect();
        let agg = &self.agg;
        Filter {
            pgroup_ok: agg
                .pgroups
                .iter()
                .map(|g| {
                    place_ok[g.place as usize] && origin_ok[g.origin as usize] && intl_ok(g.intl)
                })
                .collect(),
            cgroup_ok: agg
                .cgroups
                .iter()
                .map(|g| {
                    country_ok[g.country as usize]
                        && origin_ok[g.origin as usize]
                        && intl_ok(g.intl)
                })
                .collect(),
            by_place: !q.subdivisions.is_empty(),
            units: isco::prefix_range(&q.isco_prefix),
            from: q.posted_from.map_or(i32::MIN, |d| d.0),
            to: q.posted_to.map_or(i32::MAX, |d| d.0),
            as_of: q.as_of.0,
        }
    }

    /// Visits the OPEN-status rows of the filter's unit groups that match it and are open at
    /// its as-of date: O(rows of those shards).
    fn scan_open(&self, f: &Filter, mut visit: impl FnMut(usize, &Row, &[SkillRef])) {
        for u in f.units.clone() {
            let shard = &self.store.shards[2 * u + 1];
            for r in &shard.rows {
                if f.admits(r) && r.open_at(f.as_of) {
                    visit(u, r, shard.skills_of(r));
                }
            }
        }
    }

    /// Roll-day aggregates answer when "open" means open at the roll day and no posting
    /// window applies.
    fn aggregates_answer(&self, f: &Filter) -> bool {
        f.as_of == self.day && !f.windowed()
    }

    pub(crate) fn skills_demand(&self, q: &DemandQuery, top: usize) -> SkillsDemand {
        let f = self.compile(q);
        let mut acc = vec![SkillAgg::default(); self.dict.skills.len()];
        let mut matching = 0u64;
        if self.aggregates_answer(&f) && f.all_units() {
            if f.by_place {
                // O(place groups × skills they hold)
                for (g, _) in self
                    .agg
                    .pgroups
                    .iter()
                    .zip(&f.pgroup_ok)
                    .filter(|(_, ok)| **ok)
                {
                    matching += g.occ.iter().map(|o| u64::from(o.vac)).sum::<u64>();
                    for (s, a) in &g.skills {
                        acc[*s as usize].merge(a);
                    }
                }
            } else {
                // O(country groups × skills)
                for (g, _) in self
                    .agg
                    .cgroups
                    .iter()
                    .zip(&f.cgroup_ok)
                    .filter(|(_, ok)| **ok)
                {
                    matching += g.occ.iter().map(|o| u64::from(o.vac)).sum::<u64>();
                    for (a, b) in acc.iter_mut().zip(&g.skills) {
                        a.merge(b);
                    }
                }
            }
        } else {
            self.scan_open(&f, |_, r, skills| {
                matching += 1;
                for s in skills {
                    let a = &mut acc[s.id() as usize];
                    a.vac += 1;
                    a.pos += u64::from(r.positions);
                    a.ess += u32::from(s.essential());
                }
            });
        }
        let mut ids: Vec<u32> = (0..acc.len() as u32)
            .filter(|&s| acc[s as usize].vac > 0)
            .collect();
        let cmp = |a: &u32, b: &u32| {
            acc[*b as usize]
                .vac
                .cmp(&acc[*a as usize].vac)
                .then_with(|| self.cmp_skill_uri(*a, *b))
        };
        if top == 0 {
            ids.clear();
        } else if ids.len() > top {
            ids.select_nth_unstable_by(top - 1, cmp);
            ids.truncate(top);
        }
        ids.sort_unstable_by(cmp);
        let rows = ids
            .into_iter()
            .map(|s| {
                let a = acc[s as usize];
                SkillRow {
                    esco_uri: self.dict.skills.name(s).to_owned(),
                    label: self.skill_label(s),
                    vacancies: u64::from(a.vac),
                    positions: a.pos,
                    essential: u64::from(a.ess),
                    share: f64::from(a.vac) / matching as f64,
                }
            })
            .collect();
        SkillsDemand {
            matching_vacancies: matching,
            rows,
        }
    }

    fn cmp_skill_uri(&self, a: u32, b: u32) -> std::cmp::Ordering {
        let refs = self.dict.ref_skills as u32;
        if a < refs && b < refs {
            a.cmp(&b)
        } else {
            self.dict.skills.name(a).cmp(self.dict.skills.name(b))
        }
    }

    /// The label given most often (ties: the smallest), else the reference-data label.
    fn skill_label(&self, s: u32) -> String {
        let labels = &self.dict.labels;
        let best = self.agg.votes[s as usize].iter().max_by(|a, b| {
            a.1.cmp(&b.1)
                .then_with(|| labels.name(b.0).cmp(labels.name(a.0)))
        });
        match best {
            Some((l, _)) => labels.name(l).to_owned(),
            None => refdata::esco_skill(self.dict.skills.name(s))
                .map(|r| r.label.to_owned())
                .unwrap_or_default(),
        }
    }

    /// Per unit group of the latest list year of `country`: [`LISTED`] and cause bits.
    fn latest_units(&self, country: u32) -> Option<Vec<u8>> {
        let (_, year) = self.lists.years.get(&country)?.last_key_value()?;
        let mut masks = vec![0u8; isco::count()];
        for (u, l) in &year.units {
            let mut m = if l.lines > 0 { LISTED } else { 0 };
            for (i, n) in l.causes.iter().enumerate() {
                if *n > 0 {
                    m |= 1 << i;
                }
            }
            masks[*u as usize] = m;
        }
        Some(masks)
    }

    pub(crate) fn occupation_demand(&self, q: &DemandQuery, level: u8) -> Vec<OccupationRow> {
        let f = self.compile(q);
        let level = usize::from(level.clamp(1, 4));
        let n = isco::count();
        let words = self.dict.countries.len().div_ceil(64).max(1);
        let mut acc = vec![UnitAcc::default(); n];
        // which countries' vacancies each unit group counted
        let mut seen = vec![0u64; n * words];
        let mark = |seen: &mut [u64], u: usize, c: u32| {
            seen[u * words + c as usize / 64] |= 1 << (c % 64);
        };
        if self.aggregates_answer(&f) {
            // O(groups × unit groups of the prefix)
            let groups: Vec<(u32, bool, &[Occ])> = if f.by_place {
                self.agg
                    .pgroups
                    .iter()
                    .zip(&f.pgroup_ok)
                    .filter(|(_, ok)| **ok)
                    .map(|(g, _)| (g.country, g.intl, &g.occ[..]))
                    .collect()
            } else {
                self.agg
                    .cgroups
                    .iter()
                    .zip(&f.cgroup_ok)
                    .filter(|(_, ok)| **ok)
                    .map(|(g, _)| (g.country, g.intl, &g.occ[..]))
                    .collect()
            };
            for (country, intl, occ) in groups {
                for u in f.units.clone() {
                    let o = occ[u];
                    if o.vac > 0 {
                        let a = &mut acc[u];
                        a.vac += u64::from(o.vac);
                        a.pos += o.pos;
                        if intl {
                            a.intl += u64::from(o.vac);
                        }
                        mark(&mut seen, u, country);
                    }
                }
            }
        } else {
            self.scan_open(&f, |u, r, _| {
                let g = &self.agg.pgroups[r.pgroup as usize];
                let a = &mut acc[u];
                a.vac += 1;
                a.pos += u64::from(r.positions);
                a.intl += u64::from(g.intl);
                mark(&mut seen, u, g.country);
            });
        }
        // causes: the filter's countries when given, else the countries of the counted vacancies
        let filter_countries: Option<Vec<u32>> = (!q.countries.is_empty()).then(|| {
            q.countries
                .iter()
                .filter_map(|c| self.dict.countries.get(c))
                .collect()
        });
        let mut latest: HashMap<u32, Option<Vec<u8>>> = HashMap::new();
        let mut rows = Vec::new();
        let mut u = f.units.start;
        while u < f.units.end {
            let code = &isco::code(u)[..level];
            let group = isco::prefix_range(code);
            let span = u..group.end.min(f.units.end);
            u = span.end;
            let mut total = UnitAcc::default();
            let mut countries = vec![0u64; words];
            for v in span {
                total.vac += acc[v].vac;
                total.pos += acc[v].pos;
                total.intl += acc[v].intl;
                for (w, s) in countries.iter_mut().zip(&seen[v * words..][..words]) {
                    *w |= s;
                }
            }
            if total.vac == 0 {
                continue;
            }
            let relevant: Vec<u32> = match &filter_countries {
                Some(list) => list.clone(),
                None => (0..(words * 64) as u32)
                    .filter(|c| countries[*c as usize / 64] & (1 << (c % 64)) != 0)
                    .collect(),
            };
            let mut mask = 0u8;
            for c in relevant {
                if let Some(units) = latest.entry(c).or_insert_with(|| self.latest_units(c)) {
                    mask |= group.clone().fold(0, |m, v| m | units[v]);
                }
            }
            rows.push(OccupationRow {
                isco08: code.to_owned(),
                label: isco::label(code),
                vacancies: total.vac,
                positions: total.pos,
                international: total.intl,
                shortage_causes: causes_of(mask & !LISTED),
            });
        }
        rows.sort_by(|a, b| {
            b.vacancies
                .cmp(&a.vacancies)
                .then_with(|| a.isco08.cmp(&b.isco08))
        });
        rows
    }

    pub(crate) fn shortage_overview(
        &self,
        country: &str,
        year: Option<u32>,
        as_of: Date,
    ) -> ShortageOverview {
        let none = ShortageOverview {
            year: year.unwrap_or(0),
            rows: Vec::new(),
        };
        let Some(c) = self.dict.countries.get(country) else {
            return none;
        };
        let Some(years) = self.lists.years.get(&c) else {
            return none;
        };
        let found = match year {
            Some(y) => years.get(&y).map(|l| (y, l)),
            None => years.last_key_value().map(|(y, l)| (*y, l)),
        };
        let Some((year, list)) = found else {
            return none;
        };
        let mut lines: Vec<_> = list
            .keys
            .iter()
            .filter_map(|k| self.lists.lines.get(k).map(|l| (k, l)))
            .collect();
        lines.sort_by(|(ka, a), (kb, b)| {
            (a.unit, &a.list, &a.subdivision, &a.national_code, ka).cmp(&(
                b.unit,
                &b.list,
                &b.subdivision,
                &b.national_code,
                kb,
            ))
        });
        // which places lie in each line's subdivision (all of the country's when it has none)
        let mut within: HashMap<&str, Vec<bool>> = HashMap::new();
        for (_, l) in &lines {
            within.entry(l.subdivision.as_str()).or_insert_with(|| {
                self.dict
                    .places
                    .iter()
                    .map(|p| {
                        p.country == c
                            && (l.subdivision.is_empty()
                                || (!p.sub.is_empty()
                                    && refdata::subdivision_within(&p.sub, &l.subdivision)))
                    })
                    .collect()
            });
        }
        let no_groups = Vec::new();
        let groups = self.agg.pgroups_of.get(&c).unwrap_or(&no_groups);
        // open vacancies per unit group and place of the country
        let mut units: Vec<u16> = lines.iter().map(|(_, l)| l.unit).collect();
        units.sort_unstable();
        units.dedup();
        let mut open: HashMap<u16, HashMap<u32, (u64, u64)>> = HashMap::new();
        for unit in units {
            let per_place = open.entry(unit).or_default();
            if as_of.0 == self.day {
                // O(place groups of the country) per listed unit group
                for &g in groups {
                    let g = &self.agg.pgroups[g as usize];
                    let o = g.occ[unit as usize];
                    if o.vac > 0 {
                        let e = per_place.entry(g.place).or_default();
                        e.0 += u64::from(o.vac);
                        e.1 += o.pos;
                    }
                }
            } else {
                // O(OPEN-status rows) of each listed unit group
                for r in &self.store.shards[2 * unit as usize + 1].rows {
                    let g = &self.agg.pgroups[r.pgroup as usize];
                    if g.country == c && r.open_at(as_of.0) {
                        let e = per_place.entry(g.place).or_default();
                        e.0 += 1;
                        e.1 += u64::from(r.positions);
                    }
                }
            }
        }
        let rows = lines
            .iter()
            .map(|(_, l)| {
                let inside = &within[l.subdivision.as_str()];
                let (mut vac, mut pos) = (0, 0);
                for (place, (v, p)) in &open[&l.unit] {
                    if inside[*place as usize] {
                        vac += v;
                        pos += p;
                    }
                }
                let code = isco::code(l.unit as usize);
                ShortageRow {
                    isco08: code.to_owned(),
                    label: isco::label(code),
                    list: l.list.clone(),
                    subdivision: l.subdivision.clone(),
                    national_code: l.national_code.clone(),
                    causes: causes_of(l.causes),
                    open_vacancies: vac,
                    open_positions: pos,
                }
            })
            .collect();
        ShortageOverview { year, rows }
    }

    pub(crate) fn supply_gap(
        &self,
        destination: &str,
        source: &str,
        level: u8,
        as_of: Date,
    ) -> Vec<GapRow> {
        let level = usize::from(level.clamp(1, 4));
        let n = isco::count();
        let mut demand = vec![(0u64, 0u64); n];
        let mut listed = vec![0u8; n];
        if let Some(c) = self.dict.countries.get(destination) {
            if as_of.0 == self.day {
                // O(country groups of the destination × unit groups)
                for &g in self.agg.cgroups_of.get(&c).into_iter().flatten() {
                    for (d, o) in demand
                        .iter_mut()
                        .zip(self.agg.cgroups[g as usize].occ.iter())
                    {
                        d.0 += u64::from(o.vac);
                        d.1 += o.pos;
                    }
                }
            } else {
                // O(OPEN-status rows)
                for (u, d) in demand.iter_mut().enumerate() {
                    for r in &self.store.shards[2 * u + 1].rows {
                        if self.agg.pgroups[r.pgroup as usize].country == c && r.open_at(as_of.0) {
                            d.0 += 1;
                            d.1 += u64::from(r.positions);
                        }
                    }
                }
            }
            if let Some(m) = self.latest_units(c) {
                listed = m;
            }
        }
        // supply: the source's latest period; cells at the level or finer roll up
        #[derive(Default)]
        struct Supply {
            registered: u64,
            willing: u64,
            suppressed: bool,
        }
        let mut supply: HashMap<&str, Supply> = HashMap::new();
        let mut period = String::new();
        let latest = self
            .dict
            .countries
            .get(source)
            .and_then(|c| self.lists.periods.get(&c))
            .and_then(|p| p.last_key_value());
        if let Some((_, cells)) = latest {
            period = cells.text.clone();
            for k in &cells.keys {
                let cell = &self.lists.cells[k];
                if cell.code.len() >= level {
                    let s = supply.entry(&cell.code[..level]).or_default();
                    s.registered += cell.registered;
                    s.willing += cell.willing;
                    s.suppressed |= cell.suppressed;
                }
            }
        }
        let figure = |n: u64, suppressed: bool| {
            if suppressed {
                Figure::Suppressed
            } else {
                Figure::Count(n)
            }
        };
        let mut rows = Vec::new();
        for g in refdata::isco_groups()
            .iter()
            .filter(|g| g.code.len() == level)
        {
            let units = isco::prefix_range(g.code);
            let (vac, pos) = demand[units.clone()]
                .iter()
                .fold((0, 0), |(v, p), d| (v + d.0, p + d.1));
            let mask = listed[units].iter().fold(0, |m, x| m | x);
            let s = supply.get(g.code);
            let registered = s.map(|s| figure(s.registered, s.suppressed));
            let has_supply = matches!(registered, Some(Figure::Suppressed))
                || matches!(registered, Some(Figure::Count(n)) if n > 0);
            let in_shortage = mask & LISTED != 0;
            if vac == 0 && !in_shortage && !has_supply {
                continue;
            }
            rows.push(GapRow {
                isco08: g.code.to_owned(),
                label: g.label.to_owned(),
                open_vacancies: vac,
                open_positions: pos,
                shortage_causes: causes_of(mask & !LISTED),
                registered_jobseekers: registered,
                willing_to_migrate: s.map(|s| figure(s.willing, s.suppressed)),
                period: period.clone(),
                matched: in_shortage && has_supply,
            });
        }
        rows.sort_by(|a, b| {
            b.matched
                .cmp(&a.matched)
                .then_with(|| b.open_positions.cmp(&a.open_positions))
                .then_with(|| a.isco08.cmp(&b.isco08))
        });
        rows
    }

    pub(crate) fn demand_trend(&self, q: &DemandQuery, skill: Option<&str>) -> Vec<TrendRow> {
        let f = self.compile(q);
        let skill = match skill {
            None => None,
            Some(uri) => match self.dict.skill_id(uri) {
                Some(s) => Some(s),
                None => return Vec::new(),
            },
        };
        let aligned = (f.from == i32::MIN || Date(f.from).ymd().2 == 1)
            && (f.to == i32::MAX || Date(f.to + 1).ymd().2 == 1);
        let months = (
            if f.from == i32::MIN {
                i32::MIN
            } else {
                month_index(f.from)
            },
            if f.to == i32::MAX {
                i32::MAX
            } else {
                month_index(f.to)
            },
        );
        let in_months = |m: i32| months.0 <= m && m <= months.1;
        if f.from > f.to {
            // an inverted window (validation refuses it) admits nothing
            return Vec::new();
        }
        let mut acc: BTreeMap<(i32, u32), u64> = BTreeMap::new();
        let cgroups = &self.agg.cgroups;
        if !f.by_place && aligned && (skill.is_none() || f.all_units()) {
            match skill {
                // O(country groups × months)
                Some(s) => {
                    for (&(cg, month), cells) in &self.agg.skill_trend {
                        if f.cgroup_ok[cg as usize] && in_months(month) {
                            if let Some(n) = cells.get(&s) {
                                let country = cgroups[cg as usize].country;
                                *acc.entry((month, country)).or_default() += u64::from(*n);
                            }
                        }
                    }
                }
                // O(country groups × months (× unit groups of the prefix))
                None => {
                    for (g, _) in cgroups.iter().zip(&f.cgroup_ok).filter(|(_, ok)| **ok) {
                        for (m, counts) in g.trend.range(months.0..=months.1) {
                            let n = if f.all_units() {
                                counts.total
                            } else {
                                counts.units[f.units.clone()].iter().sum()
                            };
                            if n > 0 {
                                *acc.entry((*m, g.country)).or_default() += u64::from(n);
                            }
                        }
                    }
                }
            }
        } else {
            // O(rows of the prefix's shards, every status); counted per day first, as
            // finding a day's month costs more than a hash-table increment
            let mut by_day: FxMap<(i32, u32), u64> = FxMap::default();
            for u in f.units.clone() {
                for shard in &self.store.shards[2 * u..2 * u + 2] {
                    for r in &shard.rows {
                        let has_skill =
                            || skill.is_none_or(|s| shard.skills_of(r).iter().any(|x| x.id() == s));
                        if f.admits(r) && has_skill() {
                            let country = self.agg.pgroups[r.pgroup as usize].country;
                            *by_day.entry((r.posted, country)).or_default() += 1;
                        }
                    }
                }
            }
            for ((day, country), n) in by_day {
                *acc.entry((month_index(day), country)).or_default() += n;
            }
        }
        let mut rows: Vec<TrendRow> = acc
            .into_iter()
            .map(|((m, c), n)| TrendRow {
                month: month_text(m),
                country: self.dict.countries.name(c).to_owned(),
                vacancies: n,
            })
            .collect();
        rows.sort_by(|a, b| (&a.month, &a.country).cmp(&(&b.month, &b.country)));
        rows
    }

    pub(crate) fn stats(&self) -> Stats {
        Stats {
            day: Date(self.day),
            vacancies: self.agg.rows,
            open_vacancies: self.agg.open_rows,
            shortage_lines: self.lists.lines.len() as u64,
            supply_cells: self.lists.cells.len() as u64,
            skills: self.dict.skills.len() as u64,
            labels: self.dict.labels.len() as u64,
            place_groups: self.agg.pgroups.len() as u64,
            country_groups: self.agg.cgroups.len() as u64,
            approx_bytes: self.approx_bytes() as u64,
        }
    }
}
