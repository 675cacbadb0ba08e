"""The sandbox world: a seeded generator of fictional facts over the 24 relations, and a pretraining
corpus in which each fact is stated a controlled number of times.

Exposure is known per fact, so mastery scores can be checked against ground truth. Scored facts
never appear in question form in the corpus; separate "format" facts do (a few phrasings each),
which teaches the model to answer questions from facts it only read as statements.
"""

from dataclasses import dataclass

import numpy as np

from ftscope.data.relations import RELATIONS

_ONSETS = "b c d f g h j k l m n p r s t v w z br dr gr kr pl st tr th sh ch".split()
_VOWELS = "a e i o u ai ea ou io".split()
_CODAS = ["", "", "n", "r", "l", "s", "th", "x", "nd", "m"]

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


@dataclass(frozen=True)
class World:
    """Scored items, the pretraining documents, and the seed that made them."""
    items: list[dict]  # item_id, relation, subject, question, answers, split, domain, exposure
    documents: list[str]


class _Names:
    """Fresh, unique capitalised words from a seeded syllable generator."""

    def __init__(self, rng: np.random.Generator):
        self.rng, self.used = rng, set()

    def word(self) -> str:
        while True:
            n = self.rng.integers(2, 4)
            w = "".join(self.rng.choice(_ONSETS) + self.rng.choice(_VOWELS) for _ in range(n))
            w = (w + self.rng.choice(_CODAS)).capitalize()
            if w not in self.used:
                self.used.add(w)
                return w

    def pool(self, n: int) -> list[str]:
        return [self.word() for _ in range(n)]


def build_world(*, seed: int, facts_per_id_relation: int, facts_per_ood_relation: int,
                format_facts_per_relation: int, exposures: list[int], format_exposure: int,
                format_questions: int, test_fraction: float, n_cities: int, n_countries: int,
                n_people: int, id_relations: list[str]) -> World:
    """Generate the world. Every fact has a fresh subject; answers come from shared pools."""
    rng = np.random.default_rng(seed)
    names = _Names(rng)
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
    for pid, rel in RELATIONS.items():
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
                              "question": rel.questions[0].format(s=s), "answers": [o], "split": split,
                              "domain": "id" if in_domain else "ood", "exposure": times})
            else:
                for q in rng.choice(len(rel.questions), size=format_questions, replace=False):
                    documents.append(qa_document(rel.questions[q].format(s=s), o))
    order = rng.permutation(len(documents))
    return World(items=items, documents=[documents[i] for i in order])


def qa_document(question: str, answer: str) -> str:
    """The question-answer shape the sandbox model learns; prompts.SANDBOX_TEMPLATE matches it."""
    return f"Question: {question}\nAnswer: {answer}"
