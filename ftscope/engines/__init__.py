"""Generation engines: the one interface every caller that decodes goes through (mastery sampling, greedy
evaluation, Study G's generation tasks and label scoring, `validate --calibrate`). KL and training keep the
HF model: they need full distributions and gradients.

An engine decodes token-id prompts (the caller's tokenizer wrote them, so every engine reads the same
input) and answers with text cut at the first newline or blank line. Engines register here by name; a model
entry's `backend:` (default: `generation.backend`) picks one, and `generation.options.<engine>` holds its
settings. Adding an engine (SGLang, an OpenAI-compatible server) is one module that calls `register`.
"""

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel

from ftscope import checkpoints
from ftscope.registry import Registry


class Engine(Protocol):
    name: str

    def generate(self, prompts: list[list[int]], *, max_new_tokens: int, num_samples: int = 1,
                 temperature: float | None = None, seeds: list[int] | None = None, stop: str = "newline",
                 progress: Callable[[int, int], None] | None = None) -> list[list[str]]:
        """For each prompt, `num_samples` answers: greedy when temperature is None, else sampled at that
        temperature (no top-k, no top-p) with the prompt's seed, so an answer does not depend on the batch."""

    def label_logprobs(self, prompts: list[list[int]], label_ids: list[int],
                       progress: Callable[[int, int], None] | None = None) -> list[list[float]]:
        """For each prompt, log p(token | prompt) of each label's first token at the first generated position."""

    def close(self) -> None:
        """Free the engine's memory (before the next cell trains)."""


@dataclass(frozen=True)
class EngineSpec:
    name: str
    open: Callable[..., Engine]  # (path, model config, gpus, options, model=None) -> Engine
    options: type[BaseModel]  # its `generation.options.<name>` section
    version: Callable[[], str]  # what is installed (part of the fingerprints of what it decodes)
    problem: Callable[[], str | None] = lambda: None  # why it cannot run here, or None
    in_memory: bool = False  # decodes an HF model already in memory (else it loads a checkpoint from disk)


ENGINES: Registry[EngineSpec] = Registry("generation engine")


def register(spec: EngineSpec) -> EngineSpec:
    return ENGINES.register(spec.name, spec)


def backend_of(cfg, model) -> str:
    return model.backend or cfg.generation.backend


def options_of(cfg, name: str) -> BaseModel:
    return ENGINES.get(name).options(**cfg.generation.options.get(name, {}))


def identity(cfg, model) -> dict:
    """What of the engine changes what it decodes: its name, version and settings. It goes into the mastery
    and cell fingerprints (a vLLM cell is not an HF cell) and into their rows."""
    name = backend_of(cfg, model)
    options = options_of(cfg, name)
    out = {"engine": name, "version": ENGINES.get(name).version(),
           "options": options.model_dump(exclude=set(getattr(options, "RUNTIME", ())))}
    if getattr(model, "decode_dtype", None) is not None:
        out["dtype"] = model.decode_dtype
    return out


def decode_dtype(model) -> str:
    """The dtype an engine decodes this model's weights in."""
    return getattr(model, "decode_dtype", None) or model.dtype


def open_engine(cfg, model, path: str, gpus: list[int] | None, hf_model=None) -> Engine:
    """An engine of the model's backend on `path` (a local checkpoint or hub id), on `gpus` (all of them at
    once: vLLM runs tensor parallel over them). `hf_model`: an HF model already in memory (the hf engine
    decodes with it instead of loading the checkpoint again)."""
    name = backend_of(cfg, model)
    spec = ENGINES.get(name)
    return spec.open(path, model, gpus, options_of(cfg, name), hf_model=hf_model, token_budget=cfg.generation.token_budget)


def for_cell(run, built) -> Engine:
    """An engine over a cell's built model: one that decodes in memory uses the model as it is; any other loads
    its checkpoint (saved now if it is not on disk yet; LoRA merged), after the model has given its GPU memory
    back."""
    cfg, model = run.cfg, run.model_cfg
    if ENGINES.get(backend_of(cfg, model)).in_memory:
        return open_engine(cfg, model, run.base_path, run.gpus, hf_model=built.model)
    path = checkpoints.save(run, built)
    if run.gpus:
        built.model.to("cpu")
    return open_engine(cfg, model, str(path), run.gpus)


for _name in ("hf", "vllm"):  # the shipped engines; a plug-in's registers itself when imported
    importlib.import_module(f"{__name__}.{_name}")
