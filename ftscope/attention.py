"""Decoding attention for grouped-query models on the CPU.

transformers' `sdpa` attention repeats every key/value head for its group of query heads whenever there is
a mask (batched decoding always has one: prompts are left-padded), so each decoding step copies the whole KV
cache (SmolLM2-135M: 3 KV heads for 9 query heads, 3 copies). Here a one-token step instead views its
query heads as [kv heads, group] and multiplies against the cache as it is, two matmuls and a softmax in
float32. Prefill and training (more than one query position) go through transformers' own `sdpa` unchanged.
Measured on SmolLM2-135M, 2 cores, 64 prompts x 10 samples: 1.6x the sampling rate in float32 and bfloat16,
the same greedy answers (benchmarks/bench_real.py).
"""

import torch

NAME = "ftscope_gqa"
_REGISTERED = False


def gqa_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, is_causal=None,
                  **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward  # deferred: see register()

    batch, heads, q_len, dim = query.shape
    kv_heads = key.shape[1]
    if q_len != 1 or kv_heads == heads or module.training:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    scale = scaling if scaling is not None else dim ** -0.5
    grouped = query.view(batch, kv_heads, heads // kv_heads, dim)  # query head h reads KV head h // group
    scores = torch.matmul(grouped, key.transpose(-1, -2)).float() * scale
    if attention_mask is not None:
        mask = attention_mask[:, :, -1:, : key.shape[2]]  # [batch, 1, 1, keys]
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    out = torch.matmul(torch.softmax(scores, -1).to(value.dtype), value)
    return out.view(batch, heads, 1, dim).transpose(1, 2).contiguous(), None


def register() -> str:
    """Make the attention known to transformers (once); returns its name for `attn_implementation`."""
    global _REGISTERED
    if not _REGISTERED:
        from transformers import AttentionInterface  # deferred: transformers takes seconds to import
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask  # deferred: as above

        AttentionInterface.register(NAME, gqa_attention)
        AttentionMaskInterface.register(NAME, sdpa_mask)
        _REGISTERED = True
    return NAME


def wants_gqa(config, on_cpu: bool) -> bool:
    """A grouped-query model decoding on the CPU."""
    heads, kv = getattr(config, "num_attention_heads", None), getattr(config, "num_key_value_heads", None)
    return on_cpu and bool(heads) and bool(kv) and kv < heads

