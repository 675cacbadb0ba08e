"""The data of a study: its datasets with their records (and, for a sandbox, the pretraining corpus),
built once and cached under `cache_dir/data/` by a fingerprint of everything that shapes them.

Each dataset has its own fingerprint: its description, where it is read from, the options the study
gives it, what the study does to it (caps, say), and the contents of every local file its reader reads.
Editing one record of a data file makes a new fingerprint, so the edited data is read again (and
checked by `validate`). A cell's id covers the records it reads (StudyData.fingerprint_of), so the cells
that read an edited split get new ids and run again, and no other cell does."""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ftscope import datasets
from ftscope.damage import move_aside, sweep_temporaries, temporary_name
from ftscope.datasets import Dataset, DatasetSpec, Where
from ftscope.fingerprint import files_fingerprint, fingerprint
from ftscope.locks import exclusive


@dataclass(frozen=True)
class Source:
    """One dataset of a study and how it is read."""
    spec: DatasetSpec
    where: Where = field(default_factory=Where)
    use_hub: bool = False

    def fingerprint(self, study_key: dict) -> str:
        files = datasets.inputs(self.spec, self.where, self.use_hub)
        local = Path(self.where.path).expanduser() if self.where.path else None
        root = (local if local.is_dir() else local.parent) if local is not None and local.exists() else \
            (Path(self.spec.origin).parent if self.spec.origin else None)
        return fingerprint({"study": study_key, "spec": self.spec.model_dump(exclude={"origin"}),
                            "path": None if files else self.where.path, "options": self.where.options,
                            "hub": self.use_hub, "files": files_fingerprint(files, root)})


@dataclass(frozen=True)
class StudyData:
    fingerprint: str  # of every dataset, as read (description, options, file contents)
    datasets: dict[str, Dataset]
    _splits: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def documents(self) -> list[str]:
        """The pretraining corpus of every generated dataset (empty for real data)."""
        return [d for ds in self.datasets.values() for d in ds.documents]

    def dataset(self, name: str) -> Dataset:
        return self.datasets[name]

    def reads(self) -> list[tuple[str, str]]:
        """Every (dataset, split) of the study."""
        return sorted({(name, it["split"]) for name, ds in self.datasets.items() for it in ds.items})

    def fingerprint_of(self, reads: list[tuple[str, str]]) -> str:
        """What a cell that reads these (dataset, split) pairs depends on: the description of each dataset
        and the records of each split, so that a cell is re-run exactly when what it reads changed."""
        for name, split in reads:
            if (name, split) not in self._splits:
                ds = self.datasets[name]
                self._splits[(name, split)] = fingerprint({"spec": ds.spec.model_dump(exclude={"origin"}),
                                                           "items": ds.split(split)})
        return fingerprint({f"{n}:{s}": self._splits[(n, s)] for n, s in sorted(set(reads))})


def _read(path: Path) -> dict | None:
    """The cached data, or None when there is none; a damaged cache file is moved aside."""
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        move_aside(path, f"the cached data is damaged ({type(e).__name__})")
        return None


def cached_data(study_key: dict, sources: dict[str, Source], build: Callable[[str, Source], Dataset],
                cache_dir: str) -> StudyData:
    """The study's datasets, read from the cache or built (`build(name, source)`) and cached. Concurrent
    runs build them once: the second waits for the first's lock, then reads its file."""
    fps = {name: src.fingerprint(study_key) for name, src in sorted(sources.items())}
    fp = fingerprint(fps)
    path = Path(cache_dir) / "data" / f"{fp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(path.with_suffix(".lock")):
        sweep_temporaries(path)
        blob = _read(path)
        if blob is None:
            built = {name: build(name, src) for name, src in sources.items()}
            blob = {name: {"items": ds.items, "documents": ds.documents} for name, ds in built.items()}
            tmp = temporary_name(path)
            tmp.write_text(json.dumps(blob))
            tmp.replace(path)
    return StudyData(fp, {name: Dataset(sources[name].spec, b["items"], b["documents"]) for name, b in blob.items()})
