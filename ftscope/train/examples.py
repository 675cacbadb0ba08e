"""Supervised examples: prompt tokens masked out of the loss, target tokens and the end of the answer kept (EOS,
or the end-of-turn token of a chat template)."""

from ftscope import prefix
from ftscope.prompts import Prompter, encode_answered, end_of_answer


def build_examples(items: list[dict], prompter: Prompter, tokenizer, max_length: int,
                   demos: list[dict] = (), prompt_map: int = 0) -> list[dict]:
    """One example per item: its prompt (after `demos`, FTICL) followed by its target and EOS. Too long
    an example keeps its end (the target), losing the start of the prompt. With `demos`, each example also says
    how many leading tokens all share before any supervised one (`shared`): training computes them once per batch
    (ftscope/prefix.py)."""
    examples, end, unsupervised = [], end_of_answer(tokenizer, prompter.prompt.style), []
    for p_ids, a_ids in encode_answered(tokenizer, prompter, items, prompt_map, demos):
        a_ids = a_ids + [end]
        ids = (p_ids + a_ids)[-max_length:]
        n_answer = min(len(a_ids), len(ids))
        examples.append({"input_ids": ids, "labels": [-100] * (len(ids) - n_answer) + ids[-n_answer:]})
        unsupervised.append(len(ids) - n_answer)
    if demos and examples:
        # the token after the prefix must be unsupervised too: the prefix's last logit, which predicts it, is not kept
        shared = min(prefix.common_length([e["input_ids"] for e in examples]), min(unsupervised) - 1)
        if shared > 0:
            for e in examples:
                e["shared"] = shared
    return examples


def cell_examples(run, shots: int = 0, prompt_map: int = 0) -> list[dict]:
    """Tokenized training examples of the items the cell (`run`: ftscope.cell.CellRun) picked for its recipe,
    each after the first `shots` demonstrations of the training set's pool (FTICL)."""
    if run.training is None:
        raise ValueError(f"method {run.cell.method} asks for training examples but its recipe does not say it "
                         f"trains: register it with Recipe(..., trains=True)")
    items, dataset = run.training
    demos = dataset.demos[:shots]
    if len(demos) < shots:
        raise ValueError(f"{shots} demonstrations asked but dataset {dataset.name} has {len(demos)} in its pool")
    return build_examples(items, run.prompter(dataset), run.tokenizer, run.cfg.train.max_length, demos,
                          prompt_map)
