"""What Study G checks before anything runs: problems in the config and its data (`problems`), warnings
(`notes`), what the plan costs (`costs`), and the prompts it will give a model (`prompt_cases`)."""

from ftscope import datasets
from ftscope.context import PromptCase
from ftscope.costs import human
from ftscope.methods import RECIPES
from ftscope.prompts import prompt_problems
from ftscope.registry import unknown
from ftscope.studies.g.data import load_data, shots_of, specs, train_pool
from ftscope.studies.g.grid import grid
from ftscope.studydata import StudyData


def problems(cfg) -> list[str]:
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
        data = load_data(cfg)
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


def notes(cfg) -> list[str]:
    """Records without a gold label, per test set: kept (scored wrong, as the paper's code does) or dropped."""
    data, out = load_data(cfg), []
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


def costs(cfg, calibrate: bool = False) -> list[str]:
    """Evaluation prompts per cell (every test set x prompt map x shots) and training tokens."""
    data = load_data(cfg)
    gen = cls = 0
    for name in cfg.data.test:
        ds = data.dataset(name)
        n = len(ds.split("test")) * len(cfg.eval.prompt_maps) * len(shots_of(cfg, ds.spec))
        gen, cls = (gen + n, cls) if ds.spec.type == "generation" else (gen, cls + n)
    cells = grid(cfg)
    words = max((sum(len(" ".join(str(v) for v in it.values() if isinstance(v, str)).split()) for it in train_pool(ds))
                 / max(1, len(train_pool(ds))) for ds in (data.dataset(t) for t in cfg.grid.train)), default=0)
    return [f"evaluation: per cell {gen:,} generated answers and {cls:,} label scorings; "
            f"{human((gen + cls) * len(cells))} prompts over {len(cells)} cells",
            f"training: about {human(max(cfg.grid.sizes) * cfg.train.epochs * words)} tokens in the largest cell "
            f"({max(cfg.grid.sizes)} records x {cfg.train.epochs:g} epochs x ~{words:.0f} words, before demonstrations)"]


def prompt_cases(cfg, data: StudyData):
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
