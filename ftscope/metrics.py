"""The metrics a dataset can name. A generation metric scores a decoded answer against the gold
answers; `label_prob` is scored from the next-token probabilities of the label words instead
(ftscope/evaluate.py), so its score is simply whether the predicted label is the gold one.

Register another with `register(Metric(...))` in a plug-in; a dataset then names it.
"""

import re
import string
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from ftscope.registry import Registry

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans({c: " " for c in string.punctuation})


def normalize(text: str) -> str:
    """SQuAD-style: fold accents (NFKD, combining marks dropped), lower-case, drop punctuation and
    articles, collapse whitespace. 'Brasília' and 'Brasilia' normalise alike."""
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    text = _ARTICLES.sub(" ", text.lower().translate(_PUNCT))
    return " ".join(text.split())


def contains(prediction: str, golds: list[str]) -> float:
    """1 if any normalised gold answer is a substring of the normalised prediction (Study K)."""
    out = normalize(prediction)
    return float(any(g in out for g in map(normalize, golds) if g))


def exact_match(prediction: str, golds: list[str]) -> float:
    out = normalize(prediction)
    return float(any(out == normalize(g) for g in golds if normalize(g)))


@lru_cache(maxsize=1)
def _rouge():
    from rouge_score import rouge_scorer  # deferred: rouge-score pulls in nltk; only generation tasks need it

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l(prediction: str, golds: list[str]) -> float:
    """ROUGE-L F-measure (rouge-score), the best over the gold references (Study G generation)."""
    return max(_rouge().score(g, prediction)["rougeL"].fmeasure for g in golds)


def label_match(prediction: str, golds: list[str]) -> float:
    return float(prediction == golds[0])


@dataclass(frozen=True)
class Metric:
    """What the reports and `validate` need to know of a metric, so that none of them knows one by name."""
    name: str
    predict: Literal["generate", "label_prob"]  # how the prediction is made: decoded text, or the likeliest label
    score: Callable[[str, list[str]], float]
    proportion: bool  # every score is 0 or 1 (Wilson intervals apply); else bootstrap over items
    fits: tuple[str, ...] = ()  # the dataset types it can score; () = what its prediction kind can

    @property
    def types(self) -> tuple[str, ...]:
        return self.fits or (("classification",) if self.predict == "label_prob" else ("cbqa", "generation"))


def register(metric: Metric) -> Metric:
    return METRICS.register(metric.name, metric)


METRICS: Registry[Metric] = Registry("metric")
for _m in (Metric("contains", "generate", contains, True), Metric("exact_match", "generate", exact_match, True),
           Metric("rouge_l", "generate", rouge_l, False, ("generation",)),
           Metric("label_prob", "label_prob", label_match, True)):
    register(_m)
