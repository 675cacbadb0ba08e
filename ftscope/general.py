"""General capability: what a cell's fine-tuning did to everything else, measured with lm-evaluation-harness.

Every cell's model is scored on the tasks of `eval.general`, in the cell's process, on the model already in
memory (a LoRA cell as its PeftModel); a base model is scored by its own cell (method `base` or `icl`), so a
cell and its base model are compared on the same documents. Rows:
- `scores`: every document's score (domain `general`, task = the configured name, dataset = lm-eval's task),
  so that comparisons pair documents;
- `metrics`: their mean, n and sum, as for every test set (ftscope's intervals come from these);
- `general`: lm-eval's own number for each task and metric, with its stderr, the lm-eval version and the hash
  of the task's resolved config.
A cell's id holds the lm-eval version and each task's hash: a changed task makes new ids for the cells that
use it, so they are scored again, and nothing else is.

Tasks are lm-eval's (the hub's, on a cluster), a user's task YAMLs (`include_path`; offline: `dataset_path:
json` with `data_files`), or ftscope's sandbox tasks below, built from the study's own sandbox world.
"""

import difflib
import importlib.metadata
import json
import logging
import math
import os
import random
import re
from collections.abc import Callable
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ftscope.damage import temporary_name
from ftscope.fingerprint import file_digest, fingerprint
from ftscope.records import General, Metric, Score, as_row
from ftscope.registry import Registry

log = logging.getLogger(__name__)
DOMAIN = "general"  # the `domain` of general-capability rows in `metrics` and `scores`
BOOTSTRAP = 1000  # lm-eval's bootstrap iterations for the stderr of metrics that have no closed form


class GeneralTask(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: str = Field(description="an lm-eval task or group (arc_easy, mmlu, ...), a task of include_path, or a "
                                  "sandbox task (sandbox-facts, sandbox-text)")
    metric: str | None = Field(None, description="the metric the report compares (default: the task's first)")


class GeneralConfig(BaseModel):
    """`eval.general`: the lm-eval tasks every cell and base model is scored on."""
    model_config = ConfigDict(extra="forbid")
    tasks: list[str | GeneralTask] = Field(min_length=1, description="task names, or {task, metric}")
    limit: int | None = Field(None, ge=1, description="documents per task (default: all)")
    num_fewshot: int | None = Field(None, ge=0, description="demonstrations per document (default: the task's)")
    batch_size: int = Field(16, ge=1)
    include_path: list[str] = Field(default_factory=list, description="directories of your own lm-eval task YAMLs")

    @model_validator(mode="after")
    def _unique(self):
        names = [t.task for t in self.specs]
        if len(set(names)) != len(names):
            raise ValueError(f"tasks are named twice: {sorted({n for n in names if names.count(n) > 1})}")
        return self

    @property
    def specs(self) -> list[GeneralTask]:
        return [t if isinstance(t, GeneralTask) else GeneralTask(task=t) for t in self.tasks]


def section(cfg) -> GeneralConfig | None:
    """The study's `eval.general`, or None."""
    return getattr(getattr(cfg, "eval", None), "general", None)


# -- the sandbox tasks ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SandboxTask:
    """A task over the sandbox world, described as lm-eval describes one: its config (less its data, which the
    study's world gives) and how its documents are made. `version` goes into the cells' ids."""
    name: str
    config: dict
    documents: Callable  # StudyData -> [doc]
    description: str
    version: int = 1


SANDBOX: Registry[SandboxTask] = Registry("sandbox task")


def _statements(data):
    """The sandbox-k dataset of the study (the one whose relations have statement phrasings) and its corpus."""
    for ds in data.datasets.values():
        if ds.documents and any(s.statements for s in ds.spec.subsets.values()):
            return ds
    raise ValueError("the sandbox tasks are built from a sandbox-k world (its corpus and statement phrasings); this "
                     "study's data has none: name lm-eval tasks, or your own in eval.general.include_path")


def background_facts(data) -> list[dict]:
    """The facts the sandbox model read in pretraining that the study neither trains nor tests (the world's
    format facts): relation, subject, answer, and the statement phrasings the corpus used for it, found by
    matching the corpus against every phrasing."""
    ds = _statements(data)
    studied = {it["subject"] for it in ds.items}
    patterns = []
    for pid, rel in ds.spec.subsets.items():
        for t in rel.statements:
            body = re.escape(t).replace(r"\{s\}", "(?P<s>.+?)", 1).replace(r"\{s\}", "(?P=s)")
            literal = max(re.split(r"\{[so]\}", t), key=len)
            patterns.append((pid, t, literal, re.compile(body.replace(r"\{o\}", "(?P<o>.+)"))))
    facts: dict[tuple, dict] = {}
    for doc in ds.documents:
        for pid, t, literal, rx in patterns:
            if literal in doc and (m := rx.fullmatch(doc)) and m["s"] not in studied:
                fact = facts.setdefault((pid, m["s"], m["o"]), {"relation": pid, "subject": m["s"], "answer": m["o"],
                                                                "said": set()})
                fact["said"].add(t)
                break
    return [{**f, "said": [t for t in ds.spec.subsets[f["relation"]].statements if t in f["said"]]}
            for _, f in sorted(facts.items())]


def _facts_docs(data) -> list[dict]:
    """One question per background fact: its first phrasing the corpus used, cut before the answer; the answer
    among three others of the same relation (drawn with a fixed seed)."""
    facts = background_facts(data)
    by_relation: dict[str, list[str]] = {}
    for f in facts:
        by_relation.setdefault(f["relation"], []).append(f["answer"])
    rng = np.random.default_rng(0)
    docs = []
    for f in facts:
        others = sorted(set(by_relation[f["relation"]]) - {f["answer"]})
        if len(others) < 3:
            continue
        choices = [f["answer"], *(others[i] for i in rng.choice(len(others), size=3, replace=False))]
        order = rng.permutation(4)
        docs.append({"context": f["said"][0].split("{o}")[0].format(s=f["subject"]).rstrip(),
                     "choices": [f"{choices[i]}." for i in order], "label": int(np.argmax(order == 0))})
    return docs


def _text_docs(data) -> list[dict]:
    """Each background fact in a phrasing the corpus never used for it: sentences the model never read."""
    corpus = set(_statements(data).documents)
    out = []
    for f in background_facts(data):
        spec = _statements(data).spec.subsets[f["relation"]]
        unsaid = [t for t in spec.statements if t not in f["said"]]
        if unsaid and (text := unsaid[0].format(s=f["subject"], o=f["answer"])) not in corpus:
            out.append({"text": text})
    return out


def _metric(name: str, aggregation: str, higher: bool) -> dict:
    return {"metric": name, "aggregation": aggregation, "higher_is_better": higher}


SANDBOX.register("sandbox-facts", SandboxTask(
    "sandbox-facts",
    {"output_type": "multiple_choice", "doc_to_text": "{{context}}", "doc_to_choice": "{{choices}}",
     "doc_to_target": "{{label}}", "metric_list": [_metric("acc", "mean", True), _metric("acc_norm", "mean", True)]},
    _facts_docs, "multiple choice, by log-likelihood: facts of the world the model read in pretraining and the "
                 "study neither trains nor tests, each against three answers of its relation"))
SANDBOX.register("sandbox-text", SandboxTask(
    "sandbox-text",
    {"output_type": "loglikelihood_rolling", "doc_to_text": "", "doc_to_target": "{{text}}",
     "metric_list": [_metric("bits_per_byte", "bits_per_byte", False),
                     _metric("word_perplexity", "weighted_perplexity", False),
                     _metric("byte_perplexity", "weighted_perplexity", False)]},
    _text_docs, "perplexity (log-likelihood of whole texts) on sentences of the world the model never read: its "
                "background facts in phrasings the corpus never used for them"))


def _sandbox_spec(task: SandboxTask, data, cache_dir: str) -> dict:
    """The task's lm-eval config over a JSON-lines file of its documents, written once under cache_dir."""
    docs = task.documents(data)
    if not docs:
        raise ValueError(f"{task.name}: the world has no documents for it (no background facts)")
    path = Path(cache_dir) / "general" / f"{task.name}-{fingerprint(docs)}.jsonl"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_name(path)
        tmp.write_text("".join(json.dumps(d) + "\n" for d in docs))
        tmp.replace(path)
    return {**task.config, "task": task.name, "dataset_path": "json", "test_split": "test",
            "dataset_kwargs": {"data_files": {"test": str(path.resolve())}}}


# -- loading tasks ----------------------------------------------------------------------------------------

class TaskProblem(ValueError):
    """A task of eval.general that cannot be used, with what to do about it."""


def lm_eval_version() -> str:
    try:
        return importlib.metadata.version("lm_eval")
    except importlib.metadata.PackageNotFoundError:
        raise TaskProblem("eval.general needs lm-evaluation-harness: pip install 'ftscope[general]' "
                          "(or pip install lm-eval)") from None


@lru_cache(maxsize=4)
def _manager(include_path: tuple[str, ...]):
    """lm-eval's index of its tasks and the user's (indexing its ~15,000 YAMLs takes seconds: once a process)."""
    from lm_eval.tasks import TaskManager  # deferred: lm-eval is needed only where eval.general is set

    return TaskManager(include_path=list(include_path) or None)


def load_tasks(general: GeneralConfig, cache_dir: str, data=None) -> dict[str, list]:
    """{configured name: its lm-eval Task objects (a group gives several)}, datasets loaded. Sandbox tasks need
    the study's `data` (their documents are written under `cache_dir`). Raises TaskProblem saying what to fix."""
    lm_eval_version()
    manager = _manager(tuple(str(Path(p).resolve()) for p in general.include_path))
    out = {}
    for spec in general.specs:
        name = spec.task
        if name in SANDBOX and name not in manager.all_tasks:
            if data is None:
                raise TaskProblem(f"{name}: a sandbox task needs the study's data")
            try:
                spec_or_name = _sandbox_spec(SANDBOX.get(name), data, cache_dir)
            except ValueError as e:
                raise TaskProblem(f"eval.general.tasks: {e}") from None
        elif name in manager.all_tasks:
            spec_or_name = name
        else:
            close = difflib.get_close_matches(name, [*SANDBOX, *manager.all_tasks], n=3, cutoff=0.6)
            hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
            raise TaskProblem(f"eval.general.tasks: unknown task {name!r}; {hint}known: ftscope's sandbox tasks "
                              f"({', '.join(SANDBOX)}), lm-eval {lm_eval_version()}'s {len(manager.all_tasks):,} "
                              f"(`lm-eval ls tasks`) and your own task YAMLs in eval.general.include_path")
        with _quiet():
            try:
                loaded = manager.load([spec_or_name])
            except (OSError, ConnectionError, FileNotFoundError, ValueError) as e:
                raise TaskProblem(
                    f"eval.general.tasks: the data of task {name} cannot be loaded here ({type(e).__name__}: "
                    f"{str(e)[:300]}). Offline, describe the task in a YAML of eval.general.include_path over "
                    f"local files (dataset_path: json, dataset_kwargs: {{data_files: ...}})") from None
        out[name] = [loaded["tasks"][k] for k in sorted(loaded["tasks"])]
    return out


def task_hash(task) -> str:
    """A hash of the task's resolved config, local data files by their contents (not their paths)."""
    config = task.dump_config()
    config.get("metadata", {}).pop("config_source", None)
    files = (config.get("dataset_kwargs") or {}).get("data_files")
    if files:
        flat = files.values() if isinstance(files, dict) else files if isinstance(files, list) else [files]
        config["dataset_kwargs"]["data_files"] = sorted(
            file_digest(Path(f)) if Path(str(f)).is_file() else str(f) for f in flat)
    return fingerprint(config)


def problems(cfg, data) -> list[str]:
    """What `validate` says of eval.general: lm-eval missing, an unknown task, data not found, an unknown metric."""
    if section(cfg) is None:
        return []
    try:
        tasks = load_tasks(section(cfg), cfg.cache_dir, data)
    except TaskProblem as e:
        return [str(e)]
    out = []
    for spec in section(cfg).specs:
        for task in tasks[spec.task]:
            produced = list(task.higher_is_better())
            if spec.metric is not None and spec.metric not in produced:
                out.append(f"eval.general.tasks: task {task.config.task} produces {produced}, not {spec.metric!r}")
    return out


def costs(cfg, data, cells: int) -> list[str]:
    """validate's line: documents each task scores per cell (after `limit`) x cells."""
    if section(cfg) is None:
        return []
    limit = section(cfg).limit
    per_cell = {name: sum(min(len(t.eval_docs), limit or len(t.eval_docs)) for t in ts)
                for name, ts in load_tasks(section(cfg), cfg.cache_dir, data).items()}
    total = sum(per_cell.values())
    return [f"general capability (lm-eval {lm_eval_version()}): {total:,} documents per cell "
            f"({', '.join(f'{n} {k}' for k, n in per_cell.items())}) x {cells} cells = {total * cells:,} documents"]


@lru_cache(maxsize=8)
def _identity(raw: str, cache_dir: str) -> dict:
    """What of eval.general changes a cell's scores: lm-eval's version, the settings and every task's hash (a
    sandbox task's: its version, its data being the study's, which the cell's id covers already). Computed once a
    process: each `ftscope run`, and each job of a cluster, is a process of its own."""
    general = GeneralConfig.model_validate_json(raw)
    hashes = {}
    others = [s.task for s in general.specs if s.task not in SANDBOX]
    if others:
        loaded = load_tasks(general.model_copy(update={"tasks": others}), cache_dir)
        hashes = {name: [task_hash(t) for t in ts] for name, ts in loaded.items()}
    for s in general.specs:
        if s.task in SANDBOX:
            hashes[s.task] = f"sandbox-v{SANDBOX.get(s.task).version}"
    return {"lm_eval": lm_eval_version(), "limit": general.limit, "num_fewshot": general.num_fewshot,
            "tasks": hashes}


def identity(cfg) -> dict | None:
    """What eval.general adds to its cells' ids: lm-eval's version and each task's hash (None without it: other
    cells keep their ids)."""
    return None if section(cfg) is None else _identity(section(cfg).model_dump_json(), cfg.cache_dir)


# -- scoring ----------------------------------------------------------------------------------------------

@contextmanager
def _quiet():
    """lm-eval logs every task's build at WARNING and draws progress bars on stderr (one per document of a
    perplexity task, some hard-coded on): while it runs, stderr is dropped (an error still raises, with its
    message). The cell's progress line says `general` before and `general done` after."""
    logger = logging.getLogger("lm_eval")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with open(os.devnull, "w") as sink, redirect_stderr(sink):
            yield
    finally:
        logger.setLevel(level)


@contextmanager
def _random_state_kept():
    """lm-eval seeds Python's, NumPy's and torch's generators: the cell's own draws go on as if it had not run."""
    import torch  # deferred: only a cell scores

    py, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(np_state)


def score(run, model) -> dict[str, list[dict]]:
    """Score the cell's model on every task of eval.general: its rows of metrics, scores and general."""
    from lm_eval import simple_evaluate  # deferred: as above
    from lm_eval.models.huggingface import HFLM  # deferred: as above

    general = section(run.cfg)
    tasks = load_tasks(general, run.cfg.cache_dir, run.data)
    model.eval()
    with _quiet(), _random_state_kept():
        lm = HFLM(pretrained=model, tokenizer=run.tokenizer, batch_size=general.batch_size)
        out = simple_evaluate(model=lm, tasks=[t for ts in tasks.values() for t in ts],
                              num_fewshot=general.num_fewshot, limit=general.limit, log_samples=True,
                              bootstrap_iters=BOOTSTRAP, random_seed=run.cell.seed)
    version = lm_eval_version()
    metrics, scores, general_rows = [], [], []
    for name, leaves in tasks.items():
        for task in leaves:
            rows = task_rows(run.cid, name, task, out, version)
            metrics += rows[0]
            scores += rows[1]
            general_rows += rows[2]
    return {"metrics": metrics, "scores": scores, "general": general_rows}


def task_rows(cid: str, name: str, task, out: dict, version: str) -> tuple[list, list, list]:
    """One task's rows from lm-eval's output: per document (its own score, as the metric's aggregation gives it
    for that one document), their mean, and lm-eval's own number with its stderr."""
    leaf = task.config.task
    samples = out["samples"][leaf]
    filters = list(dict.fromkeys(s["filter"] for s in samples))
    shots = int(out.get("n-shot", {}).get(leaf) or 0)
    higher = task.higher_is_better()
    metrics, scores, general = [], [], []
    for flt in filters:
        mine = sorted((s for s in samples if s["filter"] == flt), key=lambda s: s["doc_id"])
        for metric, aggregate in task.aggregation().items():
            if metric not in mine[0]:
                continue
            label = metric if flt == "none" else f"{metric},{flt}"
            values = [float(aggregate([s[metric]])) for s in mine]
            key = {"cell_id": cid, "task": name, "dataset": leaf, "domain": DOMAIN, "slice": "all", "prompt_map": 0,
                   "shots": shots, "metric": label}
            scores += [as_row(Score(**key, item_id=f"{leaf}:{s['doc_id']}", value=v, prediction=None))
                       for s, v in zip(mine, values)]
            metrics.append(as_row(Metric(**key, n=len(values), total=float(sum(values)), value=float(np.mean(values)))))
            result = out["results"][leaf]
            stderr = result.get(f"{metric}_stderr,{flt}")
            general.append(as_row(General(cell_id=cid, task=name, dataset=leaf, metric=label, shots=shots, n=len(values),
                                       value=_number(result.get(f"{metric},{flt}")), stderr=_number(stderr),
                                       higher_is_better=bool(higher.get(metric, True)), lm_eval=version,
                                       task_hash=task_hash(task))))
    return metrics, scores, general


def _number(x) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None  # lm-eval writes "N/A" where it has no stderr
    return v if math.isfinite(v) else None
