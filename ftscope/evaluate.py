"""CBQA accuracy of Study K: greedy decoding, normalised containment in the first line, reported
per test split (ID, OOD), overall (test_level = -1) and per test mastery level."""

from collections import defaultdict

from ftscope.config import EvalConfig, PromptConfig
from ftscope.data.normalize import contains_answer
from ftscope.data.prompts import build_prompt
from ftscope.generate import generate

ALL_LEVELS = -1


def answer_questions(model, tokenizer, items: list[dict], prompt: PromptConfig, cfg: EvalConfig) -> list[bool]:
    prompts = [build_prompt(it["question"], prompt, tokenizer) for it in items]
    outs = generate(model, tokenizer, prompts, max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size)
    return [contains_answer(o[0], it["answers"]) for o, it in zip(outs, items)]


def accuracy_rows(items: list[dict], correct: list[bool], levels: dict[str, int]) -> list[dict]:
    """One row per (split, test level) and per split overall."""
    groups: dict[tuple[str, int], list[bool]] = defaultdict(list)
    for it, ok in zip(items, correct):
        split = f"{it['domain']}_test"
        groups[(split, ALL_LEVELS)].append(ok)
        groups[(split, levels[it["item_id"]])].append(ok)
    return [{"split": split, "test_level": lvl, "n_items": len(v), "n_correct": sum(v), "accuracy": sum(v) / len(v)}
            for (split, lvl), v in sorted(groups.items())]
