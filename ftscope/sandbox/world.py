"""The sandbox world of Study K: a seeded generator of fictional facts over the relations of a CBQA
description (sandbox-k.yaml), and a pretraining corpus in which each fact is stated a controlled
number of times.

Exposure is known per fact, so mastery scores can be checked against ground truth. Scored facts
never appear in question form in the corpus; separate "format" facts do (a few phrasings each),
which teaches the model to answer questions from facts it only read as statements.
"""

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ftscope.datasets.readers import Loaded, Where, reader
from ftscope.datasets.spec import DatasetSpec
from ftscope.sandbox.names import Names

# Closed answer sets, like the real ones (few occupations, many cities).
OCCUPATIONS = ("baker lawyer painter sculptor farmer sailor surgeon teacher poet architect carpenter "
               "weaver chemist astronomer merchant banker jeweler potter blacksmith librarian "
               "engineer pilot dancer composer actor").split()
GENRES = "jazz blues rock folk punk reggae opera techno soul funk metal disco gospel ska swing".split()
POSITIONS = ("goalkeeper striker defender midfielder winger pitcher catcher shortstop guard "
             "forward center").split()
# Suffixes that make a fresh name into an entity of a type (subjects are always fresh).
_SUFFIX = {"landmark": ["Tower", "Bridge", "Castle", "Park", "Gate"], "company": ["Corp", "Industries", "Works"],
           "book": ["Chronicles", "Saga", "Letters"], "character": ["the Brave", "the Sly"],
           "song": ["Serenade", "Anthem", "Ballad"], "product": ["Engine", "Phone", "Lamp"],
           "event": ["Festival", "Fair", "Games"], "work": ["Tapestry", "Opera", "Film"],
           "artist": ["Band", "Trio", "Collective"], "university": ["University", "Academy"],
           "label": ["Records", "Music"]}


class WorldOptions(BaseModel):
    """Size and exposure spread of the generated world (options of source format `sandbox-k`)."""
    model_config = ConfigDict(extra="forbid")
    seed: int = 0
    facts_per_id_relation: int = Field(300, gt=0)
    facts_per_ood_relation: int = Field(40, gt=0)
    format_facts_per_relation: int = Field(40, ge=0)
    exposures: list[int] = Field(default_factory=lambda: [0, 0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32])
    format_exposure: int = Field(8, ge=1)
    format_questions: int = Field(3, ge=1, le=21)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    n_cities: int = Field(300, ge=10)
    n_countries: int = Field(60, ge=5)
    n_people: int = Field(150, ge=10)

    @field_validator("exposures")
    @classmethod
    def _nonneg(cls, v):
        if not v or min(v) < 0:
            raise ValueError("exposures must be a non-empty list of counts >= 0")
        return v


@reader("sandbox-k", inputs=lambda spec, opts, where: [], options=WorldOptions)
def read_world(spec: DatasetSpec, opts: dict, where: Where) -> Loaded:
    id_relations = opts.pop("id_relations", None) or spec.groups.get("id", [])
    options = WorldOptions(**{k: v for k, v in opts.items()})
    world = build_world(spec, **options.model_dump(), id_relations=list(id_relations))
    return Loaded(world.items, world.documents)


@dataclass(frozen=True)
class World:
    """Scored items, the pretraining documents, and the seed that made them."""
    items: list[dict]  # item_id, relation, subject, question, answers, split, domain, exposure
    documents: list[str]


def build_world(spec: DatasetSpec, *, seed: int, facts_per_id_relation: int, facts_per_ood_relation: int,
                format_facts_per_relation: int, exposures: list[int], format_exposure: int,
                format_questions: int, test_fraction: float, n_cities: int, n_countries: int,
                n_people: int, id_relations: list[str]) -> World:
    """Generate the world. Every fact has a fresh subject; answers come from shared pools."""
    rng = np.random.default_rng(seed)
    names = Names(rng)
    first, last = names.pool(n_people), names.pool(n_people)
    pools = {
        "city": names.pool(n_cities), "country": names.pool(n_countries),
        "occupation": list(OCCUPATIONS), "genre": list(GENRES), "position": list(POSITIONS),
        "language": [w + "ish" for w in names.pool(24)],
        "person": [f"{a} {b}" for a, b in zip(rng.permutation(first), rng.permutation(last))],
    }
    for typ in ("company", "university", "label", "artist", "book"):
        pools[typ] = [f"{names.word()} {rng.choice(_SUFFIX[typ])}" for _ in range(max(40, n_cities // 4))]
    used_people = set(pools["person"])

    def subject(typ: str) -> str:
        if typ in ("person", "athlete"):
            while True:
                p = f"{rng.choice(first)} {rng.choice(last)}"
                if p not in used_people:
                    used_people.add(p)
                    return p
        if typ == "country":
            return names.word()
        return f"{names.word()} {rng.choice(_SUFFIX[typ])}"

    items, documents = [], []
    for pid, rel in spec.subsets.items():
        questions = spec.phrasings(pid)
        in_domain = pid in id_relations
        n_scored = facts_per_id_relation if in_domain else facts_per_ood_relation
        for k in range(n_scored + format_facts_per_relation):
            s, o = subject(rel.subject_type), str(rng.choice(pools[rel.answer_type]))
            scored = k < n_scored
            times = int(rng.choice(exposures)) if scored else format_exposure
            for _ in range(times):
                documents.append(str(rng.choice(rel.statements)).format(s=s, o=o))
            if scored:
                split = "test" if (not in_domain or rng.random() < test_fraction) else "train"
                items.append({"item_id": f"{pid}:{s}", "relation": pid, "subject": s,
                              "question": questions[0].format(s=s), "answers": [o], "split": split,
                              "domain": "id" if in_domain else "ood", "exposure": times})
            else:
                for q in rng.choice(len(questions), size=format_questions, replace=False):
                    documents.append(qa_document(questions[q].format(s=s), o))
    order = rng.permutation(len(documents))
    return World(items=items, documents=[documents[i] for i in order])


def qa_document(question: str, answer: str) -> str:
    """The question-answer shape the sandbox model learns; the template of entityquestions.yaml matches it."""
    return f"Question: {question}\nAnswer: {answer}"
