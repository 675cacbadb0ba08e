"""Short first-line answers, many samples per prompt: the hot path of mastery scoring.

`model.generate` with `num_return_sequences=n` prefills every prompt n times and computes logits
for every prompt position. Here each prompt is prefilled once (last-position logits only), its KV
cache is repeated n times, and decoding stops once every row has produced a newline or EOS.
benchmarks/bench_generate.py measures the gain against `model.generate`.
"""

import torch


def stop_token_ids(tokenizer) -> list[int]:
    """EOS plus every token whose text holds a newline, so generation ends with the first line."""
    cached = getattr(tokenizer, "_ftscope_stop_ids", None)
    if cached is None:
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
        cached = sorted({i for i, t in enumerate(texts) if "\n" in t} | {tokenizer.eos_token_id})
        tokenizer._ftscope_stop_ids = cached
    return cached


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], *, max_new_tokens: int, batch_size: int,
             num_samples: int = 1, temperature: float | None = None, seed: int = 0) -> list[list[str]]:
    """For each prompt, `num_samples` first lines (greedy when temperature is None)."""
    tokenizer.padding_side = "left"
    device = model.device
    stop = torch.tensor(stop_token_ids(tokenizer), device=device)
    rng = torch.Generator(device=device).manual_seed(seed)
    per_batch = max(1, batch_size // num_samples)
    out: list[list[str]] = []
    for start in range(0, len(prompts), per_batch):
        enc = tokenizer(prompts[start:start + per_batch], return_tensors="pt", padding=True,
                        add_special_tokens=False).to(device)
        rows = _decode_batch(model, enc["input_ids"], enc["attention_mask"], num_samples, temperature,
                             max_new_tokens, stop, rng, tokenizer.pad_token_id)
        texts = [t.split("\n")[0].strip() for t in tokenizer.batch_decode(rows, skip_special_tokens=True)]
        out += [texts[i:i + num_samples] for i in range(0, len(texts), num_samples)]
    return out


def _decode_batch(model, ids, mask, n, temperature, max_new_tokens, stop, rng, pad_id) -> list[list[int]]:
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    res = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1)
    cache, logits = res.past_key_values, res.logits[:, -1]
    if n > 1:
        cache.batch_repeat_interleave(n)
        logits, mask, pos = logits.repeat_interleave(n, 0), mask.repeat_interleave(n, 0), pos.repeat_interleave(n, 0)
    next_pos = pos[:, -1:] + 1
    done = torch.zeros(logits.shape[0], dtype=torch.bool, device=ids.device)
    steps = []
    for _ in range(max_new_tokens):
        if temperature is None:
            tok = logits.argmax(-1)
        else:
            probs = torch.softmax(logits.float() / temperature, dim=-1)
            tok = torch.multinomial(probs, 1, generator=rng).squeeze(1)
        tok = torch.where(done, pad_id, tok)
        steps.append(tok)
        done |= torch.isin(tok, stop)
        if done.all():
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        res = model(input_ids=tok[:, None], attention_mask=mask, position_ids=next_pos, past_key_values=cache,
                    use_cache=True)
        logits, next_pos = res.logits[:, -1], next_pos + 1
    return torch.stack(steps, dim=1).tolist()
