"""The offline suite of Study G: the five task types generated from a seeded sandbox world, each in
two variants (an in-domain and an out-of-domain style with other entities and vocabulary), so the
whole study runs with no hub.

Every dataset (one YAML in ftscope/datasets/g/sandbox/) names its task and variant; the records share
the same seeded entity pools. Besides its items (training pool, test set, demonstration pool) each
dataset contributes raw text of its kind to the pretraining corpus, in other shapes than the prompt
maps (a headline above its article, a review with a verdict, a sentence pair with a remark), some of
them several to a document, so the small model has seen each text type and a little of in-context
pattern following before it is fine-tuned or prompted.
"""

import zlib
from collections.abc import Callable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ftscope.datasets.readers import Loaded, Where, reader
from ftscope.datasets.records import to_item
from ftscope.datasets.spec import DatasetSpec
from ftscope.sandbox.names import Names


class SuiteOptions(BaseModel):
    """Options of source format `sandbox-g` (the study config's `data.options`)."""
    model_config = ConfigDict(extra="forbid")
    seed: int = 0
    n_train: int = Field(600, gt=0, description="training pool per dataset")
    n_test: int = Field(200, gt=0, description="test items per dataset")
    n_demo: int = Field(8, gt=0, description="demonstration pool per dataset")
    n_documents: int = Field(1500, ge=0, description="pretraining examples per dataset, in raw shapes")
    digest_every: int = Field(5, gt=0, description="one document in this many holds several examples")
    people: int = Field(240, ge=4, le=240, description="people the records draw on")
    places: int = Field(80, ge=4, le=80, description="cities (and as many companies, brands and films at most)")


# -- the shared world: entity pools drawn once from the suite seed ----------------------------------

OCCUPATIONS = "baker lawyer painter farmer sailor surgeon teacher poet architect weaver chemist pilot dancer".split()
EVENTS = [("opened", "opens", ["a bakery", "a school", "a library", "a gallery", "a clinic", "a market"]),
          ("won", "wins", ["the race", "a prize", "the election", "the final", "a medal"]),
          ("sold", "sells", ["a farm", "a house", "a painting", "a boat", "a mill"]),
          ("built", "builds", ["a bridge", "a tower", "a theatre", "a harbour", "a stadium"])]
NEWS_FILLER = ["Crowds gathered to watch .", "Neighbours said they were surprised .", "The weather was cold .",
               "Local leaders praised the news .", "Many people came from far away .", "It rained all morning .",
               "Children waved flags in the street .", "The event lasted until night ."]
REPORT_FILLER = ["Analysts expect strong sales .", "Rivals declined to comment .", "Trading was heavy .",
                 "The market closed higher .", "Investors welcomed the plan .", "Costs fell in the last quarter ."]
PRODUCTS = "lamp kettle phone blender heater radio camera drill toaster fan".split()
PRODUCT_POS = ["works great", "is excellent", "feels sturdy", "was worth the money", "is perfect", "does the job well"]
PRODUCT_NEG = ["broke after a week", "is flimsy", "was a waste of money", "stopped working", "is awful", "feels cheap"]
PRODUCT_FILLER = ["It arrived on time .", "The box was blue .", "I use it every day .", "My sister has one too ."]
FILM_POS = ["was moving", "is brilliant", "kept us gripped", "was great", "is excellent", "felt fresh"]
FILM_NEG = ["was dull", "is boring", "dragged on", "was awful", "fell flat", "felt stale"]
FILM_FILLER = ["The seats were soft .", "We went on a Sunday .", "The hall was full .", "It runs two hours ."]
WEEKDAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()

# Paraphrase and NLI: facts as (relation, statement phrasings with {s} and {o}).
PEOPLE_FACTS = {
    "born": ["{s} was born in {o} .", "{o} is the birthplace of {s} .", "{s} came into the world in {o} ."],
    "job": ["{s} works as a {o} .", "{s} earns a living as a {o} .", "by trade , {s} is a {o} ."],
    "home": ["{s} lives in {o} .", "{s} makes a home in {o} .", "the home of {s} is in {o} ."],
}
PLACE_FACTS = {
    "city": ["{s} is based in {o} .", "the head office of {s} is in {o} .", "{s} runs its business from {o} ."],
    "maker": ["{s} makes the {o} .", "the {o} is made by {s} .", "{s} builds the {o} ."],
    "owner": ["{s} is owned by {o} .", "{o} owns {s} .", "the owner of {s} is {o} ."],
}
PEOPLE_QUESTIONS = {"born": "Where was {s} born ?", "job": "What does {s} do for a living ?",
                    "home": "Where does {s} live ?"}
PLACE_QUESTIONS = {"city": "Where is {s} based ?", "maker": "What does {s} make ?", "owner": "Who owns {s} ?"}


class Pools:
    """Entity pools shared by every dataset of the suite (the same seed gives the same world); records
    draw on the first `people` people and `places` cities, companies, brands and films."""

    def __init__(self, seed: int, people: int = 240, places: int = 80):
        rng = np.random.default_rng(seed)
        names = Names(rng)
        first, last = names.pool(120), names.pool(120)
        self.people = [f"{a} {b}" for a, b in zip(rng.permutation(first), rng.permutation(last))] + \
                      [f"{a} {b}" for a, b in zip(rng.permutation(first), rng.permutation(last))]
        self.cities = names.pool(80)
        self.companies = [f"{w} {rng.choice(['Corp', 'Works', 'Group'])}" for w in names.pool(60)]
        self.brands = names.pool(40)
        self.films = [f"The {w}" for w in names.pool(60)]
        self.people, self.cities = self.people[:people], self.cities[:places]
        self.companies, self.brands, self.films = self.companies[:places], self.brands[:places], self.films[:places]


def _pick(rng, xs):
    return xs[int(rng.integers(len(xs)))]


def _value(rng, pools: Pools, relation: str, exclude: str = ""):
    """A value for a fact's object slot, different from `exclude`."""
    source = {"born": pools.cities, "home": pools.cities, "city": pools.cities, "job": OCCUPATIONS,
              "maker": PRODUCTS, "owner": pools.people}[relation]
    while True:
        v = _pick(rng, source)
        if v != exclude:
            return v


# -- one generator per task: (rng, pools, variant) -> (fields, raw text for the corpus) ---------------

def summary(rng, pools: Pools, variant: str) -> tuple[dict, str]:
    if variant == "news":
        p, occ, city, city2 = _pick(rng, pools.people), _pick(rng, OCCUPATIONS), _pick(rng, pools.cities), \
            _pick(rng, pools.cities)
        past, present, objects = EVENTS[int(rng.integers(len(EVENTS)))]
        obj = _pick(rng, objects)
        key = f"{p} , a {occ} from {city} , {past} {obj} in {city2} on {_pick(rng, WEEKDAYS)} ."
        headline = f"{occ} {p} {present} {obj} in {city2}"
        filler = NEWS_FILLER
    else:  # reports: business news with other words and another shape of summary
        company, product, city = _pick(rng, pools.companies), _pick(rng, PRODUCTS), _pick(rng, pools.cities)
        up = bool(rng.integers(2))
        key = (f"Shares of {company} {'rose' if up else 'fell'} {int(rng.integers(2, 30))} percent on "
               f"{_pick(rng, WEEKDAYS)} . The firm , based in {city} , will launch a new {product} next month .")
        headline = f"{company} to launch {product} , shares {'rise' if up else 'fall'}"
        filler = REPORT_FILLER
    sentences = [key] + [str(s) for s in rng.choice(filler, size=2, replace=False)]
    order = rng.permutation(3)
    article = " ".join(sentences[i] for i in order)
    return {"input": article, "output": headline}, f"{headline}\n{article}"


def question(rng, pools: Pools, variant: str) -> tuple[dict, str]:
    facts, questions = (PEOPLE_FACTS, PEOPLE_QUESTIONS) if variant == "people" else (PLACE_FACTS, PLACE_QUESTIONS)
    s = _pick(rng, pools.people) if variant == "people" else _pick(rng, pools.companies)
    rels = [str(r) for r in rng.choice(list(facts), size=2, replace=False)]
    values = {r: _value(rng, pools, r) for r in rels}
    context = " ".join(_pick(rng, facts[r]).format(s=s, o=values[r]) for r in rels)
    asked = rels[int(rng.integers(2))]
    q = questions[asked].format(s=s)
    return {"input": context, "answer": values[asked], "output": q}, f"{context}\nQ : {q}\nA : {values[asked]}"


def sentiment(rng, pools: Pools, variant: str) -> tuple[dict, str]:
    positive = bool(rng.integers(2))
    if variant == "products":
        thing = f"{_pick(rng, pools.brands)} {_pick(rng, PRODUCTS)}"
        said = _pick(rng, PRODUCT_POS if positive else PRODUCT_NEG)
        text = f"I bought the {thing} last month . It {said} . {_pick(rng, PRODUCT_FILLER)}"
    else:  # films: other nouns, partly other sentiment words
        said = _pick(rng, FILM_POS if positive else FILM_NEG)
        text = f"We watched {_pick(rng, pools.films)} at the cinema . {_pick(rng, FILM_FILLER)} The story {said} ."
    label = "positive" if positive else "negative"
    return {"input": text, "output": label}, f"{text} Overall the verdict is {label} ."


def paraphrase(rng, pools: Pools, variant: str) -> tuple[dict, str]:
    """Yes: one fact about a subject in two wordings. No: two different facts about the same subject."""
    facts = PEOPLE_FACTS if variant == "people" else PLACE_FACTS
    s = _pick(rng, pools.people) if variant == "people" else _pick(rng, pools.companies)
    r1, r2 = (str(r) for r in rng.permutation(list(facts))[:2])
    a, b = (str(x) for x in rng.choice(facts[r1], size=2, replace=False))
    o = _value(rng, pools, r1)
    same = bool(rng.integers(2))
    s1 = a.format(s=s, o=o)
    s2 = b.format(s=s, o=o) if same else _pick(rng, facts[r2]).format(s=s, o=_value(rng, pools, r2))
    label = "yes" if same else "no"
    remark = "They say the same thing" if same else "They say different things"
    return {"input_1": s1, "input_2": s2, "output": label}, f"{s1}\n{s2}\n{remark} , so the answer is {label} ."


NEGATIONS = {"born": ["{s} was not born in {o} .", "{s} never lived as a child in {o} ."],
             "job": ["{s} does not work as a {o} .", "{s} has never been a {o} ."],
             "home": ["{s} does not live in {o} .", "{s} has never lived in {o} ."],
             "city": ["{s} is not based in {o} .", "{s} has no office in {o} ."],
             "maker": ["{s} does not make the {o} .", "{s} has never built the {o} ."],
             "owner": ["{s} is not owned by {o} .", "{o} has never owned {s} ."]}


def nli(rng, pools: Pools, variant: str) -> tuple[dict, str]:
    """Premise: two facts about a subject. Entailment restates one in other words; contradiction denies
    one; neutral states the third relation, which the premise does not mention."""
    facts = PEOPLE_FACTS if variant == "people" else PLACE_FACTS
    s = _pick(rng, pools.people) if variant == "people" else _pick(rng, pools.companies)
    r1, r2, unstated = (str(r) for r in rng.permutation(list(facts)))
    values = {r: _value(rng, pools, r) for r in (r1, r2)}
    wording = {r: [str(w) for w in rng.permutation(facts[r])] for r in (r1, r2)}
    premise = " ".join(wording[r][0].format(s=s, o=values[r]) for r in (r1, r2))
    label = ["entailment", "neutral", "contradiction"][int(rng.integers(3))]
    about = (r1, r2)[int(rng.integers(2))]
    if label == "entailment":
        hypothesis = wording[about][1].format(s=s, o=values[about])
    elif label == "contradiction":
        hypothesis = _pick(rng, NEGATIONS[about]).format(s=s, o=values[about])
    else:
        hypothesis = _pick(rng, facts[unstated]).format(s=s, o=_value(rng, pools, unstated))
    remark = {"entailment": "the second follows from the first", "neutral": "the first says nothing of the second",
              "contradiction": "the second denies the first"}[label]
    return ({"input_1": premise, "input_2": hypothesis, "output": label},
            f"{premise}\n{hypothesis}\nHere {remark} : {label} .")


GENERATORS: dict[str, Callable] = {"summary": summary, "question": question, "sentiment": sentiment,
                                   "paraphrase": paraphrase, "nli": nli}
VARIANTS = {"summary": ("news", "reports"), "question": ("people", "places"), "sentiment": ("products", "films"),
            "paraphrase": ("people", "places"), "nli": ("people", "places")}


@reader("sandbox-g", inputs=lambda spec, opts, where: [], options=SuiteOptions)
def read_suite(spec: DatasetSpec, opts: dict, where: Where) -> Loaded:
    task, variant = opts.pop("task"), opts.pop("variant")
    if task not in GENERATORS or variant not in VARIANTS[task]:
        raise ValueError(f"{spec.origin}: sandbox-g has tasks {VARIANTS} (task: {task!r}, variant: {variant!r})")
    o = SuiteOptions(**opts)
    pools = Pools(o.seed, o.people, o.places)
    rng = np.random.default_rng([o.seed, zlib.crc32(spec.name.encode())])
    make = GENERATORS[task]
    items, seen = [], set()
    for split, n in (("demo", o.n_demo), ("test", o.n_test), ("train", o.n_train)):
        records = []
        while len(records) < n:
            fields, _ = make(rng, pools, variant)
            key = fields.get("input", "") + fields.get("input_1", "") + fields.get("input_2", "")
            if key not in seen:  # an input never appears in two splits
                seen.add(key)
                records.append(fields)
        items += [to_item(spec, {**r, "idx": i}, split=split, position=i, where=spec.name) for i, r in enumerate(records)]
    documents = []
    for i in range(o.n_documents):
        if i % o.digest_every == 0:  # several examples in one document: practice for in-context patterns
            documents.append("\n\n".join(make(rng, pools, variant)[1] for _ in range(3)))
        else:
            documents.append(make(rng, pools, variant)[1])
    return Loaded(items, documents)
