#!/usr/bin/env python3
"""Writes the demo's sample files in samples/ from the embedded reference data.

    python3 scripts/gen_samples.py

Deterministic (fixed seed). Vacancies are VDAB-like (Flemish job titles,
Flemish provinces), the shortage list is a VDAB "knelpuntberoepen"-like
list, supply cells are ANPE-like aggregates per Togolese region. Skill URIs
and ISCO-08 codes are real (taken from crates/passerelle-refdata/data).
The figures are invented for the demo.
"""
import csv
import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "crates/passerelle-refdata/data"
OUT = ROOT / "samples"


def tsv(name):
    for line in (DATA / name).read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            yield line.split("\t")


SKILLS = [(r[0], r[1]) for r in tsv("esco_skills.tsv")]
ISCO = {r[0]: r[1] for r in tsv("isco08.tsv")}

# (isco08, Dutch title, skill keywords, shortage causes, supply weight in Togo)
OCCUPATIONS = [
    ("2221", "Verpleegkundige", ["patient", "nursing", "medication"], ["QUANTITATIVE", "WORKING_CONDITIONS"], 3),
    ("7411", "Elektricien", ["electrical wiring", "electrical installation", "electricity"], ["QUANTITATIVE", "QUALITATIVE"], 5),
    ("7212", "Lasser", ["welding", "metal joining"], ["QUANTITATIVE", "QUALITATIVE"], 4),
    ("8332", "Vrachtwagenchauffeur", ["drive truck", "traffic", "cargo"], ["QUANTITATIVE", "WORKING_CONDITIONS"], 6),
    ("2512", "Softwareontwikkelaar", ["programming", "software", "database"], ["QUALITATIVE"], 1),
    ("7126", "Loodgieter", ["plumbing", "pipe"], ["QUANTITATIVE"], 4),
    ("7115", "Timmerman", ["carpentry", "wood", "saw"], ["QUANTITATIVE"], 5),
    ("7231", "Automechanicus", ["vehicle", "engine", "repair"], ["QUALITATIVE"], 6),
    ("5120", "Kok", ["cooking", "food", "kitchen"], ["WORKING_CONDITIONS"], 3),
    ("5322", "Zorgkundige", ["personal care", "elderly", "hygiene"], ["QUANTITATIVE", "WORKING_CONDITIONS"], 2),
    ("2142", "Burgerlijk ingenieur", ["civil engineering", "construction", "structural"], ["QUALITATIVE"], 1),
    ("7112", "Metselaar", ["brick", "masonry", "mortar"], ["QUANTITATIVE"], 6),
    ("7233", "Onderhoudstechnicus", ["maintenance", "machinery", "hydraulic"], ["QUALITATIVE"], 3),
    ("9333", "Magazijnmedewerker", ["warehouse", "forklift", "inventory"], [], 8),
    ("6111", "Tuinbouwer", ["crop", "irrigation", "harvest"], [], 9),
]

PROVINCES = [("BE-VAN", "BE211", "Antwerpen"), ("BE-VOV", "BE234", "Gent"),
             ("BE-VWV", "BE255", "Oostende"), ("BE-VBR", "BE241", "Leuven"),
             ("BE-VLI", "BE221", "Hasselt")]
REGIONS = ["TG-M", "TG-P", "TG-C", "TG-K", "TG-S"]


def skills_for(rng, keywords, n):
    pool = [s for s in SKILLS if any(k in s[1].lower() for k in keywords)]
    pool.sort()
    picked = rng.sample(pool, min(n, len(pool)))
    return [{"esco_uri": u, "label": l, "essential": i < 2} for i, (u, l) in enumerate(picked)]


def main():
    rng = random.Random(2026)
    OUT.mkdir(exist_ok=True)
    with open(OUT / "vdab-vacancies.jsonl", "w", encoding="utf-8") as f:
        for i in range(1, 61):
            isco, title, kws, _, _ = OCCUPATIONS[(i - 1) % len(OCCUPATIONS)]
            sub, nuts, city = PROVINCES[i % len(PROVINCES)]
            posted = f"2026-{(i % 10) + 1:02d}-{(i % 27) + 1:02d}"
            v = {
                "id": f"V-2026-{i:05d}",
                "status": "OPEN" if i % 9 else "FILLED",
                "title": f"{title} ({ISCO[isco].lower()})",
                "description": f"{title} gezocht in {city}. Opleiding en begeleiding voorzien.",
                "language": "nl",
                "occupation": {"isco08": isco},
                "skills": skills_for(rng, kws, rng.randint(3, 6)),
                "location": {"country": "BE", "subdivision": sub, "nuts": nuts, "locality": city},
                "employer_name": f"Werkgever {chr(65 + i % 26)} bv",
                "contract": rng.choice(["PERMANENT", "FIXED_TERM", "TEMPORARY"]),
                "schedule": "FULL_TIME" if i % 4 else "PART_TIME",
                "positions": rng.randint(1, 5),
                "salary": {"min": 2400.0 + 50 * (i % 20), "max": 3100.0 + 60 * (i % 20),
                           "currency": "EUR", "period": "MONTH"},
                "languages": [{"code": "nl", "level": "B1"}] + ([{"code": "fr", "level": "B2"}] if i % 3 == 0 else []),
                "isced_level": rng.choice([2, 3, 4, 6]),
                "experience_months": rng.choice([0, 12, 24, 36]),
                "posted_on": posted,
                "closes_on": "2027-06-30",
                "open_to_international": i % 3 != 2,
                "programmes": ["be-tg-circular-2026"] if i % 5 == 0 else [],
            }
            f.write(json.dumps(v, ensure_ascii=False) + "\n")

    with open(OUT / "vdab-shortages.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "list", "year", "country", "subdivision", "occupation.isco08",
                    "national_code", "causes", "skills", "unfilled_vacancies", "median_days_open"])
        n = 0
        for isco, title, kws, causes, _ in OCCUPATIONS:
            if not causes:
                continue
            n += 1
            skills = ";".join(f"{s['esco_uri']}|{s['label']}|{str(s['essential']).lower()}"
                              for s in skills_for(rng, kws, 2))
            w.writerow([f"KB-2026-{n:03d}", "vdab-knelpuntberoepen", 2026, "BE", "BE-VLG", isco,
                        f"VDAB-{isco}", ";".join(causes), skills, rng.randint(80, 900), rng.randint(40, 160)])

    with open(OUT / "anpe-supply.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "period", "country", "subdivision", "occupation.isco08", "isced_level",
                    "registered_jobseekers", "willing_to_migrate", "suppressed"])
        for isco, _, _, _, weight in OCCUPATIONS:
            for region in REGIONS:
                count = rng.randint(0, 40) * weight
                if 0 < count < 5:
                    w.writerow([f"S-2026Q3-{isco}-{region}", "2026-Q3", "TG", region, isco, 3, 0, 0, "true"])
                else:
                    willing = count * rng.randint(20, 70) // 100
                    if 0 < willing < 5:
                        willing = 5 if count >= 5 else 0
                    w.writerow([f"S-2026Q3-{isco}-{region}", "2026-Q3", "TG", region, isco, 3,
                                count, willing, "false"])


if __name__ == "__main__":
    main()
