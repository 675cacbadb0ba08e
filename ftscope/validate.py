"""`ftscope validate`: every problem with a study config, found before anything expensive runs. Each problem
is one line naming the file or the field to fix; validate itself never raises (an unexpected failure comes
out as a problem too, with what it was checking)."""

import json
import os
import sys
import traceback
from collections import Counter
from pathlib import Path

import torch

from ftscope import context, gguf, jobs, measurements
from ftscope.config import ConfigError, load_config
from ftscope.costs import duration, local_model
from ftscope.methods import RECIPES
from ftscope.shards import checkpoint_dir, checkpoint_problem
from ftscope.sources import looks_local, model_problem, offline
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
    except Exception as e:  # noqa: BLE001 -- validate reports, it never shows a traceback
        return None, [_unexpected(f"reading {path}", e)], []
    try:
        return (cfg, *check_config(cfg, calibrate))
    except Exception as e:  # noqa: BLE001 -- as above
        return cfg, [_unexpected(f"checking {path}", e)], []


def _unexpected(what: str, e: Exception) -> str:
    where = traceback.extract_tb(e.__traceback__)[-1]
    return (f"an unexpected {type(e).__name__} while {what}: {str(e)[:300]} (at {Path(where.filename).name}:"
            f"{where.lineno}; this is a bug in ftscope's checks: please report it with this line)")


def check_config(cfg, calibrate: bool = False) -> tuple[list[str], list[str]]:
    """(problems, notes) of a parsed config: everything `validate` checks beyond the schema."""
    study = STUDIES.get(cfg.kind)
    problems, notes = list(study.checks.problems(cfg)), []
    problems += [p for key in ("results_dir", "artifacts_dir", "cache_dir") if (p := _dir_problem(key, getattr(cfg, key)))]
    try:
        cells = study.grid(cfg)
    except (KeyError, ValueError) as e:  # the grid reads the same descriptions as the data: say a problem once
        return problems + ([] if any(str(e).strip("'\"") in p for p in problems) else [f"grid: {e}"]), notes
    if not cells:
        problems.append("grid: the grid has no cells; give at least one method, level (or train set), sample "
                        "count (or size) and seed")
    per_method = Counter(c.method for c in cells)
    notes.append(f"grid: {len(cells)} cells ({', '.join(f'{n} {m}' for m, n in per_method.items())}) over "
                 f"{len(cfg.models)} model(s)")
    full = sorted({RECIPES.get(c.method).name for c in cells if RECIPES.get(c.method).full_weights})
    for m in cfg.models:
        problems += _model_problems(cfg, m, full)
        if m.trust_remote_code:
            notes.append(f"models.{m.name}: trust_remote_code is on: this model's own Python code will run")
    if not problems:
        problems += prompt_problems(cfg, study)
    asked = measurements.asked(cfg)  # eval.general: lm-eval, its tasks, their data and metrics
    if not problems and asked:
        problems += [p for m in asked for p in m.problems(cfg, study.load_data(cfg))]
    if not problems:
        notes += study.checks.notes(cfg) + _cached_model_notes(cfg, study)
        notes += study.checks.costs(cfg, calibrate) + _job_costs(cfg, cells)
        notes += [line for m in asked for line in m.costs(cfg, study.load_data(cfg), len(cells))]
    return problems, notes


def prompt_problems(cfg, study, checkpoints: dict[str, str | None] | None = None) -> list[str]:
    """A chat prompt style for a model whose tokenizer has no chat template, and prompts longer than a model's
    context, for every model whose tokenizer is at hand (`checkpoints`: the local checkpoints, when known)."""
    data = study.load_data(cfg)
    if checkpoints is None:
        checkpoints = {m.name: local_model(cfg, m, data) for m in cfg.models}
    problems = []
    for m in cfg.models:
        if m.prompt.style != "chat":
            continue
        if m.sandbox is not None:
            problems.append(f"models.{m.name}.prompt.style: chat needs a chat template, and a sandbox model's "
                            f"tokenizer has none; use raw or few_shot")
        elif (hand := context.at_hand(m, checkpoints.get(m.name))) is not None and not hand[0].chat_template:
            problems.append(f"models.{m.name}.prompt.style: chat needs a chat template, and the tokenizer of "
                            f"{m.path} has none; use raw or few_shot, or a checkpoint that has one")
    return problems or context.problems(cfg, study, data, checkpoints)


def _job_costs(cfg, cells) -> list[str]:
    """On a cluster: how many jobs (runs, pods) the grid becomes and what starting them costs."""
    if cfg.dispatch != "deployments":
        return []
    c = cfg.cluster
    grouped = jobs.group(cells, lambda x: x, lambda x: x.parent, c.batch_variants)
    prepares = len(cfg.models) if STUDIES.get(cfg.kind).prepares_on_gpus else 0
    n = len(grouped) + prepares
    gpu_s = sum(c.job_start_s * cfg.model(j[0].model).gpus for j in grouped)
    return [f"cluster: {n:,} jobs ({len(grouped):,} for {len(cells):,} cells"
            + (", each cell with the cells that start from it" if c.batch_variants else ", one per cell")
            + (f"; {prepares} preparation{'s' * (prepares > 1)}" if prepares else "")
            + f"); start-up about {duration(n * c.job_start_s)} of job time"
            + (f" ({gpu_s / 3600:,.1f} GPU-hours)" if gpu_s else "") + f" at cluster.job_start_s {c.job_start_s:g} s a job"]


def _model_problems(cfg, m, full: list[str]) -> list[str]:
    problems = []
    if m.path and gguf.is_gguf(m.path):
        if problem := gguf.problem(m.path):
            problems.append(f"models.{m.name}.path: {problem}")
    elif m.path and (problem := model_problem(m.path) or _weights_problem(m.path, m.use_safetensors)):
        problems.append(f"models.{m.name}.path: {problem}")
    if m.gpus and cfg.dispatch == "local" and m.gpus > torch.cuda.device_count():
        problems.append(f"models.{m.name}.gpus: {m.gpus} GPUs per cell but this machine has "
                        f"{torch.cuda.device_count()}; set gpus: 0 to run on the CPU, or dispatch: deployments to run "
                        f"cells on GPU workers")
    if m.processes > 1 and m.launcher == "deepspeed" and launcher_executable("deepspeed") is None:
        problems.append(f"models.{m.name}.launcher: the `deepspeed` launcher is not installed beside this Python "
                        f"({sys.executable}) nor on PATH; pip install 'ftscope[deepspeed]', or use torchrun")
    if not m.trust_remote_code and m.path and full and (quant := quantization_of(m.path)):
        problems.append(f"models.{m.name}.path: the checkpoint is quantized ({quant}) and cannot be fully "
                        f"fine-tuned by {', '.join(full)}; use the unquantized weights, or only base/lora")
    if m.processes > 1 and not deepspeed_config(m.deepspeed).is_file():
        problems.append(f"models.{m.name}.deepspeed: {m.deepspeed} is neither a shipped DeepSpeed config "
                        f"(zero3, zero3_offload) nor a file")
    return problems


def _weights_problem(path: str, use_safetensors: bool) -> str | None:
    """A local checkpoint, or a hub id's copy in the local hub cache when offline, that lacks its weights."""
    if Path(path).is_dir():
        problem = checkpoint_problem(Path(path), use_safetensors)
        return f"{path}: the checkpoint is damaged: {problem}" if problem else None
    if looks_local(path) or not offline():
        return None  # online, from_pretrained fetches whatever the cache lacks
    problem = checkpoint_problem(checkpoint_dir(path), use_safetensors)
    return (f"{path}: its copy in the local hub cache is damaged ({problem}) and HF_HUB_OFFLINE is set; download it "
            f"again (huggingface-cli download {path})") if problem else None


def _cached_model_notes(cfg, study) -> list[str]:
    """A pretrained sandbox model in the cache that is damaged: `run` moves it aside and pretrains again. A GGUF
    model: converted already, or what converting it costs."""
    data, notes = study.load_data(cfg), []
    for m in cfg.models:
        if m.path and gguf.is_gguf(m.path):
            notes.append(f"models.{m.name}: {gguf.conversion_note(m.path, cfg.cache_dir)}")
        if m.sandbox is not None and (d := local_model(cfg, m, data, complete=False)) is not None \
                and (problem := checkpoint_problem(Path(d))):
            notes.append(f"warning: models.{m.name}: the cached sandbox model {d} is damaged ({problem}); `ftscope run` "
                         f"moves it to {Path(d).parent / '.quarantine'} and pretrains it again")
    return notes


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


def _dir_problem(key: str, path: str) -> str | None:
    """results_dir, artifacts_dir and cache_dir must be writable directories (results_dir: or a reachable
    object-store URL)."""
    if "://" in path:
        if key != "results_dir":
            return f"{key}: must be a local (or mounted) directory, not a URL ({path})"
        try:
            Store(path).files("cells")
        except Exception as e:  # noqa: BLE001 -- any filesystem error means it cannot be used
            return f"{key}: cannot open {path}: {type(e).__name__}: {str(e)[:200]}"
        return None
    p = Path(path)
    existing = next((q for q in [p, *p.parents] if q.exists()), None)
    if existing is None:
        return None
    if not existing.is_dir():
        return f"{key}: {existing} is a file, not a directory; choose another {key}"
    if os.statvfs(existing).f_flag & os.ST_RDONLY:
        return f"{key}: {existing} is on a read-only filesystem; choose a writable {key}"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{key}: {existing} is not writable by this user; choose another {key}"
    return None
