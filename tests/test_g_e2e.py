"""Study G end to end on the sandbox suite (configs/smoke-g.yaml): every trained model and the base
model (ICL) tested on every test set under both prompt maps at every shot count, each row placed
in-domain, out-of-domain or cross-task; a second run has nothing left to do."""

from flows.study import study
from ftscope.config import load_config
from ftscope.report.render import report_text
from ftscope.store import Store


def test_cross_task_matrix(smoke_g_config, prefect_harness):
    cfg = load_config(smoke_g_config)
    assert study(config_path=smoke_g_config, return_state=True).is_completed()
    store = Store(cfg.results_dir)
    cells = store.sql("SELECT cell_id, method, variant, train FROM cells").fetchall()
    assert sorted((m, v, t) for _, m, v, t in cells) == [
        ("fticl", "fticl-1", "sbx-qg-people"), ("fticl", "fticl-1", "sbx-reviews-products"), ("icl", "icl", None),
        ("sft", "sft", "sbx-qg-people"), ("sft", "sft", "sbx-reviews-products")]
    shots = {"sbx-reviews-products": [0, 2], "sbx-reviews-films": [0, 2], "sbx-qg-people": [0, 1],
             "sbx-qg-places": [0, 1]}
    task = {"sbx-reviews-products": "sentiment", "sbx-reviews-films": "sentiment",
            "sbx-qg-people": "question_generation", "sbx-qg-places": "question_generation"}
    rows = store.read("metrics").to_pylist()
    for cid, method, _, train in cells:
        mine = {(r["dataset"], r["prompt_map"], r["shots"]): r for r in rows if r["cell_id"] == cid}
        assert set(mine) == {(d, pm, k) for d, ks in shots.items() for pm in (0, 1) for k in ks}, (method, train)
        for (d, _, _), r in mine.items():
            ref = train or ("sbx-reviews-products" if task[d] == "sentiment" else "sbx-qg-people")
            expected = ("in_domain" if d == ref else "out_of_domain") if task[d] == task[ref] else "cross_task"
            assert r["domain"] == expected and r["n"] == 16 and r["task"] == task[d]
            assert r["metric"] == ("label_prob" if task[d] == "sentiment" else "rouge_l")
            assert 0 <= r["value"] <= 1 and r["total"] == sum(
                s["value"] for s in store.read("scores").to_pylist() if s["cell_id"] == cid and s["dataset"] == d
                and s["prompt_map"] == r["prompt_map"] and s["shots"] == r["shots"])
    # the parameter difference of every fine-tuned model, none for the untouched base model
    diff = {r["cell_id"]: r["mean_change"] for r in store.read("params").to_pylist() if r["scope"] == "region"}
    assert {cid for cid, m, *_ in cells if m != "icl"} == set(diff) and all(v > 0 for v in diff.values())
    assert "in_domain" in report_text(store)

    assert study(config_path=smoke_g_config, return_state=True).is_completed()
    assert store.read("cells").num_rows == 5  # nothing ran twice
