//! Deterministic generator of realistic records: real ISCO-08 unit groups and ESCO skills, Zipf-skewed.

use passerelle_model::{
    Contract, LanguageRequirement, Location, Occupation, Salary, SalaryPeriod, Schedule, Skill,
    Vacancy, VacancyStatus,
};

/// xorshift64*: tiny, fast and reproducible from a seed; statistical quality is ample here.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Samples ranks 0..n with probability ∝ 1/(rank+1)^s, by inverting the cumulative weights.
pub struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, s: f64) -> Self {
        let mut acc = 0.0;
        let cumulative = (0..n)
            .map(|k| {
                acc += 1.0 / ((k + 1) as f64).powf(s);
                acc
            })
            .collect();
        Zipf { cumulative }
    }

    pub fn sample(&self, rng: &mut Rng) -> usize {
        let total = *self.cumulative.last().unwrap_or(&1.0);
        let x = rng.unit() * total;
        self.cumulative.partition_point(|c| *c < x)
    }
}

const WORDS: &[&str] = &[
    "gezocht",
    "ervaren",
    "medewerker",
    "team",
    "klanten",
    "veiligheid",
    "kwaliteit",
    "opleiding",
    "contract",
    "ploegwerk",
    "rijbewijs",
    "onderhoud",
    "installatie",
    "planning",
    "zorg",
    "productie",
    "logistiek",
    "werkplaats",
    "begeleiding",
    "verantwoordelijk",
    "nauwkeurig",
    "flexibel",
];

const PROVINCES: &[(&str, &str, &str)] = &[
    ("BE-VAN", "BE211", "Antwerpen"),
    ("BE-VOV", "BE234", "Gent"),
    ("BE-VWV", "BE255", "Oostende"),
    ("BE-VBR", "BE241", "Leuven"),
    ("BE-VLI", "BE221", "Hasselt"),
];

/// Skills per vacancy, least and most. ESCO-tagged postings carry a handful of skills; with
/// labels each costs ≈130 bytes of JSON, the largest part of a record.
const SKILLS: (u64, u64) = (2, 8);

/// Words of description, least and most (≈10 bytes of JSON each).
const DESCRIPTION_WORDS: (u64, u64) = (10, 36);

/// A vacancy as an origin's system would write it in an import file: compact JSON without the
/// fields left at their default (no origin or revision yet, empty lists, `false` flags, zero
/// months of experience), which the importer fills in with the same defaults.
pub fn to_json(v: &Vacancy) -> String {
    let mut value = serde_json::to_value(v).expect("vacancies always serialise");
    strip_defaults(&mut value);
    value.to_string()
}

fn strip_defaults(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(map) => map.retain(|_, x| {
            strip_defaults(x);
            !is_default(x)
        }),
        Value::Array(items) => items.iter_mut().for_each(strip_defaults),
        _ => {}
    }
}

fn is_default(v: &serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// Generates vacancies of `origin` as the origin's systems would send them.
pub struct VacancyGen {
    rng: Rng,
    units: Vec<&'static str>,
    occupation_zipf: Zipf,
    skills: &'static [passerelle_refdata::EscoSkill],
    skill_zipf: Zipf,
}

impl VacancyGen {
    pub fn new(seed: u64) -> Self {
        let units: Vec<&'static str> = passerelle_refdata::isco_groups()
            .iter()
            .filter(|g| g.code.len() == 4)
            .map(|g| g.code)
            .collect();
        let skills = passerelle_refdata::esco_skills();
        VacancyGen {
            rng: Rng::new(seed),
            occupation_zipf: Zipf::new(units.len(), 0.9),
            units,
            skill_zipf: Zipf::new(skills.len(), 1.07),
            skills,
        }
    }

    fn sentence(&mut self, words: usize) -> String {
        (0..words)
            .map(|_| WORDS[self.rng.below(WORDS.len() as u64) as usize])
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The `i`-th vacancy (ids are `V-{i:08}`); about 1.2–1.5 KB as [`to_json`] (1.41 KB on
    /// average): 2–8 skills and 10–36 words of description.
    pub fn vacancy(&mut self, i: u64) -> Vacancy {
        let isco = self.units[self.occupation_zipf.sample(&mut self.rng)];
        let label = passerelle_refdata::isco(isco).map_or("", |g| g.label);
        let n_skills = self.rng.range(SKILLS.0, SKILLS.1) as usize;
        let mut skills: Vec<Skill> = Vec::with_capacity(n_skills);
        while skills.len() < n_skills {
            let s = &self.skills[self.skill_zipf.sample(&mut self.rng)];
            if skills.iter().all(|k| k.esco_uri != s.uri) {
                skills.push(Skill {
                    esco_uri: s.uri.to_owned(),
                    label: s.label.to_owned(),
                    essential: self.rng.below(3) == 0,
                });
            }
        }
        let (sub, nuts, city) = PROVINCES[self.rng.below(PROVINCES.len() as u64) as usize];
        let month = self.rng.range(1, 12);
        let day = self.rng.range(1, 28);
        let min = 2000.0 + self.rng.below(40) as f64 * 50.0;
        let words = self.rng.range(DESCRIPTION_WORDS.0, DESCRIPTION_WORDS.1) as usize;
        Vacancy {
            id: format!("V-{i:08}"),
            origin: String::new(),
            revision: 0,
            status: if self.rng.below(10) == 0 {
                VacancyStatus::Filled
            } else {
                VacancyStatus::Open
            },
            title: format!("{label} ({city})"),
            description: self.sentence(words),
            language: "nl".into(),
            occupation: Occupation {
                isco08: isco.to_owned(),
                esco_uri: String::new(),
            },
            skills,
            location: Location {
                country: "BE".into(),
                subdivision: sub.into(),
                nuts: nuts.into(),
                locality: city.into(),
            },
            employer_name: format!("Werkgever {} bv", self.rng.below(5000)),
            contract: Some(
                [
                    Contract::Permanent,
                    Contract::FixedTerm,
                    Contract::Temporary,
                ][self.rng.below(3) as usize],
            ),
            schedule: Some(if self.rng.below(4) == 0 {
                Schedule::PartTime
            } else {
                Schedule::FullTime
            }),
            positions: self.rng.range(1, 5) as u32,
            salary: (self.rng.below(3) != 0).then(|| Salary {
                min,
                max: min + 600.0,
                currency: "EUR".into(),
                period: Some(SalaryPeriod::Month),
            }),
            languages: vec![LanguageRequirement {
                code: "nl".into(),
                level: Some(passerelle_model::CefrLevel::B1),
            }],
            isced_level: Some(self.rng.range(2, 7) as u32),
            experience_months: self.rng.below(4) as u32 * 12,
            posted_on: format!("2026-{month:02}-{day:02}"),
            closes_on: "2027-06-30".into(),
            open_to_international: self.rng.below(3) != 0,
            programmes: Vec::new(),
            updated_at_micros: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use passerelle_model::{Record, Rules};

    #[test]
    fn generated_vacancies_are_valid_and_deterministic() {
        let mut a = VacancyGen::new(7);
        let mut b = VacancyGen::new(7);
        for i in 0..300 {
            let v = a.vacancy(i);
            assert_eq!(v, b.vacancy(i));
            let mut r = Record::Vacancy(v);
            r.set_origin(&"be.vdab".parse().unwrap());
            r.validate("vacancy", &Rules::default()).unwrap();
        }
    }

    #[test]
    fn json_omits_defaults_reads_back_equal_and_is_about_1_2_to_1_5_kb() {
        let mut g = VacancyGen::new(1);
        let mut total = 0;
        for i in 0..1000 {
            let v = g.vacancy(i);
            let json = to_json(&v);
            assert!(!json.contains("\"origin\""), "{json}");
            assert!(!json.contains("\"programmes\""), "{json}");
            let back: Vacancy = serde_json::from_str(&json).unwrap();
            assert_eq!(back, v);
            total += json.len() + 1;
        }
        let mean = total / 1000;
        assert!((1_200..=1_500).contains(&mean), "{mean} bytes per record");
    }

    #[test]
    fn zipf_favours_low_ranks() {
        let z = Zipf::new(1000, 1.07);
        let mut rng = Rng::new(1);
        let low = (0..10_000).filter(|_| z.sample(&mut rng) < 10).count();
        assert!(low > 2_000, "{low}");
    }
}
