"""One Study G cell, top to bottom: the method's model (on the first `size` records of its training set) ->
general capability and other measurements -> every test set x prompt map x shots -> the parameter difference
of a model that changed -> rows."""

from ftscope import checkpoints, engines
from ftscope.cell import CellRun
from ftscope.change import change_stats
from ftscope.datasets import Dataset
from ftscope.evaluate import predict, result_rows, score
from ftscope.measurements import measure
from ftscope.methods import build
from ftscope.records import Change, as_row
from ftscope.studies.g.data import reference_train, relation, shots_of, train_pool


def training_items(run: CellRun) -> tuple[list[dict], Dataset]:
    """The first `size` records of the training set; the paper's `<name>_train_<size>.json` when it exists."""
    ds = run.data.dataset(run.axes["train"])
    size = run.axes["size"]
    if exact := ds.split(f"train_{size}"):
        return exact, ds
    pool = train_pool(ds)
    if len(pool) < size:
        raise ValueError(f"dataset {ds.name} has {len(pool)} training records; size {size} asked")
    return pool[:size], ds


def run_cell(run: CellRun) -> None:
    """One cell: its method's model, tested on every test set x prompt map x shots; then the parameter
    difference of a model that changed."""
    built = build(run, training_items)
    measure(run, built.model)  # what the config asks for besides (eval.general), on the model as built

    cfg, tok = run.cfg, run.tokenizer
    by_name = {name: ds.spec for name, ds in run.data.datasets.items()}
    train = by_name.get(run.axes.get("train"))
    built = built.merge_adapter()  # peft merges in place: from here on only the merged model exists
    engine = engines.for_cell(run, built)
    metric_rows, score_rows = [], []
    run.progress.phase("evaluate", total=sum(len(run.data.dataset(n).split("test")) * len(shots_of(cfg, run.data.dataset(
        n).spec)) for n in cfg.data.test) * len(cfg.eval.prompt_maps), unit="prompts")
    done = 0
    for name in cfg.data.test:
        ds = run.data.dataset(name)
        test = ds.split("test")
        prompter = run.prompter(ds)
        ref = train or reference_train(cfg, ds.spec, by_name)
        rel = relation(ref, ds.spec) if ref else "untrained_task"
        for pm in cfg.eval.prompt_maps:
            for k in shots_of(cfg, ds.spec):
                preds = predict(engine, tok, prompter, test, prompt_map=pm, demos=ds.demos[:k],
                                max_new_tokens=cfg.eval.max_new_tokens)
                m, s = result_rows(run.cid, ds.spec, ds.spec.metric, test, score(prompter, test, preds),
                                   [rel] * len(test), None, preds, pm, k)
                metric_rows += m
                score_rows += s
                done += len(test)
                run.progress.update(done)
    engine.close()
    run.write("metrics", metric_rows)
    run.write("scores", score_rows)
    if not built.unchanged:  # a model that changed: mean |theta_ft - theta_base| over all parameters
        run.progress.phase("params")
        rows = change_stats(run.base_dir, checkpoints.save(run, built), region="all", measure="absolute", shares=())
        run.store.write("params", run.cid, [as_row(Change(cell_id=run.cid, **r)) for r in rows])
