"""Study G (Yang et al., NAACL 2024): after fine-tuning on one task, how well does a model do on the
same task in-domain, out-of-domain and on other tasks, compared with in-context learning (ICL); and
does fine-tuning with in-context examples (FTICL) generalize better?

Axes: the training dataset (one per task) and its size. Every cell's model is tested on every test
set of every task, under each prompt map, at each test set's shots. A test set is in-domain when it
shares the training set's task and domain, out-of-domain when it shares only the task, cross-task
otherwise; the base model's rows (method `icl`) are placed against the training set of their own task.
"""

import json
import logging
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt

from ftscope import datasets
from ftscope.change import change_stats
from ftscope.context import PromptCase
from ftscope.costs import human
from ftscope.datasets import Dataset, Where
from ftscope.datasets.records import DataError
from ftscope.evaluate import LabelError, label_token_ids, predict, result_rows, score
from ftscope.general import GeneralConfig
from ftscope.grid import expand
from ftscope.methods import RECIPES
from ftscope.models import load_tokenizer
from ftscope.prompts import Prompter, prompt_problems
from ftscope.records import Change, as_row
from ftscope.registry import unknown
from ftscope.studies.g_report import REPORT
from ftscope.studies.study import GridSection, Study, positive_counts, register
from ftscope.studydata import Source, StudyData, cached_data
from ftscope.yamlfile import short

log = logging.getLogger("ftscope.study")

PAPER_TRAIN = ["xsum", "socialqa", "amazon", "paws", "multinli"]
PAPER_TEST = ["xsum", "xlsum", "cnn", "pdfs", "socialqa", "tweetqa", "sciqa", "amazon", "amazonfood", "sst2", "yelp",
              "paws", "qqp", "stsb", "multinli", "multinli2", "rte", "gptnli"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Strict):
    """Study G's `data:` section: the test sets and where the records are."""
    test: list[str] = Field(default_factory=lambda: list(PAPER_TEST), min_length=1,
                            description="datasets every model is tested on")
    root: str | None = Field(None, description="the paper's released data directory (datasets of format paper_g)")
    source: Literal["default", "hub"] = Field("default", description="hub: read each dataset from its `hub:` source")
    test_items: int | None = Field(None, gt=0, description="test the first N items of each set (default: each "
                                                           "dataset's own, 250 for the paper's)")
    options: dict = Field(default_factory=dict, description="options of generated (sandbox-g) datasets: seed, sizes")
    unlabeled: Literal["keep", "drop"] = Field("keep", description="records without a gold label (MNLI's '-'): keep "
                                               "them, scored wrong as the paper's code does, or drop them")


class GridConfig(GridSection):
    train: list[str] = Field(default_factory=lambda: list(PAPER_TRAIN), min_length=1,
                             description="training datasets (one per task, usually)")
    sizes: list[int] = Field(default_factory=lambda: [2000, 4000, 6000], min_length=1)
    methods: list[str] = Field(default_factory=lambda: ["icl", "sft", "fticl"], min_length=1)
    positive = positive_counts("sizes")


class EvalConfig(_Strict):
    prompt_maps: list[NonNegativeInt] = Field(default_factory=lambda: [0, 1], min_length=1,
                                              description="templates tested")
    shots: dict[str, Annotated[list[NonNegativeInt], Field(min_length=1)]] | None = Field(
        None, description="task -> shots tested (default: each dataset's)")
    max_new_tokens: int | None = Field(None, gt=0, description="override each dataset's (60 for generation)")
    general: GeneralConfig | None = Field(None, description="lm-eval tasks every cell and base model is scored on "
                                                            "(ftscope/general.py)")


SECTIONS = {"data": DataConfig, "grid": GridConfig, "eval": EvalConfig}


def specs(cfg) -> dict[str, datasets.DatasetSpec]:
    """The descriptions of the study's datasets; those read from the paper's data directory take their
    prompt maps from its `prompt_map.json` when it has one (the released data's own templates)."""
    registry = datasets.registry(cfg.datasets_dirs)
    names = list(dict.fromkeys(cfg.grid.train + cfg.data.test))
    missing = [n for n in names if n not in registry]
    if missing:
        raise KeyError(unknown("datasets", missing, registry))
    maps = prompt_maps(cfg.data.root) if cfg.data.source == "default" else None
    out = {}
    for n in names:
        spec = registry[n]
        folder = (spec.source.model_extra or {}).get("folder")
        if maps and datasets.source_of(spec)[1].takes_path and all(folder in m for m in maps):
            spec = spec.model_copy(update={"templates": [m[folder] for m in maps]})
        out[n] = spec
    return out


def prompt_maps(root: str | None) -> list[dict] | None:
    """`<root>/prompt_map.json`: a list of maps from task folder to template, or None."""
    f = Path(root) / "prompt_map.json" if root else None
    if f is None or not f.is_file():
        return None
    try:
        maps = json.loads(f.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{f}: not a valid JSON file ({e}); it must be a list of maps from task folder to "
                        f"template") from None
    if not isinstance(maps, list) or not all(isinstance(m, dict) for m in maps):
        raise DataError(f"{f}: expected a list of maps from task folder to template, got {short(maps)}")
    for i, m in enumerate(maps):
        for folder, template in m.items():
            if not isinstance(template, str):
                raise DataError(f"{f}: map {i}, task folder {folder!r}: the template must be a string, got "
                                f"{short(template)}")
    return maps


def relation(train_spec, test_spec) -> str:
    if train_spec.task != test_spec.task:
        return "cross_task"
    return "in_domain" if train_spec.domain == test_spec.domain else "out_of_domain"


def reference_train(cfg, test_spec, by_name: dict) -> datasets.DatasetSpec | None:
    """The training set a test set is compared against when the model was not trained (ICL): the
    first training set of the grid with the same task."""
    return next((by_name[t] for t in cfg.grid.train if by_name[t].task == test_spec.task), None)


def shots_of(cfg, spec) -> list[int]:
    if cfg.eval.shots is not None and spec.task in cfg.eval.shots:
        return cfg.eval.shots[spec.task]
    return spec.shots


def train_pool(ds: Dataset) -> list[dict]:
    """Split `train`, or the largest of the paper's nested `train_<n>` files."""
    if ds.split("train"):
        return ds.split("train")
    sizes = sorted({int(it["split"][6:]) for it in ds.items if it["split"].startswith("train_")})
    return ds.split(f"train_{sizes[-1]}") if sizes else []


class Generalization(Study):
    """Axes: the training dataset (one per task) and its size. Every cell's model is tested on every test
    set of every task, under each prompt map, at each test set's shots."""
    kind, title, sections, report = "g", "Study G: generalization", SECTIONS, REPORT

    def load_data(self, cfg) -> StudyData:
        d = cfg.data

        def source(spec) -> Source:
            _, reader = datasets.source_of(spec, use_hub := d.source == "hub" and spec.hub is not None)
            return Source(spec, Where(d.root if reader.takes_path else None, dict(d.options) if reader.options else {}),
                          use_hub)

        def build(name: str, src: Source) -> Dataset:
            ds = datasets.load(src.spec, src.where, use_hub=src.use_hub)
            n_test = d.test_items or src.spec.test_items
            tests = ds.split("test")[:n_test] if n_test else ds.split("test")
            keep = {id(it) for it in tests}
            items = [it for it in ds.items if (it["split"] != "test" or id(it) in keep)
                     and not (d.unlabeled == "drop" and it.get("unlabeled"))]
            return Dataset(src.spec, items, ds.documents)

        return cached_data({"test_items": d.test_items, "unlabeled": d.unlabeled},
                           {name: source(spec) for name, spec in specs(cfg).items()}, build, cfg.cache_dir)

    def grid(self, cfg) -> list:
        by_name = specs(cfg)
        points = [((("train", t), ("size", n)), by_name[t]) for t in cfg.grid.train for n in cfg.grid.sizes]
        return expand(cfg, points, cfg.grid.methods, cfg.grid.seeds)

    def cell_config(self, cfg, cell) -> dict:
        return {"data": cfg.data.model_dump(exclude={"root"}), "eval": cfg.eval.model_dump(exclude={"general"})}

    def cell_reads(self, cfg, cell, data) -> list[tuple[str, str]]:
        """What a cell reads: every test set's test records and demonstrations, and, for a cell that trains,
        its training set's training records and demonstrations (FTICL)."""
        reads = [(t, s) for t in cfg.data.test for s in ("test", "demo")]
        train = dict(cell.axes).get("train")
        if train is not None:
            reads += [(train, s) for s in {it["split"] for it in data.dataset(train).items} if s != "test"]
        return reads

    def training_items(self, run) -> tuple[list[dict], Dataset]:
        """The first `size` records of the training set; the paper's `<name>_train_<size>.json` when it exists."""
        ds = run.data.dataset(run.axes["train"])
        size = run.axes["size"]
        if exact := ds.split(f"train_{size}"):
            return exact, ds
        pool = train_pool(ds)
        if len(pool) < size:
            raise ValueError(f"dataset {ds.name} has {len(pool)} training records; size {size} asked")
        return pool[:size], ds

    def evaluate(self, run, built) -> None:
        """Every test set x prompt map x shots; then the parameter difference of a fine-tuned model."""
        cfg, tok = run.cfg, run.tokenizer
        by_name = {name: ds.spec for name, ds in run.data.datasets.items()}
        train = by_name.get(run.axes.get("train"))
        built = built.merge_adapter()  # peft merges in place: from here on only the merged model exists
        engine = run.engine(built)
        metric_rows, score_rows = [], []
        run.progress.phase("evaluate", total=sum(len(run.data.dataset(n).split("test")) * len(shots_of(cfg, run.data.dataset(
            n).spec)) for n in cfg.data.test) * len(cfg.eval.prompt_maps), unit="prompts")
        done = 0
        for name in cfg.data.test:
            ds = run.data.dataset(name)
            test = ds.split("test")
            prompter = run.prompter(ds)
            ref = train or reference_train(cfg, ds.spec, by_name)
            rel = relation(ref, ds.spec) if ref else "untrained_task"
            for pm in cfg.eval.prompt_maps:
                for k in shots_of(cfg, ds.spec):
                    preds = predict(engine, tok, prompter, test, prompt_map=pm, demos=ds.demos[:k],
                                    max_new_tokens=cfg.eval.max_new_tokens)
                    m, s = result_rows(run.cid, ds.spec, ds.spec.metric, test, score(prompter, test, preds),
                                       [rel] * len(test), None, preds, pm, k)
                    metric_rows += m
                    score_rows += s
                    done += len(test)
                    run.progress.update(done)
        engine.close()
        run.write("metrics", metric_rows)
        run.write("scores", score_rows)
        if not built.unchanged:  # a model that changed: mean |theta_ft - theta_base| over all parameters
            run.progress.phase("params")
            rows = change_stats(run.base_dir, run.checkpoint(built), region="all", measure="absolute", shares=())
            run.store.write("params", run.cid, [as_row(Change(cell_id=run.cid, **r)) for r in rows])

    def prompt_cases(self, cfg, data: StudyData):
        """Every test prompt at its test set's most shots with room for the answer, and every training input at
        the most FTICL shots with its target (cut to train.max_length, as training cuts it)."""
        for name in cfg.data.test:
            ds = data.dataset(name)
            k = max(shots_of(cfg, ds.spec))
            room = 1 if ds.spec.type == "classification" else cfg.eval.max_new_tokens or ds.spec.generation.max_new_tokens
            for pm in cfg.eval.prompt_maps:
                yield from (PromptCase(f"{name}, prompt map {pm}, {k} shots", ds, it, pm, tuple(ds.demos[:k]), room)
                            for it in ds.split("test"))
        for t in cfg.grid.train:
            ds = data.dataset(t)
            shots = max([v.get("shots", 0) for m in cfg.grid.methods if RECIPES.get(m).trains
                         for v in RECIPES.get(m).variants(cfg, ds.spec)], default=None)
            if shots is not None:
                yield from (PromptCase(f"training on {t} with {shots} demonstrations", ds, it, 0, tuple(ds.demos[:shots]),
                                       cap=cfg.train.max_length) for it in train_pool(ds)[:max(cfg.grid.sizes)])

    def validate(self, cfg) -> list[str]:
        try:
            by_name = specs(cfg)
        except (KeyError, ValueError, FileNotFoundError) as e:
            return [f"data: {e}"]
        problems = []
        for name, spec in by_name.items():
            if spec.type == "cbqa":
                problems.append(f"data: {name} is a cbqa dataset; Study G tests generation and classification tasks")
            if max(cfg.eval.prompt_maps) >= len(spec.templates):
                problems.append(f"eval.prompt_maps: dataset {name} has {len(spec.templates)} prompt maps "
                                f"({spec.origin})")
            if datasets.source_of(spec)[1].takes_path and cfg.data.source == "default" and not cfg.data.root:
                problems.append(f"data.root: dataset {name} is read from the study's data directory; set data.root")
        tasks = {spec.task for spec in datasets.registry(cfg.datasets_dirs).values() if spec.type != "cbqa"}
        problems += [f"eval.shots: {unknown('task', task, tasks)}" for task in sorted(cfg.eval.shots or {})
                     if task not in tasks]
        tasks = {by_name[t].task for t in cfg.grid.train}
        if len(tasks) < len(cfg.grid.train):
            problems.append("grid.train: give one training dataset per task")
        if problems:
            return problems
        try:
            data = self.load_data(cfg)
        except (ValueError, KeyError, FileNotFoundError) as e:
            return [f"data: {e}"]
        for name in cfg.data.test:
            ds = data.dataset(name)
            problems += prompt_problems(cfg.models, ds)
            need = max(shots_of(cfg, ds.spec))
            if len(ds.demos) < need:
                problems.append(f"data: {name} has {len(ds.demos)} demonstrations; {need} shots asked")
            if not ds.split("test"):
                problems.append(f"data: {name} has no test records")
        for t in cfg.grid.train:
            ds, need = data.dataset(t), max(cfg.grid.sizes)
            if len(train_pool(ds)) < need:
                problems.append(f"grid.sizes: {t} has {len(train_pool(ds))} training records; the largest size "
                                f"asks for {need}")
            shots = [v.get("shots", 0) for m in cfg.grid.methods if RECIPES.get(m).trains
                     for v in RECIPES.get(m).variants(cfg, ds.spec)]
            if len(ds.demos) < max(shots, default=0):
                problems.append(f"fticl: {t} has {len(ds.demos)} demonstrations; {max(shots)} asked")
        return problems

    def notes(self, cfg) -> list[str]:
        """Records without a gold label, per test set: kept (scored wrong, as the paper's code does) or dropped."""
        data, out = self.load_data(cfg), []
        for name, ds in data.datasets.items():
            marks = ds.spec.unlabeled
            if not marks:
                continue
            counts = {}
            for it in ds.items:
                if it.get("unlabeled"):
                    counts[it["split"]] = counts.get(it["split"], 0) + 1
            if counts:
                out.append(f"warning: data: {name} has {', '.join(f'{n} {s}' for s, n in sorted(counts.items()))} "
                           f"records labelled {' or '.join(map(repr, marks))} (no gold label): kept and never "
                           f"predicted correctly, as the paper's code does; `data.unlabeled: drop` leaves them out")
        return out

    def prepare(self, cfg, model, base_path: str, data: StudyData, store) -> list[str]:
        """Before any cell: with this model's tokenizer, the label words of every classification test set
        must differ in their first token. Returns the problems (none: an empty list)."""
        tok, problems = load_tokenizer(base_path, model.trust_remote_code), []
        for name in cfg.data.test:
            ds = data.dataset(name)
            if ds.spec.type == "classification" and ds.split("test"):
                for pm in cfg.eval.prompt_maps:
                    try:
                        label_token_ids(tok, Prompter(ds.spec, model.prompt, tok), ds.split("test")[0], pm)
                    except LabelError as e:
                        problems.append(f"model {model.name}: {e}")
        return sorted(set(problems))

    def check(self, cfg, data: StudyData, preps: dict[str, list[str]]) -> dict:
        """Every cell of a model whose tokenizer cannot tell the label words apart is not run, with why."""
        return {c: f"not run: {'; '.join(preps[c.model])}" for c in self.grid(cfg) if preps.get(c.model)}

    def costs(self, cfg, calibrate: bool = False) -> list[str]:
        """Evaluation prompts per cell (every test set x prompt map x shots) and training tokens."""
        data = self.load_data(cfg)
        gen = cls = 0
        for name in cfg.data.test:
            ds = data.dataset(name)
            n = len(ds.split("test")) * len(cfg.eval.prompt_maps) * len(shots_of(cfg, ds.spec))
            gen, cls = (gen + n, cls) if ds.spec.type == "generation" else (gen, cls + n)
        cells = self.grid(cfg)
        words = max((sum(len(" ".join(str(v) for v in it.values() if isinstance(v, str)).split()) for it in train_pool(ds))
                     / max(1, len(train_pool(ds))) for ds in (data.dataset(t) for t in cfg.grid.train)), default=0)
        return [f"evaluation: per cell {gen:,} generated answers and {cls:,} label scorings; "
                f"{human((gen + cls) * len(cells))} prompts over {len(cells)} cells",
                f"training: about {human(max(cfg.grid.sizes) * cfg.train.epochs * words)} tokens in the largest cell "
                f"({max(cfg.grid.sizes)} records x {cfg.train.epochs:g} epochs x ~{words:.0f} words, before demonstrations)"]


STUDY = register(Generalization())
