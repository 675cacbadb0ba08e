"""One Study K cell, top to bottom: the method's model (on `n` training items of the cell's mastery level) ->
general capability and other measurements -> token-level KL to the base model -> accuracy per domain and test
mastery level -> parameter change -> rows."""

import logging

import numpy as np

from ftscope import checkpoints, engines
from ftscope.cell import CellRun
from ftscope.change import change_stats, zero_weight_warning
from ftscope.datasets import Dataset
from ftscope.divergence import kl_rows, token_kl
from ftscope.evaluate import predict, result_rows, score
from ftscope.measurements import measure
from ftscope.methods import build
from ftscope.records import Change, as_row
from ftscope.studies.k.data import the_dataset, training_pool

log = logging.getLogger("ftscope.study")


def training_items(run: CellRun) -> tuple[list[dict], Dataset]:
    """`n` items drawn (with the cell's seed) from the in-domain training items of the cell's level."""
    ds = the_dataset(run.data)
    level, n = run.axes["level"], run.axes["n"]
    pool = training_pool(ds.items, run.prep, level)
    if len(pool) < n:
        raise ValueError(f"mastery level {level} has {len(pool)} training items; {n} are needed. Lower "
                         f"grid.sample_counts or enlarge the data.")
    rng = np.random.default_rng(run.cell.seed)
    return [pool[i] for i in sorted(rng.choice(len(pool), size=n, replace=False))], ds


def run_cell(run: CellRun) -> None:
    """One cell: its method's model, then KL to the base model on the test prompts, accuracy per domain and test
    mastery level, and the parameter change of the model's weights."""
    built = build(run, training_items)
    measure(run, built.model)  # what the config asks for besides (eval.general), on the model as built

    cfg, tok, ds = run.cfg, run.tokenizer, the_dataset(run.data)
    test = ds.split("test")
    prompter = run.prompter(ds)
    domains = [it["domain"] for it in test]
    slices = [f"level={run.prep[it['item_id']]}" for it in test]

    base = built.base_model(run.load)
    run.progress.phase("kl", total=len(test), unit="items")
    per_item = token_kl(built.model, base, tok, test, prompter, cfg.kl, progress=run.progress.counter(), kept=run.ctx.kept)
    del base
    run.store.write("kl", run.cid, kl_rows(run.cid, ds.name, per_item, domains, slices, cfg.kl))

    built = built.merge_adapter()  # KL is taken: the adapter view is no longer needed
    run.progress.phase("evaluate", total=len(test), unit="prompts")
    engine = engines.for_cell(run, built)
    predictions = predict(engine, tok, prompter, test, max_new_tokens=cfg.eval.max_new_tokens,
                          progress=run.progress.counter())
    engine.close()
    values = score(prompter, test, predictions)
    metrics, scores = result_rows(run.cid, ds.spec, ds.spec.metric, test, values, domains, slices, predictions)
    _, kl_scores = result_rows(run.cid, ds.spec, "kl", test, [k for k, _ in per_item], domains, slices)
    run.write("metrics", metrics)
    run.write("scores", scores + kl_scores)

    run.progress.phase("params")
    rows = change_stats(run.base_dir, checkpoints.save(run, built), cfg.params.region, cfg.params.measure)
    run.store.write("params", run.cid, [as_row(Change(cell_id=run.cid, **r)) for r in rows])
    if warning := zero_weight_warning(next(r for r in rows if r["scope"] == "region")):
        log.warning("[%s] %s", run.cell.label, warning)
