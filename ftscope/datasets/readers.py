"""Readers: how the records of a described dataset are found. A dataset names its reader in
`source.format`. A reader declares what the rest of ftscope needs to know of it, so that no caller
compares reader names: the local files its records come from (they are part of the data's
fingerprint: an edited file is a new dataset), the options a study may give it (`data.options`, for
generated data), and whether it reads from the study's data location (`data.path` / `data.root`).
The sandbox generators register their readers from ftscope/sandbox/.

Every reader returns items (dicts with `item_id`, `split` and the fields the templates use) and, for
generated worlds, the pretraining documents that go with them.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel

from ftscope.datasets.records import DataError, read_records, to_item
from ftscope.datasets.spec import DatasetSpec
from ftscope.registry import Registry


@dataclass(frozen=True)
class Loaded:
    items: list[dict]
    documents: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Where:
    """What a study adds to a description: a local path or hub id, and options over the source's own."""
    path: str | None = None
    options: dict = field(default_factory=dict)


def _tree(spec: DatasetSpec, opts: dict, where: Where) -> list[Path]:
    """Every file under the study's local data path (none for a hub id or no path)."""
    root = Path(where.path).expanduser() if where.path else None
    if root is None or not root.exists():
        return []
    return [root] if root.is_file() else sorted(f for f in root.rglob("*") if f.is_file())


@dataclass(frozen=True)
class Reader:
    read: Callable[[DatasetSpec, dict, Where], Loaded]
    inputs: Callable[[DatasetSpec, dict, Where], list[Path]] = _tree  # local files the records come from
    options: type[BaseModel] | None = None  # what a study's `data.options` may set (generated data)
    takes_path: bool = False  # reads from the study's data location (data.path, data.root)


READERS: Registry[Reader] = Registry("data format")


def reader(name: str, inputs: Callable | None = None, options: type[BaseModel] | None = None,
           takes_path: bool = False):
    """Register the decorated function as the reader of source format `name`."""
    def deco(fn):
        READERS.register(name, Reader(fn, inputs or _tree, options, takes_path))
        return fn
    return deco


def _local(spec: DatasetSpec, path: str) -> Path:
    """A path relative to the description file (or absolute)."""
    p = Path(path).expanduser()
    return p if p.is_absolute() or not spec.origin else Path(spec.origin).parent / p


def _named_files(spec: DatasetSpec, opts: dict, where: Where) -> dict[str, Path]:
    """Source format `files`: split option -> its file."""
    root = Path(where.path) if where.path else None
    return {split: root / opts[split] if root else _local(spec, opts[split])
            for split in ("records", "train", "test", "demo") if split in opts}


@reader("files", inputs=lambda spec, opts, where: sorted(set(_named_files(spec, opts, where).values())))
def read_files(spec: DatasetSpec, opts: dict, where: Where) -> Loaded:
    """Local JSON / JSONL / Parquet files: one per split (`train:`, `test:`, `demo:`), or one file of
    every split (`records:`, each record with a `split` field). Paths are relative to the description,
    or to the study's `path` when it gives one."""
    items = []
    for split, f in _named_files(spec, opts, where).items():
        for i, r in enumerate(read_records(f)):
            s = r.get("split") if split == "records" else split
            if s not in ("train", "test", "demo"):
                raise DataError(f"{f}, record {i}: field 'split' must be train, test or demo, got {s!r}")
            items.append(to_item(spec, r, split=s, position=i, where=str(f)))
    if not items:
        raise DataError(f"{spec.origin}: source format 'files' needs records: or one of train:, test:, demo:")
    return Loaded(items)


@reader("hub")
def read_hub(spec: DatasetSpec, opts: dict, where: Where) -> Loaded:
    """A dataset id on the Hugging Face hub (or a local dataset directory), through `datasets`:
    `path:` the id, `name:` its configuration, `splits:` split -> the dataset's split name, `fields:`
    field in templates <- the dataset's column, `label_map:` stored label value -> label word,
    `threshold:` (STS-B style) score -> label word above or below it."""
    import datasets  # deferred: Hugging Face datasets takes seconds to import; only hub sources need it

    path = where.path or opts.get("path")
    if not path:
        raise DataError(f"{spec.origin}: source format 'hub' needs `path:` (a dataset id)")
    splits = opts.get("splits", {"train": "train", "test": "test"})
    label_map, threshold = opts.get("label_map"), opts.get("threshold")
    items = []
    for split, hub_split in splits.items():
        ds = datasets.load_dataset(path, opts.get("name"), split=hub_split)
        for i, r in enumerate(ds):
            r = dict(r)
            for name, column in opts.get("fields", {}).items():
                r[name] = r.get(column)
            if threshold is not None:
                r[spec.target] = threshold["above"] if float(r[spec.target]) >= threshold["at"] else threshold["below"]
            elif label_map is not None:
                r[spec.target] = label_map.get(r[spec.target], label_map.get(str(r[spec.target])))
            items.append(to_item(spec, r, split=split, position=i, where=f"{path}[{hub_split}]"))
    return Loaded(items)


def _paper_g_files(spec: DatasetSpec, opts: dict, where: Where) -> dict[str, Path]:
    """Split -> file of a dataset in the Study G paper's layout (see read_paper_g)."""
    if not where.path:
        return {}
    folder = Path(where.path) / opts["folder"]
    stem = opts.get("file", spec.name)
    files = {f"train_{m.group(1)}": f for f in sorted(folder.glob(f"{stem}_train_*.json"))
             if (m := re.fullmatch(rf"{re.escape(stem)}_train_(\d+)\.json", f.name))}
    tests = sorted(folder.glob(f"{stem}_test_*.json"))
    if tests:
        files["test"] = tests[-1]
    if (folder / "few_shot" / f"{stem}_few_shot.json").is_file():
        files["demo"] = folder / "few_shot" / f"{stem}_few_shot.json"
    return files


@reader("paper_g", inputs=lambda spec, opts, where: sorted(_paper_g_files(spec, opts, where).values()), takes_path=True)
def read_paper_g(spec: DatasetSpec, opts: dict, where: Where) -> Loaded:
    """The released data of Study G (Yang et al.): `<root>/<folder>/<file>_train_<n>.json` (nested
    training sets of n records, each loaded as split `train_<n>`), `<file>_test_500.json` (split `test`)
    and `few_shot/<file>_few_shot.json` (split `demo`, the demonstration pool, in order)."""
    if not where.path:
        raise DataError(f"dataset {spec.name}: the paper's data layout needs a directory (data.root in the config)")
    files = _paper_g_files(spec, opts, where)
    folder, stem = Path(where.path) / opts["folder"], opts.get("file", spec.name)
    if "test" not in files and not any(s.startswith("train_") for s in files):
        raise DataError(f"dataset {spec.name}: no {stem}_train_<n>.json or {stem}_test_<n>.json in {folder}")
    items = []
    for split, f in files.items():
        items += [to_item(spec, r, split=split, position=i, where=str(f)) for i, r in enumerate(read_records(f))]
    return Loaded(items)


_EQ_FILE = re.compile(r"^(P\d+)\.(train|dev|test)\.jsonl?$")


def _eq_files(spec: DatasetSpec, opts: dict, where: Where) -> list[Path]:
    path = where.path or opts.get("path")
    return sorted(f for f in Path(path).rglob("P*.json*") if _EQ_FILE.match(f.name)) if path and Path(path).is_dir() \
        else []


@reader("entityquestions", inputs=_eq_files, takes_path=True)
def read_entityquestions(spec: DatasetSpec, opts: dict, where: Where) -> Loaded:
    """EntityQuestions: a local directory of files named like `P19.train.json` (any sub-folder) with
    `question` and `answers`, or a dataset id with train and test splits and a `relation` column.
    Out-of-domain relations are tested only: their training files are not read."""
    path = where.path or opts.get("path")
    if not path:
        raise DataError(f"dataset {spec.name}: set data.path to a local EntityQuestions directory or a dataset id")
    id_relations = set(opts.get("id_relations") or spec.groups.get("id", []))
    rows: list[tuple[dict, str, str, str, int]] = []  # record, relation, split, file, position
    local = Path(path)
    if local.is_dir():
        files = [(f, *_EQ_FILE.match(f.name).groups()) for f in _eq_files(spec, opts, where)]
        if not files:
            raise DataError(f"{path}: no files named like 'P19.train.json' or 'P19.test.jsonl'")
        for f, pid, split in files:
            if split != "dev" and pid in spec.subsets and (pid in id_relations or split == "test"):
                rows += [(r, r.get("relation") or pid, split, str(f), i) for i, r in enumerate(read_records(f))]
    else:
        import datasets  # deferred: Hugging Face datasets takes seconds to import; only hub sources need it

        ds = datasets.load_dataset(path)
        missing = {"train", "test"} - set(ds)
        if missing:
            raise DataError(f"dataset {path} lacks splits {sorted(missing)}")
        rows = [(dict(r), r["relation"], split, f"{path}[{split}]", i) for split in ("train", "test")
                for i, r in enumerate(ds[split]) if r["relation"] in id_relations or split == "test"]
    items = []
    for r, pid, split, f, i in rows:
        if pid in spec.subsets:
            if r.get("question") is None:
                raise DataError(f"{f}, record {i}: no field 'question' (has {sorted(r)})")
            item = to_item(spec, {**r, "relation": pid}, split=split, position=i, where=f)
            items.append({**item, "domain": "id" if pid in id_relations else "ood"})
    return Loaded(items)
