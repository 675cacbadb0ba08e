"""What a plan costs before it runs: counts of sampled answers, prompts and training tokens, and a time
estimate from a throughput (the config's `generation.samples_per_second`, or one measured here by a
short calibration run of the real generator on the real model)."""

import time

from ftscope import generation, gguf
from ftscope.engines import open_engine
from ftscope.models import load_tokenizer
from ftscope.progress import Progress, terminal_sink
from ftscope.prompts import encode_all
from ftscope.sandbox.pretrain import pretrain_threads, sandbox_model_dir
from ftscope.shards import checkpoint_problem
from ftscope.sources import resolve


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


def rates_of(cfg, model) -> dict[str, float]:
    """Samples per second per GPU (or per CPU machine), by engine: the model entry's, else the study's
    `generation.samples_per_second`; a single number is the model's own engine's."""
    rates = model.samples_per_second if model.samples_per_second is not None else cfg.generation.samples_per_second
    if rates is None:
        return {}
    return dict(rates) if isinstance(rates, dict) else {model.backend or cfg.generation.backend: rates}


def estimate(samples: float, rates: dict[str, float], gpus: int, how: str) -> str:
    """'about 3.1 h with vllm at 2,000 samples/s per GPU x 4 GPUs = 12.4 GPU-hours; ...', one clause per
    engine (`gpus`: the model's; 0 on the CPU, where a rate is the machine's)."""
    if not rates:
        return "no time estimate: set generation.samples_per_second or run `ftscope validate --calibrate`"
    parts = []
    for engine, rate in rates.items():
        seconds = samples / (rate * max(gpus, 1))
        parts.append(f"about {duration(seconds)} with {engine} at {rate:,.0f} samples/s"
                     + (f" per GPU x {gpus} GPUs = {seconds * gpus / 3600:,.1f} GPU-hours" if gpus else ""))
    return "; ".join(parts) + f" ({how})"


def local_model(cfg, model_cfg, data, complete: bool = True) -> str | None:
    """The base model's local checkpoint (of study `cfg`) if it exists without any work (no pretraining, no download);
    `complete=False`: also one whose cache directory is there but damaged."""
    try:
        if model_cfg.sandbox is not None:
            path = sandbox_model_dir(model_cfg.sandbox, data, cfg.cache_dir, pretrain_threads(cfg))
        else:
            path = gguf.converted_dir(model_cfg.path, cfg.cache_dir) if gguf.is_gguf(model_cfg.path) else \
                resolve(model_cfg.path)
    except FileNotFoundError:  # a package that is not installed, a GGUF file that is not there
        return None
    if not path.is_dir():
        return None
    return str(path) if not complete or checkpoint_problem(path, model_cfg.use_safetensors) is None else None


def calibrate(cfg, model_cfg, path: str, prompts: list[str], *, n_sample: int, max_new_tokens: int,
              temperature: float | None, stop: str = "newline", min_seconds: float = 3) -> float:
    """Samples per second of the model's engine on this machine, on up to 256 of the plan's prompts (the
    engine's start-up is not counted: it is paid once per model or cell)."""
    tok = load_tokenizer(path, model_cfg.trust_remote_code)
    engine = open_engine(cfg, model_cfg, path, None)
    ids = encode_all(tok, prompts[:256], model_cfg.prompt.style)
    progress = Progress(f"calibrating {model_cfg.name}", sinks=tuple(filter(None, [terminal_sink()])))
    progress.phase("calibrate", total=int(min_seconds), unit="s")
    try:
        engine.generate(ids[:4], max_new_tokens=max_new_tokens, num_samples=n_sample, temperature=temperature,
                        stop=stop)  # warm-up
        t0, done = time.perf_counter(), 0
        while time.perf_counter() - t0 < min_seconds:  # long enough that a busy machine's jitter averages out
            engine.generate(ids, max_new_tokens=max_new_tokens, num_samples=n_sample, temperature=temperature,
                            stop=stop, seeds=[generation.prompt_seed(done, i) for i in range(len(ids))])
            done += len(ids) * n_sample
            progress.update(min(int(time.perf_counter() - t0), int(min_seconds)))
        return done / (time.perf_counter() - t0)
    finally:
        progress.finish()
        engine.close()
