"""Knowledge mastery R_M^k of Study K: the share of N_map phrasings x N_sample samples whose output
contains the gold answer, and the five levels it falls into."""

import logging

from pydantic import BaseModel, ConfigDict, Field

from ftscope import generation
from ftscope.faults import kill_point
from ftscope.metrics import contains
from ftscope.progress import Progress
from ftscope.prompts import Prompter, encode

LEVEL_EDGES = (0.25, 0.5, 0.75)
log = logging.getLogger("ftscope.mastery")


class MasteryConfig(BaseModel):
    """Study K's `mastery:` section."""
    model_config = ConfigDict(extra="forbid")
    n_map: int = Field(21, ge=1, description="phrasings per fact (at most the dataset's stems x framings)")
    n_sample: int = Field(10, ge=1)
    temperature: float = Field(0.7, gt=0)
    max_new_tokens: int = Field(8, gt=0)
    seed: int = Field(0, description="with the item id and the phrasing, seeds each prompt's samples")


def mastery_level(r: float) -> int:
    """0: R = 0; 1: 0 < R <= .25; 2: .25 < R <= .5; 3: .5 < R <= .75; 4: .75 < R <= 1."""
    if r <= 0:
        return 0
    return 1 + sum(r > e + 1e-12 for e in LEVEL_EDGES)


def phrasings(prompter: Prompter, item: dict, n_map: int) -> list[str]:
    return [q.format(s=item["subject"]) for q in prompter.spec.phrasings(item["relation"])[:n_map]]


def score_mastery(engine, tokenizer, items: list[dict], prompter: Prompter, cfg,
                  progress: Progress | None = None) -> list[dict]:
    """One row per item: R, its level, and the counts behind it. Each (item, phrasing) samples with its
    own seed, so an item's R does not depend on the other items scored with it, or their order."""
    asked = [phrasings(prompter, it, cfg.n_map) for it in items]
    texts = [prompter.text({**it, "question": q}) for it, qs in zip(items, asked) for q in qs]
    seeds = [generation.prompt_seed(cfg.seed, it["item_id"], i) for it, qs in zip(items, asked) for i in range(len(qs))]
    if progress:
        progress.phase("mastery", total=len(texts), unit="prompts")
    samples = engine.generate([encode(tokenizer, t, prompter.prompt.style) for t in texts],
                              max_new_tokens=cfg.max_new_tokens, num_samples=cfg.n_sample, temperature=cfg.temperature,
                              seeds=seeds, stop=prompter.spec.generation.stop, progress=progress and progress.counter())
    kill_point("mastery")
    rows, start = [], 0
    for it, qs in zip(items, asked):
        outs, start = samples[start:start + len(qs)], start + len(qs)
        hits = int(sum(contains(o, prompter.golds(it)) for per_q in outs for o in per_q))
        r = hits / (len(qs) * cfg.n_sample)
        rows.append({"item_id": it["item_id"], "relation": it["relation"], "split": it["split"],
                     "domain": it["domain"], "exposure": it["exposure"], "hits": hits, "r": r,
                     "level": mastery_level(r), "n_map": len(qs)})
    return rows
