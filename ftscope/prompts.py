"""From an item to the text a model reads, and the target it should write.

Two layers: the dataset's template (one per prompt map) fills the item's fields; the model's prompt
style then wraps that text as is (`raw`), after a fixed prefix (`few_shot`) or in the tokenizer's
chat template (`chat`). Demonstrations, as in Study G's official code, are each the filled template,
the target and a blank line, before the test prompt.
"""

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

from ftscope.datasets import Dataset
from ftscope.datasets.spec import DatasetSpec, placeholders


class PromptConfig(BaseModel):
    """How a model is prompted (a model entry's `prompt:`). `template` replaces the dataset's own
    templates for this model (any of the item's fields as placeholders)."""
    model_config = ConfigDict(extra="forbid")
    style: Literal["raw", "few_shot", "chat"] = "raw"
    template: str | None = None
    few_shot_prefix: str = ""


def fill(template: str, item: dict, where: str = "") -> str:
    try:
        return template.format_map(item)
    except (KeyError, IndexError) as e:
        raise KeyError(f"template {template!r} needs field {e} which item {item.get('item_id', '?')} "
                       f"{where}lacks (fields: {sorted(item)})") from None


class Prompter:
    """The prompts and targets of one dataset for one model."""

    def __init__(self, spec: DatasetSpec, prompt: PromptConfig, tokenizer=None):
        self.spec, self.prompt, self.tokenizer = spec, prompt, tokenizer

    def template(self, prompt_map: int = 0) -> str:
        if self.prompt.template is not None:
            return self.prompt.template
        if not 0 <= prompt_map < len(self.spec.templates):
            raise ValueError(f"dataset {self.spec.name} has {len(self.spec.templates)} prompt maps, not {prompt_map + 1}")
        return self.spec.templates[prompt_map]

    def golds(self, item: dict) -> list[str]:
        value = item[self.spec.target]
        return list(value) if isinstance(value, list) else [value]

    def target(self, item: dict) -> str:
        """What the model is trained to write (the first gold answer, the label word, the output)."""
        return self.golds(item)[0]

    def separator(self, prompt_text: str) -> str:
        if self.spec.target_sep != "auto":
            return self.spec.target_sep
        return "" if prompt_text[-1:].isspace() else " "

    def demonstrations(self, demos: list[dict], prompt_map: int = 0) -> str:
        out = ""
        for d in demos:
            body = fill(self.template(prompt_map), d, "(a demonstration) ")
            out += body + self.separator(body) + self.target(d) + "\n\n"
        return out

    def text(self, item: dict, prompt_map: int = 0, demos: list[dict] = ()) -> str:
        """The full prompt: demonstrations, then the filled template, in the model's prompt style."""
        body = self.demonstrations(list(demos), prompt_map) + fill(self.template(prompt_map), item)
        if self.prompt.style == "raw":
            return body
        if self.prompt.style == "few_shot":
            return self.prompt.few_shot_prefix + body
        if self.tokenizer is None or not getattr(self.tokenizer, "chat_template", None):
            raise ValueError("prompt.style 'chat' needs a tokenizer with a chat template; use 'raw' or 'few_shot'")
        return self.tokenizer.apply_chat_template([{"role": "user", "content": body}], tokenize=False,
                                                  add_generation_prompt=True)

    def continuation(self, prompt_text: str, target: str) -> str:
        """The supervised (or teacher-forced) continuation of a prompt."""
        return self.separator(prompt_text) + target


def end_of_answer(tokenizer, style: str = "raw") -> int:
    """The token that ends a supervised answer: EOS, or in a chat the token the template closes an assistant turn
    with (<|im_end|>, <|eot_id|>: not always the tokenizer's EOS)."""
    if style != "chat":
        return tokenizer.eos_token_id
    marker = "ftscope-answer-7q"
    text = tokenizer.apply_chat_template([{"role": "user", "content": "?"}, {"role": "assistant", "content": marker}],
                                         tokenize=False)
    after = tokenizer(text.split(marker, 1)[-1], add_special_tokens=False)["input_ids"]
    return after[0] if after and after[0] in tokenizer.all_special_ids else tokenizer.eos_token_id


def encode(tokenizer, text: str, style: str = "raw") -> list[int]:
    """Prompt token ids: with the tokenizer's special tokens (BOS), except that a chat template already
    wrote its own."""
    return tokenizer(text, add_special_tokens=style != "chat")["input_ids"]


def encode_all(tokenizer, texts: list[str], style: str = "raw") -> list[list[int]]:
    """`encode` of many texts in one call of the tokenizer, which is several times faster than a call each (the
    same ids)."""
    return tokenizer(list(texts), add_special_tokens=style != "chat")["input_ids"] if texts else []


def encode_answered(tokenizer, prompter: Prompter, items: list[dict], prompt_map: int = 0,
                    demos: list[dict] = ()) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, target ids) of each item: its prompt, and its target as the prompt's continuation (what
    training supervises and KL teacher-forces)."""
    if not items:
        return []
    prompts = [prompter.text(it, prompt_map, demos) for it in items]
    targets = [prompter.continuation(p, prompter.target(it)) for p, it in zip(prompts, items)]
    return list(zip(encode_all(tokenizer, prompts, prompter.prompt.style),
                    tokenizer(targets, add_special_tokens=False)["input_ids"]))


def template_words(templates: list[str]) -> str:
    """The fixed words of templates (placeholders dropped, one line), for a word-level vocabulary."""
    return " ".join(re.sub(r"\{[^{}]*\}", "", t).replace("\n", " ").strip() for t in templates).strip()


def dataset_texts(ds: Dataset):
    """Every string a prompt or target of this dataset can hold: what a word-level vocabulary needs."""
    spec = ds.spec
    if spec.type == "cbqa":
        for it in ds.items:
            for q in (spec.phrasings(it["relation"]) if it.get("relation") in spec.subsets else [it["question"]]):
                yield q.format(s=it.get("subject", ""))
            yield from it[spec.target]
        yield template_words(spec.templates + [f for f in spec.framings if f != "{q}"])
        return
    fields = set().union(*(placeholders(t) for t in spec.templates)) | {spec.target}
    for it in ds.items:
        for f in sorted(fields):
            if isinstance(it.get(f), str):
                yield it[f]
    yield template_words(spec.templates)
    yield " ".join(spec.labels or [])


def prompt_problems(models, ds) -> list[str]:
    """A model's own prompt template may only use fields the dataset's items have."""
    have = set(ds.items[0]) if ds.items else set()
    return [f"models.{m.name}.prompt.template: {{{f}}} is not a field of {ds.name}'s items (fields: {sorted(have)})"
            for m in models if m.prompt.template for f in sorted(placeholders(m.prompt.template) - have)]
