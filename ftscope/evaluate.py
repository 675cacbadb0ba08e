"""Evaluating a model on a dataset's items: predictions (greedy decoding, or the label word with the
highest next-token probability), per-item scores by the dataset's metric, and the long rows of the
`metrics` and `scores` tables."""

from collections import defaultdict

from ftscope.metrics import METRICS
from ftscope.prompts import Prompter, encode, encode_all
from ftscope.records import Metric, Score, as_row


class LabelError(ValueError):
    """Label words a tokenizer cannot tell apart by their first token."""


def label_token_ids(tokenizer, prompter: Prompter, item: dict, prompt_map: int = 0) -> list[int]:
    """The first token of each label word as it would follow this item's prompt (derived from the
    tokenizer, never hard-coded). Two labels sharing a first token cannot be scored: LabelError."""
    prompt = prompter.text(item, prompt_map)
    p_ids = encode(tokenizer, prompt, prompter.prompt.style)
    ids = []
    for word in prompter.spec.labels:
        full = encode(tokenizer, prompt + prompter.continuation(prompt, word), prompter.prompt.style)
        if full[:len(p_ids)] == p_ids and len(full) > len(p_ids):
            ids.append(full[len(p_ids)])
        else:  # the tokenizer merged across the boundary: take the word's own first token
            ids.append(tokenizer(prompter.continuation(prompt, word), add_special_tokens=False)["input_ids"][0])
    if len(set(ids)) < len(ids):
        shared = [w for w, i in zip(prompter.spec.labels, ids) if ids.count(i) > 1]
        raise LabelError(f"dataset {prompter.spec.name}: label words {shared} begin with the same token for this "
                         f"tokenizer ({tokenizer.convert_ids_to_tokens(ids)}); choose label words that differ in "
                         f"their first token")
    return ids


def classify(engine, tokenizer, prompter: Prompter, items: list[dict], *, prompt_map: int = 0,
             demos: list[dict] = (), progress=None) -> list[str]:
    """The label word with the highest next-token probability at the first generated position."""
    if not items:
        return []
    label_ids = label_token_ids(tokenizer, prompter, items[0], prompt_map)
    prompts = encode_all(tokenizer, [prompter.text(it, prompt_map, demos) for it in items], prompter.prompt.style)
    logps = engine.label_logprobs(prompts, label_ids, progress=progress)
    return [prompter.spec.labels[max(range(len(row)), key=row.__getitem__)] for row in logps]


def predict(engine, tokenizer, prompter: Prompter, items: list[dict], *, prompt_map: int = 0,
            demos: list[dict] = (), max_new_tokens: int | None = None, progress=None) -> list[str]:
    """One prediction per item, as the dataset's metric wants it: the label word, or a greedy answer."""
    if METRICS.get(prompter.spec.metric).predict == "label_prob":
        return classify(engine, tokenizer, prompter, items, prompt_map=prompt_map, demos=demos, progress=progress)
    gen = prompter.spec.generation
    prompts = encode_all(tokenizer, [prompter.text(it, prompt_map, demos) for it in items], prompter.prompt.style)
    outs = engine.generate(prompts, max_new_tokens=max_new_tokens or gen.max_new_tokens, stop=gen.stop,
                           progress=progress)
    return [o[0] for o in outs]


def score(prompter: Prompter, items: list[dict], predictions: list[str]) -> list[float]:
    metric = METRICS.get(prompter.spec.metric)
    return [metric.score(p, prompter.golds(it)) for p, it in zip(predictions, items)]


def result_rows(cid: str, spec, metric: str, items: list[dict], values: list[float],
                domains: list[str], slices: list[str] | None = None, predictions: list[str] | None = None,
                prompt_map: int = 0, shots: int = 0) -> tuple[list[dict], list[dict]]:
    """(`metrics` rows, `scores` rows). Each item has a domain and a slice (Study K: 'level=2'); a
    metrics row aggregates a domain as a whole (slice 'all') and each slice of it."""
    slices = slices or ["all"] * len(items)
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for v, d, s in zip(values, domains, slices):
        groups[(d, "all")].append(v)
        if s != "all":
            groups[(d, s)].append(v)
    common = {"cell_id": cid, "task": spec.task, "dataset": spec.name, "prompt_map": prompt_map, "shots": shots,
              "metric": metric}
    metrics = [as_row(Metric(**common, domain=d, slice=s, n=len(v), total=float(sum(v)), value=sum(v) / len(v)))
               for (d, s), v in sorted(groups.items())]
    preds = predictions or [None] * len(items)
    scores = [as_row(Score(**common, domain=d, slice=s, item_id=it["item_id"], value=float(v),
                        prediction=None if p is None else p[:500]))
              for it, v, d, s, p in zip(items, values, domains, slices, preds)]
    return metrics, scores
