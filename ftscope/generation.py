"""Decoding answers: greedy or sampled, stopped at the end of the first line (or the first blank
line), for mastery scoring, evaluation and Study G's generation tasks.

Stopping is by token ids (EOS and every token whose text holds a newline) rather than
`stop_strings`, which cannot handle word-level vocabularies such as the sandbox's.
"""

import torch

_NEWLINE_IDS: dict[tuple, list[int]] = {}


def newline_token_ids(tokenizer) -> list[int]:
    """Every token whose text holds a newline. Decoding the whole vocabulary once per tokenizer (not
    per cell) keeps this off the hot path."""
    key = (tokenizer.name_or_path, len(tokenizer))
    if key not in _NEWLINE_IDS or not tokenizer.name_or_path:
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
        _NEWLINE_IDS[key] = sorted(i for i, t in enumerate(texts) if "\n" in t)
    return _NEWLINE_IDS[key]


def stop_token_ids(tokenizer, stop: str = "newline") -> list[int]:
    """Token ids that end decoding: EOS, and for `newline` every token holding a newline."""
    eos = {tokenizer.eos_token_id}
    return sorted(eos | set(newline_token_ids(tokenizer))) if stop == "newline" else sorted(eos)


def cut(text: str, stop: str) -> str:
    """The answer: the text before the first newline (or blank line), stripped."""
    return text.split("\n" if stop == "newline" else "\n\n")[0].strip()


def left_pad(prompts: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, prompts))
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        if p:
            ids[i, width - len(p):], mask[i, width - len(p):] = torch.tensor(p), 1
    return ids.to(device), mask.to(device)


@torch.no_grad()
def generate_plain(model, tokenizer, prompts: list[list[int]], *, max_new_tokens: int, batch_size: int,
                   num_samples: int = 1, temperature: float | None = None, seed: int = 0,
                   stop: str = "newline") -> list[list[str]]:
    """For each prompt (token ids), `num_samples` answers, with transformers' `generate`: greedy when
    temperature is None, else sampled at that temperature (no top-k / top-p)."""
    torch.manual_seed(seed)
    sampling = temperature is not None
    per_batch = max(1, batch_size // num_samples)
    out: list[list[str]] = []
    for start in range(0, len(prompts), per_batch):
        ids, mask = left_pad(prompts[start:start + per_batch], tokenizer.pad_token_id, model.device)
        gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=sampling,
                             temperature=temperature, top_k=None, top_p=None, num_return_sequences=num_samples,
                             eos_token_id=stop_token_ids(tokenizer, stop), pad_token_id=tokenizer.pad_token_id)
        texts = [cut(t, stop) for t in tokenizer.batch_decode(gen[:, ids.shape[1]:], skip_special_tokens=True)]
        out += [texts[i:i + num_samples] for i in range(0, len(texts), num_samples)]
    return out


generate = generate_plain
