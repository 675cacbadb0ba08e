"""The real-data path end to end: EntityQuestions-format files on disk and a model given by local
path (here the sandbox checkpoint, as any HF checkpoint directory), through the same flow."""

import json

import yaml

from flows.study import study
from ftscope.store import Store


def test_entityquestions_files_and_local_model_path(smoke_base, k_items, prefect_harness, tmp_path):
    cfg, data, base, _ = smoke_base
    eq = tmp_path / "entityquestions"
    for it in k_items:
        split_dir = eq / it["split"]
        split_dir.mkdir(parents=True, exist_ok=True)
        f = split_dir / f"{it['relation']}.{it['split']}.jsonl"
        with f.open("a") as out:  # no subject field: it is recovered from the question
            out.write(json.dumps({"question": it["question"], "answers": it["answers"]}) + "\n")
    path = tmp_path / "eq.yaml"
    path.write_text(yaml.safe_dump({
        "kind": "k", "study": "eq-local", "results_dir": str(tmp_path / "results"), "artifacts_dir": str(tmp_path / "art"),
        "cache_dir": str(tmp_path / "cache"),
        "data": {"dataset": "entityquestions", "path": str(eq), "max_test_items": 40},
        "models": [{"name": "local-llama", "path": base}],
        "mastery": {"n_map": 21, "n_sample": 2, "max_new_tokens": 6},
        "grid": {"levels": ["mixed"], "sample_counts": [8], "methods": ["base", "sft"]},
        "train": {"epochs": 1, "lr": 1e-3}}))

    assert study(config_path=str(path), return_state=True).is_completed()
    store = Store(str(tmp_path / "results"))
    mastery = store.read("mastery").to_pylist()
    assert {r["exposure"] for r in mastery} == {-1}  # real data: exposure unknown
    assert sum(r["domain"] == "ood" for r in mastery) == 40 and sum(r["split"] == "test" and r["domain"] == "id"
                                                                   for r in mastery) == 40
    cells = {r["variant"]: r for r in store.latest_cells().values()}
    assert cells.keys() == {"base", "sft"} and all(r["status"] == "done" for r in cells.values())
    acc = {r["cell_id"]: r["value"] for r in store.read("metrics").to_pylist()
           if r["domain"] == "id" and r["slice"] == "all"}
    assert 0 < acc[cells["base"]["cell_id"]] < 1
