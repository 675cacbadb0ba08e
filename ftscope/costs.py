"""What a plan costs before it runs: counts of sampled answers, prompts and training tokens, and a time
estimate from a throughput (the config's `generation.samples_per_second`, or one measured here by a
short calibration run of the real generator on the real model)."""

import time
from pathlib import Path

from ftscope import generation
from ftscope.models import load_model, load_tokenizer
from ftscope.prompts import encode
from ftscope.sandbox.pretrain import sandbox_model_dir
from ftscope.shards import checkpoint_problem


def human(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def estimate(samples: float, per_second: float | None, how: str) -> str:
    if not per_second:
        return "no time estimate: set generation.samples_per_second or run `ftscope validate --calibrate`"
    return f"about {duration(samples / per_second)} at {per_second:,.0f} samples/s ({how})"


def local_model(model_cfg, data, cache_dir: str, complete: bool = True) -> str | None:
    """The base model's local checkpoint if it exists without any work (no pretraining, no download);
    `complete=False`: also one whose cache directory is there but damaged."""
    path = sandbox_model_dir(model_cfg.sandbox, data, cache_dir) if model_cfg.sandbox is not None else \
        Path(model_cfg.path)
    if not path.is_dir():
        return None
    return str(path) if not complete or checkpoint_problem(path, model_cfg.use_safetensors) is None else None


def calibrate(model_cfg, path: str, prompts: list[str], *, n_sample: int, max_new_tokens: int,
              temperature: float | None, token_budget: int, stop: str = "newline", min_seconds: float = 3) -> float:
    """Samples per second of the real generator on this machine, on up to 256 of the plan's prompts."""
    tok = load_tokenizer(path, model_cfg.trust_remote_code)
    model = load_model(path, model_cfg.dtype, model_cfg.trust_remote_code, None, model_cfg.use_safetensors)
    ids = [encode(tok, p, model_cfg.prompt.style) for p in prompts[:256]]
    generation.generate(model, tok, ids[:4], max_new_tokens=max_new_tokens, num_samples=n_sample,
                        temperature=temperature, stop=stop, token_budget=token_budget)  # warm-up
    t0, done = time.perf_counter(), 0
    while time.perf_counter() - t0 < min_seconds:  # long enough that a busy machine's jitter averages out
        generation.generate(model, tok, ids, max_new_tokens=max_new_tokens, num_samples=n_sample,
                            temperature=temperature, stop=stop, token_budget=token_budget, seed=done)
        done += len(ids) * n_sample
    return done / (time.perf_counter() - t0)
