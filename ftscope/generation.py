"""Decoding answers: greedy or sampled, stopped at the end of the first line (or the first blank
line), for mastery scoring, evaluation and Study G's generation tasks.

`generate` is the fast path every caller uses: prompts sorted by length into batches sized by a
token budget (answers come back in the caller's order); each prompt prefilled once, its KV cache
repeated for its N samples; rows dropped from the batch (and the cache) as soon as they stop.
Sampling draws its uniforms up front from a generator seeded per prompt, so a prompt's samples do not
depend on what else is in its batch, or in which order prompts come, and a re-run gives the same
answers. A token is drawn by inverting the CDF of softmax(logits / T) at such a uniform: exactly the
categorical distribution plain `generate` samples from (no top-k, no top-p).

`generate_plain` is transformers' own `generate`, kept as the reference the benchmark and the tests
compare with. Stopping is by token ids (EOS and every token whose text holds a newline) rather than
`stop_strings`, which cannot handle word-level vocabularies such as the sandbox's.
"""

import zlib

import torch

from ftscope import prefix

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


def prompt_inputs(model, prompts: list[list[int]], pad_id: int) -> dict:
    """Model inputs for a batch of prompts (token ids), left-padded; when they begin with at least `prefix.WORTH`
    common tokens (k-shot demonstrations, a chat template's system prompt), those go once into a key/value cache
    (ftscope/prefix.py) and the rows hold the rest. `attention_mask` covers the prefix too."""
    n = prefix.common_length(prompts)
    n = n if n >= prefix.WORTH else 0
    past = prefix.cache(model, torch.tensor([prompts[0][:n]], device=model.device), len(prompts)) if n else None
    ids, mask = left_pad([p[n:] for p in prompts], pad_id, model.device)
    mask = torch.cat([mask.new_ones(len(prompts), n), mask], dim=-1)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, n:]
    return {"input_ids": ids, "attention_mask": mask, "position_ids": positions, "past_key_values": past}


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


def prompt_seed(*parts) -> int:
    """A stable seed for one prompt from what identifies it (item id, phrasing, the study's seed)."""
    return zlib.crc32("\x1f".join(map(str, parts)).encode())


def _batches(lengths: list[int], rows_per_prompt: int, max_new_tokens: int, token_budget: int) -> list[list[int]]:
    """Prompt indices, shortest first, cut into batches whose rows x (longest prompt + answer) fit the budget."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches, current = [], []
    for i in order:
        width = lengths[i] + max_new_tokens  # the longest so far: prompts come shortest first
        if current and (len(current) + 1) * rows_per_prompt * width > token_budget:
            batches.append(current)
            current = []
        current.append(i)
    return batches + [current] if current else batches


@torch.no_grad()
def generate(model, tokenizer, prompts: list[list[int]], *, max_new_tokens: int, num_samples: int = 1,
             temperature: float | None = None, seeds: list[int] | None = None, stop: str = "newline",
             token_budget: int = 65536, seed: int = 0, progress=None) -> list[list[str]]:
    """For each prompt (token ids), `num_samples` answers: greedy when temperature is None, else sampled
    at that temperature with the prompt's seed (`seeds[i]`, default: a hash of its position and `seed`).
    `progress(prompts done, prompts)` is called after every batch."""
    if not prompts:
        return []
    seeds = seeds if seeds is not None else [prompt_seed(seed, i) for i in range(len(prompts))]
    stops = torch.tensor(stop_token_ids(tokenizer, stop))
    newlines = torch.tensor(newline_token_ids(tokenizer))
    out: list[list[str]] = [[] for _ in prompts]
    done = 0
    for batch in _batches([len(p) for p in prompts], num_samples, max_new_tokens, token_budget):
        texts = _decode_batch(model, tokenizer, [prompts[i] for i in batch], [seeds[i] for i in batch],
                              max_new_tokens=max_new_tokens, num_samples=num_samples, temperature=temperature,
                              stops=stops, newlines=newlines, stop=stop)
        for i, answers in zip(batch, texts):
            out[i] = answers
        done += len(batch)
        if progress:
            progress(done, len(prompts))
    return out


def _draw(logits: torch.Tensor, u: torch.Tensor | None, temperature: float | None) -> torch.Tensor:
    """Greedy (u is None) or one token per uniform in `u` [rows, k] by inverting the CDF of
    softmax(logits / T), in float32 as plain `generate` samples; returns [rows, k] token ids."""
    if u is None:
        return logits.argmax(-1, keepdim=True)
    cdf = torch.softmax(logits.float().div_(temperature), -1).cumsum_(-1)
    return torch.searchsorted(cdf, (u * cdf[:, -1:]).float()).clamp_(max=cdf.shape[-1] - 1)


def _decode_batch(model, tokenizer, prompts, seeds, *, max_new_tokens, num_samples, temperature, stops, newlines,
                  stop) -> list[list[str]]:
    device = model.device
    inputs = prompt_inputs(model, prompts, tokenizer.pad_token_id)
    step = model(**inputs, use_cache=True, logits_to_keep=1)
    mask, positions = inputs["attention_mask"], inputs["position_ids"]
    cache = step.past_key_values
    uniforms = None
    if temperature is not None:  # [rows, steps]: row (prompt p, sample s) uses prompt p's own generator
        uniforms = torch.cat([torch.rand((num_samples, max_new_tokens), dtype=torch.float64,
                                         generator=torch.Generator().manual_seed(s)) for s in seeds]).to(device)
    n_rows = len(prompts) * num_samples
    # the first token of every sample comes from its prompt's single prefill
    first_u = None if uniforms is None else uniforms[:, 0].view(len(prompts), num_samples)
    nxt = _draw(step.logits[:, -1], first_u, temperature).expand(-1, num_samples).reshape(-1)
    if num_samples > 1:  # one prefill per prompt; its cache serves every sample
        cache.batch_repeat_interleave(num_samples)
        mask, positions = mask.repeat_interleave(num_samples, 0), positions.repeat_interleave(num_samples, 0)
    alive = torch.arange(n_rows, device=device)  # row of the batch held by each current row
    tokens = torch.full((n_rows, max_new_tokens), tokenizer.pad_token_id, dtype=torch.long, device=device)
    last = positions[:, -1]
    stops, newlines = stops.to(device), newlines.to(device)
    for t in range(max_new_tokens):
        if t:
            u = None if uniforms is None else uniforms[alive, t].unsqueeze(-1)
            nxt = _draw(step.logits[:, -1], u, temperature).squeeze(-1)
        tokens[alive, t] = nxt
        done = torch.isin(nxt, stops)
        if stop == "blank_line":  # a token that ends a line may end a blank line: look at the text
            for j in torch.isin(nxt, newlines).nonzero().flatten().tolist():
                row = tokens[int(alive[j]), :t + 1].tolist()
                done[j] = "\n\n" in tokenizer.decode(row, skip_special_tokens=True)
        if t == max_new_tokens - 1 or bool(done.all()):
            break
        if bool(done.any()):  # drop finished rows from the batch and the cache
            keep = (~done).nonzero().flatten()
            cache.batch_select_indices(keep)
            alive, nxt, mask, last = alive[keep], nxt[keep], mask[keep], last[keep]
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=-1)
        last = last + 1
        step = model(input_ids=nxt.unsqueeze(-1), attention_mask=mask, position_ids=last.unsqueeze(-1),
                     past_key_values=cache, use_cache=True)
        cache = step.past_key_values
    texts = [cut(x, stop) for x in tokenizer.batch_decode(tokens.tolist(), skip_special_tokens=True)]
    return [texts[i:i + num_samples] for i in range(0, n_rows, num_samples)]
