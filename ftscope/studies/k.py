"""Study K (Ye et al., EMNLP 2025): how the amount of SFT data and how well the base model already knows
it (mastery) change closed-book QA accuracy, token-level KL to the base model and parameters.

Axes: the mastery level of the training data (0..4 or mixed) and the sample count. Preparation:
mastery R of every item under each base model (21 phrasings x 10 samples). Evaluation: accuracy per
domain (in/out of domain) and test mastery level, KL, parameter change.
"""

import json
import logging
from pathlib import Path
from typing import Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ftscope import datasets, engines
from ftscope.change import ParamsConfig, change_stats, zero_weight_warning
from ftscope.context import PromptCase
from ftscope.costs import calibrate as measure
from ftscope.costs import estimate, human, local_model, rates_of
from ftscope.datasets import Dataset, Where
from ftscope.divergence import KLConfig, kl_rows, token_kl
from ftscope.engines import open_engine
from ftscope.evaluate import predict, result_rows, score
from ftscope.fingerprint import fingerprint, model_fingerprint
from ftscope.general import GeneralConfig
from ftscope.grid import expand
from ftscope.locks import exclusive
from ftscope.mastery import MasteryConfig, phrasings, score_mastery
from ftscope.models import load_tokenizer
from ftscope.progress import Progress, file_sink, progress_file, terminal_sink
from ftscope.prompts import Prompter, prompt_problems
from ftscope.records import Change, Mastery, as_row
from ftscope.registry import unknown
from ftscope.sources import data_problem
from ftscope.store import Store
from ftscope.studies.k_report import REPORT
from ftscope.studies.study import GridSection, Study, positive_counts, register
from ftscope.studydata import Source, StudyData, cached_data
from ftscope.train.gpus import hold_gpus

log = logging.getLogger("ftscope.study")
Level = Union[Literal[0, 1, 2, 3, 4], Literal["mixed"]]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Strict):
    """Study K's `data:` section: a CBQA dataset of the registry and where its records are."""
    dataset: str = Field("sandbox-k", description="a cbqa dataset of the registry (sandbox-k, entityquestions, "
                                                  "or one of datasets_dirs)")
    path: str | None = Field(None, description="a local directory or a dataset id (entityquestions)")
    options: dict = Field(default_factory=dict, description="options of the dataset's source, e.g. the sandbox "
                                                            "world's size")
    id_relations: list[str] | None = Field(None, description="in-domain relations (default: the dataset's 'id' group)")
    max_test_items: int | None = Field(None, gt=0, description="cap per domain (id, ood), sampled")
    max_train_items: int | None = Field(None, gt=0, description="cap per in-domain relation, sampled with `seed`")
    seed: int = Field(0, description="seed of the caps")


class GridConfig(GridSection):
    levels: list[Level] = Field(default_factory=lambda: [0, 1, 2, 3, 4, "mixed"], min_length=1)
    sample_counts: list[int] = Field(default_factory=lambda: [60, 120, 240, 480, 960, 1920], min_length=1)
    methods: list[str] = Field(default_factory=lambda: ["base", "sft"], min_length=1)
    positive = positive_counts("sample_counts")


class EvalConfig(_Strict):
    max_new_tokens: int = Field(16, gt=0)
    general: GeneralConfig | None = Field(None, description="lm-eval tasks every cell and base model is scored on "
                                                            "(ftscope/general.py)")


SECTIONS = {"data": DataConfig, "mastery": MasteryConfig, "grid": GridConfig, "eval": EvalConfig, "kl": KLConfig,
            "params": ParamsConfig}


# -- helpers ----------------------------------------------------------------------------------------

def dataset_spec(cfg):
    return datasets.get(cfg.data.dataset, cfg.datasets_dirs)


def the_dataset(data: StudyData) -> Dataset:
    return next(iter(data.datasets.values()))
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


def mastery_fingerprint(cfg, model, base_path: str, data: StudyData) -> str:
    """What mastery depends on: the checkpoint, the data, the scoring settings, the prompt and the engine."""
    return fingerprint([model_fingerprint(base_path), data.fingerprint, cfg.mastery.model_dump(),
                        model.prompt.model_dump(), engines.identity(cfg, model)])


def _score_once(cfg, model, base_path: str, data: StudyData, store, fp: str, key: str, claim: Path) -> None:
    same = [k for k in store.keys("mastery") if k.endswith(f"-{fp}")]
    if not store.exists("mastery", key) and same:
        rows = store.read_key("mastery", same[0]).to_pylist()
        store.write("mastery", key, [{**r, "model": model.name} for r in rows])
    if not store.exists("mastery", key):
        ds = the_dataset(data)
        tok = load_tokenizer(base_path, model.trust_remote_code)
        with hold_gpus(model.gpus, what=f"mastery of {model.name}") as gpus:
            engine = open_engine(cfg, model, base_path, gpus)
            progress = Progress(f"mastery of {model.name}", sinks=tuple(filter(None, [
                file_sink(progress_file(claim)), terminal_sink()])))
            rows = score_mastery(engine, tok, ds.items, Prompter(ds.spec, model.prompt, tok), cfg.mastery, progress)
            progress.finish()
            engine.close()
        extra = {"model": model.name, "model_fp": model_fingerprint(base_path), "data_fp": data.fingerprint,
                 "n_sample": cfg.mastery.n_sample, "temperature": cfg.mastery.temperature,
                 "engine": json.dumps(engines.identity(cfg, model))}
        store.write("mastery", key, [as_row(Mastery(**r, **extra)) for r in rows])
        log.info("scored mastery of %d items for %s", len(rows), model.name)


def training_pool(items: list[dict], levels: dict[str, int], level: str) -> list[dict]:
    """In-domain training items of a mastery level ('mixed': all levels)."""
    pool = [it for it in items if it["split"] == "train" and it["domain"] == "id"]
    return pool if level == "mixed" else [it for it in pool if levels[it["item_id"]] == int(level)]


def unfit_cells(cfg, cells, items: list[dict], levels: dict[str, dict[str, int]]) -> dict:
    """{cell: why} for the cells whose mastery level holds fewer ID training items than their sample count
    (`levels`: model -> item id -> level). A cell that starts from such a cell cannot run either."""
    out, pools = {}, {}
    for cell in cells:
        axes = dict(cell.axes)
        if cell.model not in levels or "level" not in axes:
            continue
        if (cell.model, axes["level"]) not in pools:  # once per model and level, not per cell
            pools[cell.model, axes["level"]] = len(training_pool(items, levels[cell.model], axes["level"]))
        have = pools[cell.model, axes["level"]]
        if have < axes["n"]:
            out[cell] = (f"not run: mastery level {axes['level']} of {cell.model} has {have} ID training items and "
                         f"n={axes['n']} needs {axes['n']}")
    for cell in cells:
        if cell.parent in out:
            out[cell] = out[cell.parent]
    return out


def _stored_unfit(cfg) -> list[str]:
    """Where mastery is already scored: the cells that will not run, one line per model and level."""
    try:
        mastery = Store(cfg.results_dir).read("mastery").to_pylist()
    except OSError:
        return []
    levels: dict[str, dict[str, int]] = {}
    items = {}
    for r in mastery:
        if any(m.name == r["model"] for m in cfg.models):
            levels.setdefault(r["model"], {})[r["item_id"]] = r["level"]
            items[r["item_id"]] = {"item_id": r["item_id"], "split": r["split"], "domain": r["domain"]}
    unfit = unfit_cells(cfg, STUDY.grid(cfg), list(items.values()), levels)
    grouped: dict[str, list[str]] = {}
    for cell, why in unfit.items():
        grouped.setdefault(why, []).append(cell.label)
    return [f"warning: {len(labels)} cell(s) will be recorded as {why} (mastery is scored already): "
            f"{', '.join(sorted(labels)[:6])}{' ...' if len(labels) > 6 else ''}" for why, labels in grouped.items()]


class Knowledge(Study):
    """Axes: the mastery level of the training data (0..4 or mixed) and the sample count. Preparation:
    mastery R of every item under each base model. Evaluation: accuracy per domain and test mastery level,
    token-level KL, parameter change."""
    kind, title, sections, report = "k", "Study K: knowledge", SECTIONS, REPORT
    prepares_on_gpus = True  # mastery samples 21 x 10 answers per item

    def load_data(self, cfg) -> StudyData:
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

    def prepare(self, cfg, model, base_path: str, data: StudyData, store) -> dict[str, int]:
        """Mastery level of every item under this base model; scored once, then read from the store.
        Model entries that share a checkpoint and prompt (e.g. the same model under other launch settings)
        share the scores."""
        fp = mastery_fingerprint(cfg, model, base_path, data)
        key = f"{model.name}-{fp}"
        claim = Path(cfg.artifacts_dir) / "claims" / f"mastery-{key}.lock"
        with exclusive(claim):  # concurrent runs score once
            _score_once(cfg, model, base_path, data, store, fp, key, claim)
        table = store.read_key("mastery", key)
        return dict(zip(table["item_id"].to_pylist(), table["level"].to_pylist()))

    def check(self, cfg, data: StudyData, preps: dict[str, dict]) -> dict:
        return unfit_cells(cfg, self.grid(cfg), the_dataset(data).items, preps)

    def grid(self, cfg) -> list:
        spec = dataset_spec(cfg)
        points = [((("level", str(lvl)), ("n", n)), spec) for lvl in cfg.grid.levels for n in cfg.grid.sample_counts]
        return expand(cfg, points, cfg.grid.methods, cfg.grid.seeds)

    def cell_config(self, cfg, cell) -> dict:
        return {"mastery": cfg.mastery.model_dump(), "eval": cfg.eval.model_dump(exclude={"general"}),
                "kl": cfg.kl.model_dump(), "params": cfg.params.model_dump()}

    def training_items(self, run) -> tuple[list[dict], Dataset]:
        """`n` items drawn (with the cell's seed) from the in-domain training items of the cell's level."""
        ds = the_dataset(run.data)
        level, n = run.axes["level"], run.axes["n"]
        pool = training_pool(ds.items, run.prep, level)
        if len(pool) < n:
            raise ValueError(f"mastery level {level} has {len(pool)} training items; {n} are needed. Lower "
                             f"grid.sample_counts or enlarge the data.")
        rng = np.random.default_rng(run.cell.seed)
        return [pool[i] for i in sorted(rng.choice(len(pool), size=n, replace=False))], ds

    def evaluate(self, run, built) -> None:
        """KL to the base model on the test prompts, accuracy per domain and test mastery level, and the
        parameter change of the model's weights."""
        cfg, tok, ds = run.cfg, run.tokenizer, the_dataset(run.data)
        test = ds.split("test")
        prompter = run.prompter(ds)
        domains = [it["domain"] for it in test]
        slices = [f"level={run.prep[it['item_id']]}" for it in test]

        base = built.base_model(run.load)
        run.progress.phase("kl", total=len(test), unit="items")
        per_item = token_kl(built.model, base, tok, test, prompter, cfg.kl, progress=run.progress.counter())
        del base
        run.store.write("kl", run.cid, kl_rows(run.cid, ds.name, per_item, domains, slices, cfg.kl))

        built = built.merge_adapter()  # KL is taken: the adapter view is no longer needed
        run.progress.phase("evaluate", total=len(test), unit="prompts")
        engine = run.engine(built)
        predictions = predict(engine, tok, prompter, test, max_new_tokens=cfg.eval.max_new_tokens,
                              progress=run.progress.counter())
        engine.close()
        values = score(prompter, test, predictions)
        metrics, scores = result_rows(run.cid, ds.spec, ds.spec.metric, test, values, domains, slices, predictions)
        _, kl_scores = result_rows(run.cid, ds.spec, "kl", test, [k for k, _ in per_item], domains, slices)
        run.write("metrics", metrics)
        run.write("scores", scores + kl_scores)

        run.progress.phase("params")
        rows = change_stats(run.base_dir, run.checkpoint(built), cfg.params.region, cfg.params.measure)
        run.store.write("params", run.cid, [as_row(Change(cell_id=run.cid, **r)) for r in rows])
        if warning := zero_weight_warning(next(r for r in rows if r["scope"] == "region")):
            log.warning("[%s] %s", run.cell.label, warning)

    def prompt_cases(self, cfg, data: StudyData):
        """Each item asked in its relation's longest phrasing with room for the longest answer decoded, and with
        its target (training, KL)."""
        ds = the_dataset(data)
        room = max(cfg.mastery.max_new_tokens, cfg.eval.max_new_tokens)
        longest = {r: max(ds.spec.phrasings(r)[:cfg.mastery.n_map], key=len) for r in ds.spec.subsets}
        for it in ds.items:
            q = longest[it["relation"]].format(s=it["subject"])
            yield PromptCase(f"{it['item_id']} asked as {q!r}", ds, {**it, "question": q}, room=room)
            yield PromptCase(f"{it['item_id']} with its answer", ds, it, cap=cfg.train.max_length)

    def validate(self, cfg) -> list[str]:
        problems = []
        try:
            spec = dataset_spec(cfg)
        except (KeyError, ValueError, FileNotFoundError) as e:
            return [f"data.dataset: {e}"]
        if spec.type != "cbqa":
            return [f"data.dataset: {spec.name} is a {spec.type} dataset; Study K needs a cbqa dataset"]
        problems += [f"data.id_relations: {unknown('relation', r, spec.subsets)} (the relations of {spec.name})"
                     for r in cfg.data.id_relations or [] if r not in spec.subsets]
        short = sorted(r for r in spec.subsets if len(spec.phrasings(r)) < cfg.mastery.n_map)
        if short:
            problems.append(f"mastery.n_map is {cfg.mastery.n_map} but relations {short} of {spec.name} have fewer "
                            f"phrasings (stems x framings); lower n_map or describe more")
        source, reader = datasets.source_of(spec)
        if reader.options is not None:  # generated data: the options it takes are its reader's
            try:
                reader.options(**{k: v for k, v in cfg.data.options.items() if k != "id_relations"})
            except ValidationError as e:
                return problems + [f"data.options.{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()]
        elif cfg.data.options:
            problems.append(f"data.options: dataset {spec.name} is read from files ({source.format}), it takes no options")
        if reader.takes_path and not (cfg.data.path or (source.model_extra or {}).get("path")):
            problems.append(f"data.path: dataset {spec.name} ({source.format}) is read from a local directory or a "
                            f"dataset id; set data.path")
        if cfg.data.path and (problem := data_problem(cfg.data.path)):
            problems.append(f"data.path: {problem}")
        if problems:
            return problems
        try:  # read the records now: a broken file is named (file, record, field) before any pretraining
            data = self.load_data(cfg)
        except (ValueError, KeyError, OSError) as e:
            return [f"data: {e}"]
        ds = the_dataset(data)
        n_train = sum(it["split"] == "train" and it["domain"] == "id" for it in ds.items)
        if not ds.split("test") or not n_train:
            problems.append(f"data: {ds.name} has {len(ds.split('test'))} test items and no in-domain training items "
                            f"(in-domain relations: {cfg.data.id_relations or spec.groups.get('id')})")
        elif n_train < min(cfg.grid.sample_counts):
            problems.append(f"data: {n_train} ID training items in all, fewer than every sample count "
                            f"{cfg.grid.sample_counts} (grid.sample_counts): no cell could train; lower them or enlarge "
                            f"the data")
        problems += prompt_problems(cfg.models, ds)
        return problems

    def notes(self, cfg) -> list[str]:
        notes = _stored_unfit(cfg)
        try:
            ds = the_dataset(self.load_data(cfg))
        except (ValueError, KeyError, OSError):
            return notes
        n_train = sum(it["split"] == "train" and it["domain"] == "id" for it in ds.items)
        if too_many := [n for n in cfg.grid.sample_counts if n > n_train]:
            notes.append(f"warning: sample counts {too_many} exceed the {n_train} ID training items: their cells will "
                         f"be recorded as not run")
        return notes

    def costs(self, cfg, calibrate: bool = False) -> list[str]:
        """Mastery samples, evaluation prompts and training tokens of the plan, with a time estimate for
        mastery (the most expensive step) per model."""
        data = self.load_data(cfg)
        ds = the_dataset(data)
        m = cfg.mastery
        n_items, n_test = len(ds.items), len(ds.split("test"))
        samples = sum(min(m.n_map, len(ds.spec.phrasings(it["relation"]))) for it in ds.items) * m.n_sample
        cells = self.grid(cfg)
        trained = [c for c in cells if dict(c.axes)]
        words = sum(len(it["question"].split()) + len(it["answers"][0].split()) + 3 for it in ds.items) / max(1, n_items)
        lines = [f"data: {n_items:,} items ({len(ds.split('train')):,} train, {n_test:,} test) in {ds.name}",
                 f"evaluation: {n_test:,} greedy answers and {n_test:,} KL prompts per cell, {human(n_test * len(cells))} "
                 f"answers over {len(cells)} cells",
                 f"training: about {human(max(cfg.grid.sample_counts) * cfg.train.epochs * words)} tokens in the largest "
                 f"cell ({max(cfg.grid.sample_counts)} items x {cfg.train.epochs:g} epochs x ~{words:.0f} words); "
                 f"{len(trained)} cells train or edit a model"]
        for model in cfg.models:
            rates, how = rates_of(cfg, model), "generation.samples_per_second"
            if calibrate:
                path = local_model(model, data, cfg.cache_dir)
                if path is None:
                    lines.append(f"model {model.name}: cannot calibrate before the model exists here (pretrain it "
                                 f"with `ftscope run`, or give a local path)")
                else:
                    prompter = Prompter(ds.spec, model.prompt, None if model.prompt.style != "chat" else
                                        load_tokenizer(path, model.trust_remote_code))
                    prompts = [prompter.text({**it, "question": q}) for it in ds.items[:20]
                               for q in phrasings(prompter, it, m.n_map)]
                    rates = {engines.backend_of(cfg, model): measure(
                        cfg, model, path, prompts, n_sample=m.n_sample, max_new_tokens=m.max_new_tokens,
                        temperature=m.temperature)}
                    how = "measured now on this machine"
            lines.append(f"model {model.name}: mastery {n_items:,} items x {m.n_map} phrasings x {m.n_sample} samples "
                         f"= {human(samples)} samples" + (", " + estimate(samples, rates, model.gpus, how) if rates else ""))
        if not all(rates_of(cfg, model) for model in cfg.models) and not calibrate:
            lines.append(estimate(samples, {}, 0, ""))  # how to get one, said once for the study
        return lines


STUDY = register(Knowledge())
