"""Rows that begin with the same tokens compute them once. FTICL's training inputs and a k-shot test set's prompts
all begin with the same demonstrations (60-85% of their tokens in the Study G demo): one forward pass of that prefix,
its key/value cache repeated for every row of the batch, then each row's own tokens on top. The logits, loss and
gradients equal the full rows' up to float rounding (tests/test_prefix.py); the prefix's work is divided by the
batch size."""

import torch

WORTH = 16  # tokens: in generation and label scoring, a shorter common prefix (a template's first words, BOS) is
# not worth a pass of its own. Training shares what build_examples marks (FTICL's demonstrations), however short.


def common_length(rows: list[list[int]]) -> int:
    """How many tokens every row begins with, leaving each row at least one of its own."""
    shortest = min(map(len, rows)) - 1
    for i, column in enumerate(zip(*rows)):
        if i >= shortest or any(t != column[0] for t in column):
            return min(i, shortest)
    return max(shortest, 0)


def cache(model, prefix_ids: torch.Tensor, rows: int):
    """The key/value cache of `prefix_ids` ([1, n]) repeated for `rows` rows. In training, gradients flow back
    through the repeats into the one prefix pass (each row's share summed)."""
    past = model(input_ids=prefix_ids, use_cache=True, logits_to_keep=1).past_key_values
    past.batch_repeat_interleave(rows)
    return past


def continued(model, batch: dict) -> dict:
    """A training batch that carries its rows' common `prefix_ids` (see Collator), as model inputs: the rows' own
    tokens after the prefix's cache. Their positions follow the prefix (rows are right-padded)."""
    batch = dict(batch)
    prefix = batch.pop("prefix_ids")
    mask = batch["attention_mask"]
    rows = mask.shape[0]
    return {**batch, "past_key_values": cache(model, prefix, rows),
            "attention_mask": torch.cat([mask.new_ones(rows, prefix.shape[1]), mask], dim=1)}


class Collator:
    """Pads a training batch with `pad` (transformers' DataCollatorForSeq2Seq). When its examples carry `shared`
    (how many leading tokens every example of the set has, all before the first supervised one: build_examples
    sets it for FTICL), the batch holds those tokens once, as `prefix_ids`, and each row only the rest."""

    def __init__(self, pad):
        self.pad = pad

    def __call__(self, features: list[dict]) -> dict:
        n = min(f.get("shared", 0) for f in features)
        batch = self.pad([{"input_ids": f["input_ids"][n:], "labels": f["labels"][n:]} for f in features])
        if n:
            batch["prefix_ids"] = torch.tensor([features[0]["input_ids"][:n]])
        return batch
