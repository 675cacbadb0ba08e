"""Supervised examples: prompt tokens masked out of the loss, target tokens and the end of the answer kept (EOS,
or the end-of-turn token of a chat template)."""

from ftscope.prompts import Prompter, encode, end_of_answer


def build_examples(items: list[dict], prompter: Prompter, tokenizer, max_length: int,
                   demos: list[dict] = (), prompt_map: int = 0) -> list[dict]:
    """One example per item: its prompt (after `demos`, FTICL) followed by its target and EOS. Too long
    an example keeps its end (the target), losing the start of the prompt."""
    examples, end = [], end_of_answer(tokenizer, prompter.prompt.style)
    for it in items:
        p = prompter.text(it, prompt_map, demos)
        p_ids = encode(tokenizer, p, prompter.prompt.style)
        a_ids = tokenizer(prompter.continuation(p, prompter.target(it)), add_special_tokens=False)["input_ids"]
        a_ids = a_ids + [end]
        ids = (p_ids + a_ids)[-max_length:]
        n_answer = min(len(a_ids), len(ids))
        examples.append({"input_ids": ids, "labels": [-100] * (len(ids) - n_answer) + ids[-n_answer:]})
    return examples
