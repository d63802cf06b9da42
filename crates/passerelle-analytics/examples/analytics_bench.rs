//! Benchmark of the analytics index: builds it from N generated vacancies (default 1 000 000)
//! and prints `metric=value` lines: build time, memory (estimate and RSS delta) and p50/p99
//! latency of each query path over varied filters.
//!
//! `cargo run --release -p passerelle-analytics --example analytics_bench [N] [RUNS]`
//!
//! The data is deterministic (one seed): real ISCO-08 unit groups and ESCO skill URIs from
//! the reference data, Zipf-skewed occupations (s = 0.8) and skills (s = 1.0), 3 to 12
//! distinct skills per vacancy, five countries with their real subdivisions, postings over
//! the year before the roll day, realistic statuses (a closed vacancy is EXPIRED or FILLED).

use std::time::{Duration, Instant};

use passerelle_analytics::{Analytics, DemandQuery};
use passerelle_model::{
    AgencyId, Date, Kind, Location, Occupation, Record, RecordKey, Shortage, ShortageCause, Skill,
    SupplyCell, Vacancy, VacancyStatus,
};
use passerelle_refdata as refdata;

/// SplitMix64: small, fast, and the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// Ranks 0..n with P(r) ∝ 1/(r+1)^s.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut total = 0.0;
        let cdf = (1..=n)
            .map(|r| {
                total += 1.0 / (r as f64).powf(s);
                total
            })
            .collect();
        Zipf { cdf }
    }

    fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit() * self.cdf[self.cdf.len() - 1];
        self.cdf.partition_point(|c| *c < u).min(self.cdf.len() - 1)
    }
}

fn shuffled<T: Copy>(items: &[T], rng: &mut Rng) -> Vec<T> {
    let mut v = items.to_vec();
    for i in (1..v.len()).rev() {
        v.swap(i, rng.below(i + 1));
    }
    v
}

/// (country, weight, [(origin, subdivisions)])
type Region = (&'static str, f64, Vec<(&'static str, Vec<&'static str>)>);

fn regions() -> Vec<Region> {
    vec![
        (
            "BE",
            0.45,
            vec![
                (
                    "be.vdab",
                    vec![
                        "BE-VAN", "BE-VBR", "BE-VLI", "BE-VOV", "BE-VWV", "BE-VLG", "",
                    ],
                ),
                (
                    "be.forem",
                    vec!["BE-WBR", "BE-WHT", "BE-WLG", "BE-WLX", "BE-WNA", ""],
                ),
                ("be.actiris", vec!["BE-BRU"]),
            ],
        ),
        (
            "FR",
            0.3,
            vec![(
                "fr.france-travail",
                vec![
                    "FR-75", "FR-92", "FR-93", "FR-69", "FR-13", "FR-06", "FR-59", "FR-33",
                    "FR-31", "FR-44", "FR-35", "FR-67", "FR-IDF", "",
                ],
            )],
        ),
        (
            "NL",
            0.12,
            vec![(
                "nl.uwv",
                vec!["NL-NH", "NL-ZH", "NL-UT", "NL-NB", "NL-GE", ""],
            )],
        ),
        (
            "DE",
            0.1,
            vec![(
                "de.ba",
                vec!["DE-BE", "DE-BY", "DE-NW", "DE-HH", "DE-HE", "DE-BW"],
            )],
        ),
        (
            "TG",
            0.03,
            vec![("tg.anpe", vec!["TG-M", "TG-C", "TG-K", "TG-P", "TG-S", ""])],
        ),
    ]
}

struct Generator {
    rng: Rng,
    units: Vec<&'static str>,
    unit_zipf: Zipf,
    skills: Vec<&'static refdata::EscoSkill>,
    skill_zipf: Zipf,
    regions: Vec<Region>,
    origins: Vec<AgencyId>,
    today: Date,
}

impl Generator {
    fn new(today: Date) -> Self {
        let mut rng = Rng(0x5EED_2026);
        let units: Vec<&'static str> = refdata::isco_groups()
            .iter()
            .filter(|g| g.code.len() == 4)
            .map(|g| g.code)
            .collect();
        let units = shuffled(&units, &mut rng);
        let skills: Vec<&'static refdata::EscoSkill> = refdata::esco_skills().iter().collect();
        let skills = shuffled(&skills, &mut rng);
        let regions = regions();
        let origins = regions
            .iter()
            .flat_map(|r| r.2.iter().map(|(o, _)| AgencyId::parse(o).unwrap()))
            .collect();
        Generator {
            unit_zipf: Zipf::new(units.len(), 0.8),
            skill_zipf: Zipf::new(skills.len(), 1.0),
            rng,
            units,
            skills,
            regions,
            origins,
            today,
        }
    }

    fn origin(&self, name: &str) -> AgencyId {
        self.origins
            .iter()
            .find(|o| o.as_str() == name)
            .unwrap()
            .clone()
    }

    fn place(&mut self) -> (&'static str, &'static str, &'static str) {
        let mut u = self.rng.unit();
        let mut region = &self.regions[0];
        for r in &self.regions {
            if u < r.1 {
                region = r;
                break;
            }
            u -= r.1;
        }
        let (origin, subs) = &region.2[self.rng.below(region.2.len())];
        (region.0, origin, subs[self.rng.below(subs.len())])
    }

    fn skills(&mut self) -> Vec<Skill> {
        let n = 3 + self.rng.below(10);
        let mut out: Vec<Skill> = Vec::with_capacity(n);
        while out.len() < n {
            let s = self.skills[self.skill_zipf.sample(&mut self.rng)];
            if out.iter().any(|x| x.esco_uri == s.uri) {
                continue;
            }
            // most publishers copy the ESCO label; some write their own
            let label = if self.rng.chance(0.9) {
                s.label.to_owned()
            } else {
                format!("{} (local)", s.label)
            };
            out.push(Skill {
                esco_uri: s.uri.to_owned(),
                label,
                essential: self.rng.chance(0.6),
            });
        }
        out
    }

    fn vacancy(&mut self, i: usize) -> (RecordKey, Record) {
        let (country, origin, sub) = self.place();
        let isco = self.units[self.unit_zipf.sample(&mut self.rng)];
        let posted = Date(self.today.0 - self.rng.below(365) as i32);
        let closes =
            (!self.rng.chance(0.2)).then(|| Date(posted.0 + 14 + self.rng.below(107) as i32));
        let status = match closes {
            // the expiry sweep has closed what is past its closing date
            Some(c) if c < self.today => {
                if self.rng.chance(0.7) {
                    VacancyStatus::Expired
                } else {
                    VacancyStatus::Filled
                }
            }
            _ => match self.rng.below(20) {
                0..=16 => VacancyStatus::Open,
                17 | 18 => VacancyStatus::Filled,
                _ => VacancyStatus::Withdrawn,
            },
        };
        let key = RecordKey::new(self.origin(origin), Kind::Vacancy, format!("V{i:07}")).unwrap();
        let positions = if self.rng.chance(0.7) {
            1
        } else {
            2 + self.rng.below(4) as u32
        };
        let v = Vacancy {
            id: key.id.clone(),
            origin: origin.to_owned(),
            revision: 1,
            status,
            title: format!("vacancy {i}"),
            description: String::new(),
            language: "en".into(),
            occupation: Occupation {
                isco08: isco.to_owned(),
                esco_uri: String::new(),
            },
            skills: self.skills(),
            location: Location {
                country: country.to_owned(),
                subdivision: sub.to_owned(),
                nuts: String::new(),
                locality: String::new(),
            },
            employer_name: String::new(),
            contract: None,
            schedule: None,
            positions,
            salary: None,
            languages: Vec::new(),
            isced_level: None,
            experience_months: 0,
            posted_on: posted.to_string(),
            closes_on: closes.map_or(String::new(), |c| c.to_string()),
            open_to_international: self.rng.chance(0.3),
            programmes: Vec::new(),
            updated_at_micros: 0,
        };
        (key, Record::Vacancy(v))
    }

    fn shortages(&mut self) -> Vec<(RecordKey, Record)> {
        let mut out = Vec::new();
        let lists = [
            ("be.vdab", "BE", "vdab-knelpuntberoepen", 2025, 180),
            ("be.vdab", "BE", "vdab-knelpuntberoepen", 2026, 200),
            ("be.forem", "BE", "forem-metiers-en-penurie", 2026, 120),
            (
                "fr.france-travail",
                "FR",
                "ft-metiers-en-tension",
                2026,
                250,
            ),
            ("nl.uwv", "NL", "uwv-krapte", 2025, 90),
        ];
        let causes = [
            ShortageCause::Quantitative,
            ShortageCause::Qualitative,
            ShortageCause::WorkingConditions,
        ];
        for (origin, country, list, year, n) in lists {
            for j in 0..n {
                let key = RecordKey::new(
                    self.origin(origin),
                    Kind::Shortage,
                    format!("{list}-{year}-{j}"),
                )
                .unwrap();
                let mut cs: Vec<ShortageCause> = causes
                    .iter()
                    .copied()
                    .filter(|_| self.rng.chance(0.5))
                    .collect();
                if cs.is_empty() {
                    cs.push(causes[self.rng.below(3)]);
                }
                let subdivision = if origin == "be.forem" { "BE-WAL" } else { "" };
                let s = Shortage {
                    id: key.id.clone(),
                    origin: origin.into(),
                    revision: 1,
                    list: list.into(),
                    year,
                    country: country.into(),
                    subdivision: subdivision.into(),
                    occupation: Occupation {
                        isco08: self.units[self.unit_zipf.sample(&mut self.rng)].into(),
                        esco_uri: String::new(),
                    },
                    national_code: format!("N{j}"),
                    causes: cs,
                    skills: self.skills(),
                    unfilled_vacancies: None,
                    median_days_open: None,
                    jobseekers_per_100_vacancies: None,
                    updated_at_micros: 0,
                };
                out.push((key, Record::Shortage(s)));
            }
        }
        out
    }

    fn supply(&mut self) -> Vec<(RecordKey, Record)> {
        let mut out = Vec::new();
        let anpe = self.origin("tg.anpe");
        let mut j = 0;
        for period in ["2025-Q3", "2025-Q4"] {
            for sub in ["TG-M", "TG-C", "TG-K", "TG-P", "TG-S"] {
                for k in 0..300 {
                    let unit = self.units[k];
                    // a few cells are published at a coarser level only
                    let code = if k % 10 == 0 { &unit[..2] } else { unit };
                    let n = self.rng.below(200) as u64;
                    let suppressed = (1..5).contains(&n);
                    let key = RecordKey::new(anpe.clone(), Kind::Supply, format!("C{j}")).unwrap();
                    j += 1;
                    let c = SupplyCell {
                        id: key.id.clone(),
                        origin: "tg.anpe".into(),
                        revision: 1,
                        period: period.into(),
                        country: "TG".into(),
                        subdivision: sub.into(),
                        occupation: Occupation {
                            isco08: code.into(),
                            esco_uri: String::new(),
                        },
                        isced_level: None,
                        registered_jobseekers: if suppressed { 0 } else { n },
                        willing_to_migrate: if suppressed || n / 3 < 5 { 0 } else { n / 3 },
                        suppressed,
                        updated_at_micros: 0,
                    };
                    out.push((key, Record::Supply(c)));
                }
            }
        }
        out
    }
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// CPU time of the calling thread: unlike wall time, it leaves out the time other processes
/// hold the CPU, which dominates the tail on a shared 2-core machine.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn thread_cpu() -> Duration {
    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec and the clock id is Linux's constant
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.sec as u64, ts.nsec as u32)
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
fn thread_cpu() -> Duration {
    Duration::ZERO
}

struct Times {
    wall: Vec<Duration>,
    cpu: Vec<Duration>,
}

fn report(name: &str, times: Times) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for (suffix, mut t) in [("", times.wall), ("_cpu", times.cpu)] {
        t.sort();
        let n = t.len();
        println!("{name}{suffix}_p50_ms={:.3}", ms(t[n / 2]));
        println!(
            "{name}{suffix}_p99_ms={:.3}",
            ms(t[(n * 99 / 100).min(n - 1)])
        );
    }
}

fn time<T>(runs: usize, mut f: impl FnMut(usize) -> T) -> Times {
    let mut times = Times {
        wall: Vec::with_capacity(runs),
        cpu: Vec::with_capacity(runs),
    };
    for i in 0..runs {
        let (c, t) = (thread_cpu(), Instant::now());
        std::hint::black_box(f(i));
        times.wall.push(t.elapsed());
        times.cpu.push(thread_cpu().saturating_sub(c));
    }
    times
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let runs: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(200);
    let today = Date::parse("2026-06-15").unwrap();
    let mut g = Generator::new(today);
    let analytics = Analytics::with_day(today);
    let rss_before = rss_bytes();

    // build: generate and apply one record at a time, as a start-up scan of the store would
    let started = Instant::now();
    let mut applying = Duration::ZERO;
    let mut kept = Vec::new();
    for i in 0..n {
        let (key, record) = g.vacancy(i);
        let t = Instant::now();
        analytics.apply(&key, Some(&record));
        applying += t.elapsed();
        if i % 100 == 0 && kept.len() < 10_000 {
            kept.push((key, record));
        }
    }
    for (key, record) in g.shortages().into_iter().chain(g.supply()) {
        let t = Instant::now();
        analytics.apply(&key, Some(&record));
        applying += t.elapsed();
    }
    let total = started.elapsed();
    let stats = analytics.stats();
    let rss_after = rss_bytes();
    println!("vacancies={}", stats.vacancies);
    println!("open_vacancies={}", stats.open_vacancies);
    println!("shortage_lines={}", stats.shortage_lines);
    println!("supply_cells={}", stats.supply_cells);
    println!("place_groups={}", stats.place_groups);
    println!("country_groups={}", stats.country_groups);
    println!("build_seconds={:.3}", applying.as_secs_f64());
    println!("build_with_generation_seconds={:.3}", total.as_secs_f64());
    println!("approx_bytes={}", stats.approx_bytes);
    println!("rss_delta_bytes={}", rss_after.saturating_sub(rss_before));
    println!(
        "approx_bytes_per_vacancy={}",
        stats.approx_bytes / stats.vacancies.max(1)
    );

    // updates: a status change of an existing vacancy, and back
    let t = Instant::now();
    for (k, r) in &kept {
        let mut changed = r.clone();
        if let Record::Vacancy(v) = &mut changed {
            v.status = VacancyStatus::Withdrawn;
        }
        analytics.apply(k, Some(&changed));
        analytics.apply(k, Some(r));
    }
    let updates = 2 * kept.len().max(1);
    println!(
        "update_us_mean={:.2}",
        t.elapsed().as_secs_f64() * 1e6 / updates as f64
    );

    let t = Instant::now();
    analytics.roll_day(Date(today.0 + 1));
    println!("roll_day_seconds={:.3}", t.elapsed().as_secs_f64());
    analytics.roll_day(today);

    if runs == 0 {
        return;
    }

    // filters
    let mut rng = Rng(7);
    let countries = ["BE", "FR", "NL", "DE", "TG"];
    let subdivisions = [
        "BE-VLG", "BE-VAN", "BE-WAL", "BE-BRU", "FR-IDF", "FR-75", "NL-NH", "DE-BY",
    ];
    let origins = ["be.vdab", "be.forem", "fr.france-travail", "nl.uwv"];
    let units: Vec<&str> = g.units.clone();
    let skill_uris: Vec<&str> = g.skills.iter().map(|s| s.uri).collect();
    let common = |rng: &mut Rng, as_of: Date| {
        let mut q = DemandQuery::new(as_of);
        match rng.below(5) {
            0 => {}
            1 => q.countries = vec![countries[rng.below(5)].into()],
            2 => {
                q.countries = vec![
                    countries[rng.below(5)].into(),
                    countries[rng.below(5)].into(),
                ]
            }
            3 => q.origins = vec![origins[rng.below(4)].into()],
            _ => {
                q.countries = vec![countries[rng.below(5)].into()];
                q.open_to_international = Some(true);
            }
        }
        if rng.chance(0.3) {
            q.open_to_international = Some(rng.chance(0.5));
        }
        q
    };
    let prefix = |rng: &mut Rng, len: usize| units[rng.below(units.len())][..len].to_owned();

    let qs: Vec<DemandQuery> = (0..runs).map(|_| common(&mut rng, today)).collect();
    report(
        "skills_demand_today",
        time(runs, |i| analytics.skills_demand(&qs[i], 50)),
    );
    let qs: Vec<DemandQuery> = (0..runs)
        .map(|_| {
            let mut q = common(&mut rng, today);
            q.countries.clear();
            q.subdivisions = vec![subdivisions[rng.below(subdivisions.len())].into()];
            q
        })
        .collect();
    report(
        "skills_demand_subdivision",
        time(runs, |i| analytics.skills_demand(&qs[i], 50)),
    );
    for len in [4, 3, 2, 1] {
        let qs: Vec<DemandQuery> = (0..runs)
            .map(|_| {
                let mut q = common(&mut rng, today);
                q.isco_prefix = prefix(&mut rng, len);
                q
            })
            .collect();
        report(
            &format!("skills_demand_isco{len}"),
            time(runs, |i| analytics.skills_demand(&qs[i], 50)),
        );
    }
    let qs: Vec<DemandQuery> = (0..runs)
        .map(|_| {
            let mut q = {
                let back = 1 + rng.below(90) as i32;
                common(&mut rng, Date(today.0 - back))
            };
            q.isco_prefix = prefix(&mut rng, 3);
            q
        })
        .collect();
    report(
        "skills_demand_past_isco3",
        time(runs, |i| analytics.skills_demand(&qs[i], 50)),
    );
    let slow = runs.min(50);
    let qs: Vec<DemandQuery> = (0..slow)
        .map(|_| {
            let back = 1 + rng.below(90) as i32;
            common(&mut rng, Date(today.0 - back))
        })
        .collect();
    report(
        "skills_demand_past_all",
        time(slow, |i| analytics.skills_demand(&qs[i], 50)),
    );

    let qs: Vec<(DemandQuery, u8)> = (0..runs)
        .map(|_| {
            let mut q = common(&mut rng, today);
            if rng.chance(0.3) {
                q.countries.clear();
                q.subdivisions = vec![subdivisions[rng.below(subdivisions.len())].into()];
            }
            if rng.chance(0.5) {
                let len = 1 + rng.below(2);
                q.isco_prefix = prefix(&mut rng, len);
            }
            (q, 1 + rng.below(4) as u8)
        })
        .collect();
    report(
        "occupation_demand_today",
        time(runs, |i| analytics.occupation_demand(&qs[i].0, qs[i].1)),
    );
    let qs: Vec<(DemandQuery, u8)> = (0..slow)
        .map(|_| {
            let mut q = common(&mut rng, today);
            q.posted_from = Some(Date(today.0 - 30));
            (q, 1 + rng.below(4) as u8)
        })
        .collect();
    report(
        "occupation_demand_window_all",
        time(slow, |i| analytics.occupation_demand(&qs[i].0, qs[i].1)),
    );

    report(
        "shortage_overview_today",
        time(runs, |i| {
            analytics.shortage_overview(["BE", "FR", "NL"][i % 3], None, today)
        }),
    );
    report(
        "shortage_overview_past",
        time(slow, |i| {
            analytics.shortage_overview(["BE", "FR", "NL"][i % 3], None, Date(today.0 - 7))
        }),
    );
    report(
        "supply_gap_today",
        time(runs, |i| {
            analytics.supply_gap(
                ["BE", "FR", "NL", "DE"][i % 4],
                "TG",
                1 + (i % 4) as u8,
                today,
            )
        }),
    );
    report(
        "supply_gap_past",
        time(slow, |i| {
            analytics.supply_gap(
                ["BE", "FR", "NL", "DE"][i % 4],
                "TG",
                1 + (i % 4) as u8,
                Date(today.0 - 7),
            )
        }),
    );

    let qs: Vec<DemandQuery> = (0..runs)
        .map(|_| {
            let mut q = common(&mut rng, today);
            let len = 1 + rng.below(4);
            q.isco_prefix = prefix(&mut rng, len);
            q
        })
        .collect();
    report(
        "demand_trend_isco",
        time(runs, |i| analytics.demand_trend(&qs[i], None)),
    );
    let picks: Vec<(DemandQuery, &str)> = (0..runs)
        .map(|_| {
            (
                common(&mut rng, today),
                skill_uris[Zipf::new(200, 1.0).sample(&mut rng)],
            )
        })
        .collect();
    report(
        "demand_trend_skill",
        time(runs, |i| {
            analytics.demand_trend(&picks[i].0, Some(picks[i].1))
        }),
    );
    let picks: Vec<(DemandQuery, &str)> = (0..runs)
        .map(|_| {
            let mut q = common(&mut rng, today);
            let len = 2 + rng.below(3);
            q.isco_prefix = prefix(&mut rng, len);
            (q, skill_uris[Zipf::new(200, 1.0).sample(&mut rng)])
        })
        .collect();
    report(
        "demand_trend_skill_isco",
        time(runs, |i| {
            analytics.demand_trend(&picks[i].0, Some(picks[i].1))
        }),
    );
    let picks: Vec<(DemandQuery, &str)> = (0..slow)
        .map(|_| {
            let mut q = DemandQuery::new(today);
            q.subdivisions = vec![subdivisions[rng.below(subdivisions.len())].into()];
            (q, skill_uris[Zipf::new(200, 1.0).sample(&mut rng)])
        })
        .collect();
    report(
        "demand_trend_skill_subdivision_all",
        time(slow, |i| {
            analytics.demand_trend(&picks[i].0, Some(picks[i].1))
        }),
    );
}
