"""The one model of a study's numbers: read from the store once, then every text table, README block,
figure and comparison renders from it. Nothing else aggregates the store.

A *condition* is a cell without its seed (model family, method, variant, axes) evaluated on one slice of one
test set (dataset, domain, slice, prompt map, shots, metric). Its value is the mean over its cells (seeds;
with several base models of one family, base models too). Its 95% interval is Wilson's on the stored
counts for a proportion from one cell, a bootstrap over test items of the items' seed-averaged values for
one base model, and a bootstrap over base models then test items for several (stats.hierarchical_mean).
Comparisons pair the same test items, on the same base models, on both sides.

At paper scale (4,145 cells, tens of millions of per-item scores) nothing is read whole: the conditions come from
the `metrics` and `kl` rows; an interval is computed when a table or figure first asks for it; per-item scores are
read for the cells a bootstrap or a comparison needs, a batch at a time, and only the most recent few thousand
cells' scores are kept.
"""

import json
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ftscope import measurements
from ftscope.general import DOMAIN as GENERAL
from ftscope.metrics import METRICS
from ftscope.runs import latest_config
from ftscope.stats import bootstrap_mean, hierarchical_mean, paired_difference, seed_spread, verdict, wilson
from ftscope.store import Store

KEY = ("dataset", "domain", "slice", "prompt_map", "shots", "metric")
KL = "kl"  # the pseudo-metric under which the `kl` table's rows join the conditions
KEPT_CELLS = 4096  # cells whose per-item scores stay in memory (at 2 x 2,000 items a cell, a few hundred MB)
SCORE_COLUMNS = ["cell_id", *KEY, "item_id", "value"]
READ_BATCH = 64  # cells whose scores are read from the store at once
_EMPTY = (np.zeros(0, dtype=np.int32), np.zeros(0))


def _by_code(codes: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted by item code; of an item given twice, its last value (as a dict keeps it)."""
    order = np.argsort(codes, kind="stable")
    codes, values = codes[order], values[order]
    last = np.append(codes[1:] != codes[:-1], True) if len(codes) else np.zeros(0, dtype=bool)
    return codes[last], values[last]


@dataclass
class Condition:
    model: str
    method: str
    variant: str
    axes: dict
    dataset: str
    task: str
    domain: str
    slice: str
    prompt_map: int
    shots: int
    metric: str
    params: dict = field(default_factory=dict)  # the method's variant settings (restore: strategy, k_percent)
    cells: list[str] = field(default_factory=list)  # one per seed (and base model)
    base: dict = field(default_factory=dict)  # cell -> the base model it was trained from (a replica of `model`)
    values: list[float] = field(default_factory=list)  # per seed
    n: int = 0  # test items
    total: float = 0.0  # of a single cell: the stored sum (the number correct, for a proportion)
    results: "Results | None" = field(default=None, repr=False, compare=False)
    _interval: tuple[float, float] | None = field(default=None, repr=False, compare=False)

    @property
    def lo(self) -> float:
        return self.interval[0]

    @property
    def hi(self) -> float:
        return self.interval[1]

    @property
    def interval(self) -> tuple[float, float]:
        """The 95% interval, computed when first asked for: Wilson's on one cell's stored counts for a proportion;
        else a bootstrap over test items (over base models first, when there are several)."""
        if self._interval is None:
            if self.base_models > 1:
                _, lo, hi = hierarchical_mean([list(v.values()) for v in self.results.base_item_values(self).values()])
                self._interval = (lo, hi)
            elif len(self.cells) > 1 or not is_proportion(self.metric):
                self._interval = bootstrap_mean(list(self.results.item_values(self).values()))
            else:
                self._interval = wilson(self.total, self.n)
        return self._interval

    @property
    def value(self) -> float:
        return float(np.mean(self.values))

    @property
    def spread(self) -> float:
        return seed_spread(self.values)[1]

    @property
    def seeds(self) -> int:
        """Cells per base model (training seeds)."""
        return len(self.values) // max(1, self.base_models)

    @property
    def base_models(self) -> int:
        return len(set(self.base.values())) or 1

    def get(self, name: str, default=None):
        """An axis (level, n, train, size), a field (dataset, shots at test time, ...) or a variant setting
        (restore's strategy and k_percent; FTICL's training shots are `params['shots']`, never `shots`)."""
        if name in self.axes:
            return self.axes[name]
        return getattr(self, name) if hasattr(self, name) else self.params.get(name, default)


def is_proportion(metric: str) -> bool:
    """Every per-item score of the metric is 0 or 1 (so Wilson's interval applies)."""
    return metric in METRICS and METRICS.get(metric).proportion


def is_generated(metric: str) -> bool:
    """The metric scores decoded text (a generation task), not label probabilities."""
    return metric in METRICS and METRICS.get(metric).predict == "generate"


class Results:
    """The done cells of a study's latest plan: their conditions, per-item scores, parameter-change and
    restoration rows, and the store's mastery scores."""

    def __init__(self, store: Store, study: str | None = None):
        self.store, self.study = store, study
        cells = store.sql("SELECT * FROM cells WHERE status = 'done' AND cell_id IN "
                          "(SELECT cell_id FROM plan WHERE ? IS NULL OR study = ?)", [study, study])
        self.cells = {r["cell_id"]: r for r in cells.fetch_arrow_table().to_pylist()}
        for r in self.cells.values():
            r["axes"], r["params"] = json.loads(r["axes"] or "{}"), json.loads(r["params"] or "{}")
        mine = sorted(self.cells)
        params = store.read("params", cells=mine)
        self.params = params.filter(pc.is_in(params["scope"], pa.array(["region", "matrix_type"]))).to_pylist()
        self.restoration = store.read("restoration", cells=mine).to_pylist()
        self.mastery = store.read("mastery", columns=["model", "item_id", "relation", "split", "domain", "exposure",
                                                      "r", "level"]).to_pylist()
        self._scores: OrderedDict[str, dict[tuple, tuple[np.ndarray, np.ndarray]]] = OrderedDict()  # by cell
        self._codes: dict[str, int] = {}  # item id -> its code
        self.items: list[str] = []  # item code -> its id
        rows = store.read("metrics", cells=mine).to_pylist()
        rows += [{**r, "task": "", "prompt_map": 0, "shots": 0, "metric": KL, "total": r["value"] * r["n"]}
                 for r in store.read("kl", cells=mine).to_pylist()]
        family = self._families()
        groups: dict[tuple, Condition] = {}
        for r in rows:
            c = self.cells[r["cell_id"]]
            model = family.get(c["model"], c["model"])
            key = (model, c["method"], c["variant"], json.dumps(c["axes"], sort_keys=True)) + tuple(r[k] for k in KEY)
            cond = groups.get(key) or groups.setdefault(key, Condition(
                model, c["method"], c["variant"], c["axes"], r["dataset"], r["task"], r["domain"], r["slice"],
                r["prompt_map"], r["shots"], r["metric"], c["params"], results=self))
            cond.cells.append(r["cell_id"])
            cond.values.append(r["value"])
            cond.base[r["cell_id"]] = c["model"]
            cond.n = r["n"]
            if len(cond.cells) == 1:
                cond.total = r["total"]
        # measurements' rows (general capability: eval.general) are kept apart: the studies' own tables never see them
        apart = measurements.domains()
        self.conditions = [c for c in groups.values() if c.domain not in apart]
        self.general = [c for c in groups.values() if c.domain == GENERAL]
        self.general_rows = store.read("general", cells=mine, columns=["task", "dataset", "metric",
                                                                         "higher_is_better"]).to_pylist()

    def _families(self) -> dict[str, str]:
        """model -> its family, from the latest run's config (a model with none is its own)."""
        try:
            return {m["name"]: m.get("family") or m["name"] for m in latest_config(self.store, self.study)["models"]}
        except (ValueError, KeyError, TypeError):
            return {}

    @property
    def machines(self) -> dict[str, int]:
        """How many done cells computed on each machine (ftscope.machine.machine, threads included)."""
        out: dict[str, int] = {}
        for c in self.cells.values():
            key = c.get("machine") or "{}"
            out[key] = out.get(key, 0) + 1
        return out

    @property
    def metrics(self) -> list[str]:
        """The metrics the study's test sets are scored by (KL aside)."""
        return sorted({c.metric for c in self.conditions if c.metric != KL})

    def scores(self, cells) -> dict[str, dict[tuple, tuple[np.ndarray, np.ndarray]]]:
        """Per cell: (dataset, domain, slice, prompt map, shots, metric) -> (item codes, values), item codes
        ascending, read from the store for the cells not read yet, a batch at a time. Items are coded once per
        Results (`self.items` names them): a cell's scores take 12 bytes an item, not a Python dict's ~300."""
        cells = list(dict.fromkeys(cells))
        missing = [c for c in cells if c not in self._scores]
        for start in range(0, len(missing), READ_BATCH):
            self._scores.update(self._read_scores(missing[start:start + READ_BATCH]))
        out = {}
        for c in cells:
            self._scores.move_to_end(c)
            out[c] = self._scores[c]
        while len(self._scores) > max(KEPT_CELLS, len(cells)):
            self._scores.popitem(last=False)
        return out

    def _read_scores(self, cells: list[str]) -> dict[str, dict[tuple, tuple[np.ndarray, np.ndarray]]]:
        t = self.store.read("scores", columns=SCORE_COLUMNS, cells=cells)
        got: dict[str, dict[tuple, tuple[np.ndarray, np.ndarray]]] = {c: {} for c in cells}
        if not t.num_rows:
            return got
        items = pc.dictionary_encode(t["item_id"]).combine_chunks()
        names = items.dictionary.to_pylist()
        for item in names:
            if item not in self._codes:
                self._codes[item] = len(self.items)
                self.items.append(item)
        code_of = np.array([self._codes[i] for i in names], dtype=np.int32)
        codes = code_of[items.indices.to_numpy()]
        values = t["value"].to_numpy()
        group = np.zeros(t.num_rows, dtype=np.int64)  # (cell, dataset, ..., metric) as one number
        for col in SCORE_COLUMNS[:-2]:
            enc = pc.dictionary_encode(t[col]).combine_chunks()
            group = group * len(enc.dictionary) + enc.indices.to_numpy()
        _, first, group = np.unique(group, return_index=True, return_inverse=True)
        order = np.argsort(group, kind="stable")
        bounds = np.searchsorted(group[order], np.arange(len(first) + 1))
        keys = t.take(first).select(SCORE_COLUMNS[:-2]).to_pylist()
        for g, key in enumerate(keys):
            rows = order[bounds[g]:bounds[g + 1]]
            got[key["cell_id"]][tuple(key[k] for k in KEY)] = _by_code(codes[rows], values[rows])
        return got

    def _cell_scores(self, of: dict[tuple, tuple[np.ndarray, np.ndarray]], key: tuple):
        """One cell's (codes, values) for `key`; the `all` slice is the union of the stored slices (an item is
        stored once, under its own slice: Study K's mastery level)."""
        if key[2] != "all":
            return of.get(key, _EMPTY)
        parts = [v for k, v in of.items() if k[:2] == key[:2] and k[3:] == key[3:]]
        if len(parts) == 1:
            return parts[0]
        return _by_code(np.concatenate([p[0] for p in parts] or [_EMPTY[0]]),
                        np.concatenate([p[1] for p in parts] or [_EMPTY[1]]))

    def item_values(self, cond: Condition, cells: list[str] | None = None) -> dict[str, float]:
        """Per test item (sorted by id), its value averaged over the condition's cells (or `cells` of them)."""
        key = tuple(getattr(cond, k) for k in KEY)
        of = self.scores(cells or cond.cells)
        per_seed = [self._cell_scores(of[cid], key) for cid in cells or cond.cells]
        if not per_seed:
            return {}
        common = per_seed[0][0]
        for codes, _ in per_seed[1:]:
            common = np.intersect1d(common, codes, assume_unique=True)
        total = np.zeros(len(common))
        for codes, values in per_seed:  # summed seed by seed, in order, as sum() over a list would
            total = total + values[np.searchsorted(codes, common)]
        mean = total / len(per_seed)
        names = [self.items[c] for c in common]
        return {names[i]: float(mean[i]) for i in sorted(range(len(names)), key=names.__getitem__)}

    def base_item_values(self, cond: Condition) -> dict[str, dict[str, float]]:
        """Per base model, per test item, its value averaged over that base model's cells (seeds)."""
        by_base: dict[str, list[str]] = defaultdict(list)
        for cid in cond.cells:
            by_base[cond.base.get(cid, cond.model)].append(cid)
        return {b: self.item_values(cond, cids) for b, cids in sorted(by_base.items())}

    def matrix_rows(self, method: str) -> list[dict]:
        """The per-matrix, per-layer `params` rows of the cells of one method (read when a figure asks)."""
        cells = sorted(cid for cid, c in self.cells.items() if c["method"] == method)
        t = self.store.read("params", cells=cells)
        return t.filter(pc.equal(t["scope"], "matrix")).to_pylist() if cells else []

    def select(self, **where) -> list[Condition]:
        """Conditions whose fields (or axes) equal the given values; a callable value is a predicate."""
        return [c for c in self.conditions
                if all((v(c.get(k)) if callable(v) else c.get(k) == v) for k, v in where.items())]

    def pooled(self, conds: list[Condition]) -> dict[tuple, float]:
        """Per (base model, dataset, item) over several conditions (prompt maps, datasets), the mean value."""
        acc: dict[tuple, list[float]] = defaultdict(list)
        self.scores([cid for c in conds for cid in c.cells])  # one pass over the store for all of them
        for c in conds:
            for base, values in self.base_item_values(c).items():
                for item, v in values.items():
                    acc[(base, c.dataset, item)].append(v)
        return {k: float(np.mean(v)) for k, v in acc.items()}


@dataclass
class Comparison:
    """A difference the report draws between two arms on the same test items."""
    claim: str  # what the paper found, as a direction: "A > B"
    a: str
    b: str
    diff: float
    lo: float
    hi: float
    n: int
    seeds: int
    expected: int = 1
    note: str = ""
    base_models: int = 1
    unit: str = "points"  # "points": a score difference (x 100 when written); "kl", "magnitude": as is

    @property
    def verdict(self) -> str:
        return verdict(self.lo, self.hi, self.expected) if self.n else "missing"


def compare(results: Results, claim: str, a: tuple[str, list[Condition]], b: tuple[str, list[Condition]],
            expected: int = 1, note: str = "", unit: str | None = None) -> Comparison:
    """mean(A) - mean(B) over the test items both arms scored, on the same base models, with a paired
    bootstrap interval over items (and over base models first, when there are several)."""
    pa, pb = results.pooled(a[1]), results.pooled(b[1])
    common = sorted(set(pa) & set(pb))
    seeds = min([c.seeds for c in a[1] + b[1]] or [0])
    unit = unit or ("kl" if a[1] + b[1] and all(c.metric == KL for c in a[1] + b[1]) else "points")
    if not common:
        return Comparison(claim, a[0], b[0], float("nan"), float("nan"), float("nan"), 0, seeds, expected,
                          note or "no test items scored by both arms (missing or failed cells)", unit=unit)
    bases = sorted({k[0] for k in common})
    items = len({k[1:] for k in common})
    if len(bases) == 1:
        d, lo, hi = paired_difference([pa[k] for k in common], [pb[k] for k in common])
    else:
        d, lo, hi = hierarchical_mean([[pa[k] - pb[k] for k in common if k[0] == base] for base in bases])
    return Comparison(claim, a[0], b[0], d, lo, hi, items, seeds, expected, note, len(bases), unit)


def interval_kind(conds) -> str:
    """What the 95% intervals of these conditions are: Wilson's, a bootstrap over items, or over base models
    then items (the caption of a figure says it for the data behind it)."""
    if any(c.base_models > 1 for c in conds):
        return "a bootstrap over base models, then over test items within each"
    if any(len(c.cells) > 1 or not is_proportion(c.metric) for c in conds):
        return "a bootstrap over test items"
    return "Wilson's interval for a proportion"
