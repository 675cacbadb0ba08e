"""Answer matching as Study K defines it: normalised gold contained in the model's output."""

import re
import string

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans({c: " " for c in string.punctuation})


def normalize(text: str) -> str:
    """Lower-case, drop punctuation and articles, collapse whitespace (SQuAD-style)."""
    text = _ARTICLES.sub(" ", text.lower().translate(_PUNCT))
    return " ".join(text.split())


def contains_answer(output: str, answers: list[str]) -> bool:
    """True if any normalised gold answer is a substring of the normalised output."""
    out = normalize(output)
    return any(g in out for g in map(normalize, answers) if g)
