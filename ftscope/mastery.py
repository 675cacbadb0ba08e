"""Knowledge mastery R_M^k of Study K: the share of N_map phrasings x N_sample samples whose output
contains the gold answer, and the five levels it falls into."""

import math

from ftscope.config import MasteryConfig, PromptConfig
from ftscope.data.normalize import contains_answer
from ftscope.data.prompts import build_prompt
from ftscope.data.relations import RELATIONS
from ftscope.generate import generate

LEVEL_EDGES = (0.25, 0.5, 0.75)


def mastery_level(r: float) -> int:
    """0: R = 0; 1: 0 < R <= .25; 2: .25 < R <= .5; 3: .5 < R <= .75; 4: .75 < R <= 1."""
    if r <= 0:
        return 0
    return 1 + sum(r > e + 1e-12 for e in LEVEL_EDGES)


def phrasings(item: dict, n_map: int) -> list[str]:
    return [q.format(s=item["subject"]) for q in RELATIONS[item["relation"]].questions[:n_map]]


def score_mastery(model, tokenizer, items: list[dict], prompt: PromptConfig, cfg: MasteryConfig,
                  seed: int = 0) -> list[dict]:
    """One row per item: R, its level, and the counts behind it."""
    prompts = [build_prompt(q, prompt, tokenizer) for it in items for q in phrasings(it, cfg.n_map)]
    samples = generate(model, tokenizer, prompts, max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size,
                       num_samples=cfg.n_sample, temperature=cfg.temperature, seed=seed)
    rows = []
    for i, it in enumerate(items):
        outs = samples[i * cfg.n_map:(i + 1) * cfg.n_map]
        hits = sum(contains_answer(o, it["answers"]) for per_q in outs for o in per_q)
        r = hits / (cfg.n_map * cfg.n_sample)
        rows.append({"item_id": it["item_id"], "relation": it["relation"], "split": it["split"],
                     "domain": it["domain"], "exposure": it["exposure"], "hits": hits, "r": r,
                     "level": mastery_level(r)})
    assert not math.isnan(sum(r["r"] for r in rows))
    return rows
