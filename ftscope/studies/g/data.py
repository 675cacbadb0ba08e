"""Study G's data: the descriptions of its datasets (with the paper's own prompt maps where its data directory
has them), their records with the test caps of `data:`, and how a test set relates to a training set."""

import json
from pathlib import Path

from ftscope import datasets
from ftscope.datasets import Dataset, Where
from ftscope.datasets.records import DataError
from ftscope.registry import unknown
from ftscope.studydata import Source, StudyData, cached_data
from ftscope.yamlfile import short


def load_data(cfg) -> StudyData:
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
