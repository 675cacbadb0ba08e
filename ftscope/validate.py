"""`ftscope validate`: every problem with a study config, found before anything expensive runs."""

import json
import os
import sys
from collections import Counter
from pathlib import Path

import torch

from ftscope.config import ConfigError, load_config
from ftscope.methods import RECIPES
from ftscope.sources import model_problem
from ftscope.store import Store
from ftscope.studies import STUDIES
from ftscope.train.deepspeed import deepspeed_config
from ftscope.train.launcher import launcher_executable


def validate(path: str, results_dir: str | None = None, calibrate: bool = False):
    """(config, problems, notes). Problems make the config unrunnable; notes are for information,
    among them what the plan costs (`calibrate`: measure the generator's throughput here first)."""
    try:
        cfg = load_config(path, {"results_dir": results_dir} if results_dir else None)
    except ConfigError as e:
        return None, e.problems, []
    return (cfg, *check_config(cfg, calibrate))


def check_config(cfg, calibrate: bool = False) -> tuple[list[str], list[str]]:
    """(problems, notes) of a parsed config: everything `validate` checks beyond the schema."""
    study = STUDIES.get(cfg.kind)
    problems, notes = list(study.validate(cfg)), []
    if problems and any(p.startswith("data.dataset") for p in problems):
        return problems, notes
    try:
        cells = study.grid(cfg)
    except (KeyError, ValueError) as e:
        return problems + [f"grid: {e}"], notes
    if not cells:
        problems.append("grid: the grid has no cells; give at least one method, level (or train set), sample "
                        "count (or size) and seed")
    per_method = Counter(c.method for c in cells)
    notes.append(f"grid: {len(cells)} cells ({', '.join(f'{n} {m}' for m, n in per_method.items())}) over "
                 f"{len(cfg.models)} model(s)")
    full = sorted({RECIPES.get(c.method).name for c in cells if RECIPES.get(c.method).full_weights})
    gpus_here = _gpus_here()
    for m in cfg.models:
        if m.path and (problem := model_problem(m.path)):
            problems.append(f"models.{m.name}.path: {problem}")
        if m.gpus and cfg.dispatch == "local" and m.gpus > gpus_here:
            problems.append(f"models.{m.name}.gpus: {m.gpus} GPUs per cell but this machine has {gpus_here}; "
                            f"set gpus: 0 to run on the CPU, or dispatch: deployments to run cells on GPU workers")
        if m.processes > 1 and m.launcher == "deepspeed" and launcher_executable("deepspeed") is None:
            problems.append(f"models.{m.name}.launcher: the `deepspeed` launcher is not installed beside this Python "
                            f"({sys.executable}) nor on PATH; pip install 'ftscope[deepspeed]', or use torchrun")
        if m.trust_remote_code:
            notes.append(f"models.{m.name}: trust_remote_code is on: this model's own Python code will run")
        elif m.path and full and (quant := quantization_of(m.path)):
            problems.append(f"models.{m.name}.path: the checkpoint is quantized ({quant}) and cannot be fully "
                            f"fine-tuned by {', '.join(full)}; use the unquantized weights, or only base/lora")
        if m.processes > 1 and not deepspeed_config(m.deepspeed).is_file():
            problems.append(f"models.{m.name}.deepspeed: {m.deepspeed} is neither a shipped DeepSpeed config "
                            f"(zero3, zero3_offload) nor a file")
    problems += _store_problems(cfg.results_dir)
    if not problems:
        notes += study.costs(cfg, calibrate)
    return problems, notes


def _gpus_here() -> int:
    return torch.cuda.device_count()


def quantization_of(path: str) -> str | None:
    """The quantization a local checkpoint declares in its config.json (e.g. 'bitsandbytes 4-bit'), or None."""
    config = Path(path) / "config.json"
    if not config.is_file():
        return None
    q = json.loads(config.read_text()).get("quantization_config")
    if not q:
        return None
    bits = "4-bit" if q.get("load_in_4bit") else "8-bit" if q.get("load_in_8bit") else q.get("bits", "")
    return f"{q.get('quant_method', 'quantized')} {bits}".strip()


def _store_problems(results_dir: str) -> list[str]:
    """The results directory must be a writable directory (or a reachable object-store URL)."""
    if "://" in results_dir:
        try:
            Store(results_dir).files("cells")
        except Exception as e:  # noqa: BLE001 -- any filesystem error means it cannot be used
            return [f"results_dir: cannot open {results_dir}: {e}"]
        return []
    p = Path(results_dir)
    existing = next((q for q in [p, *p.parents] if q.exists()), None)
    if existing is not None and not existing.is_dir():
        return [f"results_dir: {existing} is a file, not a directory; choose another results_dir"]
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        return [f"results_dir: {existing} is not writable by this user; choose another results_dir"]
    return []
