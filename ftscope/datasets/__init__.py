"""The dataset registry: every `*.yaml` description shipped in this folder, plus those in a user's own
directories (the config's `datasets_dirs`), which may add datasets or replace shipped ones by name.

Adding a dataset is one YAML file: see k/entityquestions.yaml (closed-book QA) and g/ (the five
tasks of Study G). A file whose name starts with `_` holds fields other files `include:`.
"""

from dataclasses import dataclass, field
from pathlib import Path

from ftscope.datasets.readers import READERS, Loaded, Reader, Where
from ftscope.datasets.spec import DatasetSpec, read_spec
from ftscope.registry import unknown

__all__ = ["Dataset", "DatasetSpec", "Loaded", "Reader", "Where", "get", "inputs", "load", "registry"]

SHIPPED = Path(__file__).parent


def registry(extra_dirs: list[str] | tuple = ()) -> dict[str, DatasetSpec]:
    """name -> description, from the shipped folder then each extra directory in order."""
    specs: dict[str, DatasetSpec] = {}
    for d in [SHIPPED, *map(Path, extra_dirs)]:
        if not d.is_dir():
            raise FileNotFoundError(f"datasets_dirs: {d} is not a directory")
        seen: dict[str, Path] = {}
        for f in sorted(d.rglob("*.yaml")):
            if f.name.startswith("_"):
                continue
            spec = read_spec(f)
            if spec.name in seen:
                raise ValueError(f"two datasets are named {spec.name!r}: {seen[spec.name]} and {f}")
            seen[spec.name] = f
            specs[spec.name] = spec
    return specs


def get(name: str, extra_dirs: list[str] | tuple = ()) -> DatasetSpec:
    specs = registry(extra_dirs)
    if name not in specs:
        raise KeyError(unknown("dataset", name, specs))
    return specs[name]


@dataclass(frozen=True)
class Dataset:
    """A described dataset with its records: items of every split, in file order."""
    spec: DatasetSpec
    items: list[dict]
    documents: list[str] = field(default_factory=list)  # pretraining text of a generated (sandbox) world

    @property
    def name(self) -> str:
        return self.spec.name

    def split(self, name: str) -> list[dict]:
        return [it for it in self.items if it["split"] == name]

    @property
    def demos(self) -> list[dict]:
        """The demonstration pool, in order (split `demo`)."""
        return self.split("demo")


def source_of(spec: DatasetSpec, use_hub: bool = False):
    """The source a dataset is read from (its `hub:` one when asked) and its reader."""
    source = spec.hub if use_hub else spec.source
    if source is None:
        raise ValueError(f"dataset {spec.name} has no `hub:` source; give a local path instead")
    if source.format not in READERS:
        raise ValueError(f"dataset {spec.name} ({spec.origin}): unknown source format {source.format!r}; known: "
                         f"{', '.join(READERS.names())} (a plug-in's format must be imported first: `plugins:`)")
    return source, READERS.get(source.format)


def load(spec: DatasetSpec, where: Where | None = None, use_hub: bool = False) -> Dataset:
    """Read a dataset's records through the reader its description names (or its `hub:` source)."""
    where = where or Where()
    source, reader = source_of(spec, use_hub)
    loaded: Loaded = reader.read(spec, {**(source.model_extra or {}), **where.options}, where)
    return Dataset(spec, loaded.items, list(loaded.documents))


def inputs(spec: DatasetSpec, where: Where | None = None, use_hub: bool = False) -> list[Path]:
    """The local files a dataset's records are read from: their contents are part of its fingerprint."""
    where = where or Where()
    source, reader = source_of(spec, use_hub)
    return reader.inputs(spec, {**(source.model_extra or {}), **where.options}, where)
