"""The data of a study: its datasets with their records (and, for a sandbox, the pretraining corpus),
built once and cached under `cache_dir/data/` by a fingerprint of everything that shapes them."""

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ftscope.datasets import Dataset
from ftscope.datasets.spec import DatasetSpec
from ftscope.fingerprint import fingerprint
from ftscope.locks import exclusive


@dataclass(frozen=True)
class StudyData:
    fingerprint: str
    datasets: dict[str, Dataset]

    @property
    def documents(self) -> list[str]:
        """The pretraining corpus of every generated dataset (empty for real data)."""
        return [d for ds in self.datasets.values() for d in ds.documents]

    def dataset(self, name: str) -> Dataset:
        return self.datasets[name]


def local_files(path: str | None) -> dict[str, int]:
    """Name and size of every file under a local data path (a change in the data changes the fingerprint)."""
    if not path or not Path(path).exists():
        return {}
    p = Path(path)
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    return {str(f): f.stat().st_size for f in files}


def cached_data(key: dict, specs: dict[str, DatasetSpec], build: Callable[[], dict[str, Dataset]],
                cache_dir: str) -> StudyData:
    """The study's data for `key` (whatever shapes it): read from the cache, or built and cached.
    Concurrent runs build it once: the second waits for the first's lock, then reads its file."""
    fp = fingerprint({**key, "specs": {n: s.model_dump(exclude={"origin"}) for n, s in sorted(specs.items())}})
    path = Path(cache_dir) / "data" / f"{fp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(path.with_suffix(".lock")):
        if not path.exists():
            built = build()
            blob = {name: {"items": ds.items, "documents": ds.documents} for name, ds in built.items()}
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
            tmp.write_text(json.dumps(blob))
            tmp.replace(path)
        blob = json.loads(path.read_text())
    return StudyData(fp, {name: Dataset(specs[name], b["items"], b["documents"]) for name, b in blob.items()})
