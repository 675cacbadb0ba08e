"""Supervised examples: prompt tokens masked out of the loss, answer tokens and EOS kept."""

from ftscope.config import PromptConfig
from ftscope.data.prompts import build_prompt, build_target


def build_examples(items: list[dict], prompt: PromptConfig, tokenizer, max_length: int) -> list[dict]:
    examples = []
    for it in items:
        p = build_prompt(it["question"], prompt, tokenizer)
        p_ids = tokenizer(p, add_special_tokens=prompt.style != "chat")["input_ids"]
        a_ids = tokenizer(build_target(p, it["answers"][0]), add_special_tokens=False)["input_ids"]
        a_ids = a_ids + [tokenizer.eos_token_id]
        ids = (p_ids + a_ids)[-max_length:]
        n_answer = min(len(a_ids), len(ids))
        examples.append({"input_ids": ids, "labels": [-100] * (len(ids) - n_answer) + ids[-n_answer:]})
    return examples
