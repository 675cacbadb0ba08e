"""Batched generation with left padding that stops at the end of the first line.

Stopping is by token ids (EOS and every token whose text holds a newline) rather than
`stop_strings`, which cannot handle word-level vocabularies such as the sandbox's.
"""

import torch


_STOP_IDS: dict[tuple, list[int]] = {}


def stop_token_ids(tokenizer) -> list[int]:
    """EOS plus every token whose text holds a newline, so generation ends with the first line.
    Decoding the whole vocabulary once per tokenizer (not per cell) keeps this off the hot path."""
    key = (tokenizer.name_or_path, len(tokenizer), tokenizer.eos_token_id)
    if key not in _STOP_IDS or not tokenizer.name_or_path:
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
        _STOP_IDS[key] = sorted({i for i, t in enumerate(texts) if "\n" in t} | {tokenizer.eos_token_id})
    return _STOP_IDS[key]


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], *, max_new_tokens: int, batch_size: int,
             num_samples: int = 1, temperature: float | None = None, seed: int = 0) -> list[list[str]]:
    """For each prompt, `num_samples` first lines (greedy when temperature is None)."""
    tokenizer.padding_side = "left"
    torch.manual_seed(seed)
    sampling = temperature is not None
    per_batch = max(1, batch_size // num_samples)
    out: list[list[str]] = []
    for start in range(0, len(prompts), per_batch):
        enc = tokenizer(prompts[start:start + per_batch], return_tensors="pt", padding=True,
                        add_special_tokens=False).to(model.device)
        gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=sampling, temperature=temperature,
                             top_k=None, top_p=None, num_return_sequences=num_samples,
                             eos_token_id=stop_token_ids(tokenizer), pad_token_id=tokenizer.pad_token_id)
        texts = tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        texts = [t.split("\n")[0].strip() for t in texts]
        out += [texts[i:i + num_samples] for i in range(0, len(texts), num_samples)]
    return out
