"""Study K's data: the facts of one CBQA dataset, in-domain relations trained and tested, the others tested only,
with the caps of `data:`; and the training items of a mastery level."""

import numpy as np

from ftscope import datasets
from ftscope.datasets import Dataset, Where
from ftscope.studydata import Source, StudyData, cached_data


def dataset_spec(cfg):
    return datasets.get(cfg.data.dataset, cfg.datasets_dirs)


def the_dataset(data: StudyData) -> Dataset:
    return next(iter(data.datasets.values()))


def load_data(cfg) -> StudyData:
    spec = dataset_spec(cfg)
    d = cfg.data
    options = dict(d.options)
    if d.id_relations:
        options["id_relations"] = d.id_relations
    ids = set(d.id_relations or spec.groups.get("id", []))

    def build(name: str, source: Source) -> Dataset:
        ds = datasets.load(source.spec, source.where)
        # in-domain relations are trained and tested; the others are tested only
        items = [{**it, "domain": "id" if it["relation"] in ids else "ood"} for it in ds.items
                 if it["split"] == "test" or it["relation"] in ids]
        items = _cap_train(_cap_tests(items, d.max_test_items), d.max_train_items, d.seed)
        return Dataset(source.spec, items, ds.documents)

    study_key = {"id_relations": sorted(ids), "caps": [d.max_test_items, d.max_train_items, d.seed]}
    return cached_data(study_key, {spec.name: Source(spec, Where(d.path, options))}, build, cfg.cache_dir)


def _cap_tests(items: list[dict], cap: int | None) -> list[dict]:
    if cap is None:
        return items
    rng = np.random.default_rng(0)
    keep = set()
    for domain in ("id", "ood"):
        idx = [i for i, it in enumerate(items) if it["split"] == "test" and it["domain"] == domain]
        keep.update(rng.permutation(idx)[:cap].tolist() if len(idx) > cap else idx)
    return [it for i, it in enumerate(items) if it["split"] == "train" or i in keep]


def _cap_train(items: list[dict], cap: int | None, seed: int) -> list[dict]:
    """At most `cap` training items per relation (mastery scores every item: a 21,600-item relation
    takes hours), sampled with the seed, in their original order."""
    if cap is None:
        return items
    rng = np.random.default_rng(seed)
    drop = set()
    for rel in sorted({it["relation"] for it in items}):
        idx = [i for i, it in enumerate(items) if it["split"] == "train" and it["relation"] == rel]
        if len(idx) > cap:
            drop.update(set(idx) - set(rng.choice(idx, size=cap, replace=False).tolist()))
    return [it for i, it in enumerate(items) if i not in drop]


def training_pool(items: list[dict], levels: dict[str, int], level: str) -> list[dict]:
    """In-domain training items of a mastery level ('mixed': all levels)."""
    pool = [it for it in items if it["split"] == "train" and it["domain"] == "id"]
    return pool if level == "mixed" else [it for it in pool if levels[it["item_id"]] == int(level)]
