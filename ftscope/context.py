"""Does every prompt fit the model? Each prompt a study will give a model, with its demonstrations and the
longest answer it may read or write, measured with the model's own tokenizer against the positions the model
has (max_position_embeddings). Checked by `validate` where the tokenizer is at hand (a local checkpoint, a GGUF
file, a pretrained sandbox model in the cache), and by the study flow once every base model exists, before
any model is prepared: a prompt that does not fit is refused with its length and the limit."""

import json
from dataclasses import dataclass
from pathlib import Path

from ftscope.prompts import Prompter, end_of_answer


@dataclass(frozen=True)
class PromptCase:
    """One prompt of a study: `item` of `dataset` under `prompt_map` after `demos`; then either `room` generated
    tokens, or (room None) the item's target and the end of the answer (training, teacher-forced KL)."""
    what: str
    dataset: object
    item: dict
    prompt_map: int = 0
    demos: tuple = ()
    room: int | None = None
    cap: int | None = None  # training keeps at most this many tokens (train.max_length)


def positions(path: str) -> int | None:
    """The positions a local checkpoint reads (its config's max_position_embeddings), or None."""
    config = Path(path) / "config.json"
    if not config.is_file():
        return None
    c = json.loads(config.read_text())
    c = c.get("text_config", c)
    return c.get("max_position_embeddings") or c.get("n_positions") or c.get("max_sequence_length")


def longest(cases, model, tokenizer) -> tuple[int, str]:
    """(tokens, what) of the longest of `cases` for one model, prompt plus what follows it. The texts are
    tokenized in two batches (a paper-scale plan has hundreds of thousands of prompts)."""
    style, end = model.prompt.style, [end_of_answer(tokenizer, model.prompt.style)]
    prompters: dict[int, Prompter] = {}
    cases, texts, follows = list(cases), [], []
    for case in cases:
        prompter = prompters.setdefault(id(case.dataset), Prompter(case.dataset.spec, model.prompt, tokenizer))
        texts.append(text := prompter.text(case.item, case.prompt_map, list(case.demos)))
        follows.append("" if case.room is not None else prompter.continuation(text, prompter.target(case.item)))
    if not cases:
        return 0, ""
    prompt = tokenizer(texts, add_special_tokens=style != "chat")["input_ids"]  # as prompts.encode, batched
    after = tokenizer(follows, add_special_tokens=False)["input_ids"]
    best, what = 0, ""
    for case, ids, more in zip(cases, prompt, after):
        n = len(ids) + (case.room if case.room is not None else len(more) + len(end))
        if case.cap is not None:
            n = min(n, case.cap)
        if n > best:
            best, what = n, case.what
    return best, what


def at_hand(model, checkpoint: str | None):
    """(tokenizer, positions) of a model without building it, or None: from its local checkpoint, or from the
    header of its GGUF file before it is converted."""
    from ftscope import gguf  # deferred: as below
    from ftscope.models import load_tokenizer  # deferred: transformers takes seconds to import

    if checkpoint is not None and (limit := positions(checkpoint)):
        return load_tokenizer(checkpoint, model.trust_remote_code), limit
    if model.path and gguf.is_gguf(model.path) and gguf.problem(model.path) is None:
        return gguf.tokenizer(model.path), gguf.positions(model.path)
    return None


def problems(cfg, study, data, checkpoints: dict[str, str | None]) -> list[str]:
    """For each model whose tokenizer is at hand (`checkpoints`: model name -> local checkpoint or None), the
    longest prompt of the study if it does not fit the model's positions."""
    out = []
    cases = list(study.checks.prompt_cases(cfg, data))
    for m in cfg.models:
        hand = at_hand(m, checkpoints.get(m.name)) if cases else None
        if hand is None or hand[1] is None:
            continue
        tokenizer, limit = hand
        try:
            n, what = longest(cases, m, tokenizer)
        except ValueError as e:  # a chat prompt style without a chat template: said elsewhere
            out.append(f"models.{m.name}.prompt: {e}")
            continue
        if n > limit:
            out.append(f"models.{m.name}: the longest prompt with its answer is {n:,} tokens ({what}) but the model "
                       f"reads at most {limit:,} positions; give fewer demonstrations (eval.shots, fticl.shots), fewer "
                       f"new tokens (eval.max_new_tokens), or a model with a longer context")
    return out
