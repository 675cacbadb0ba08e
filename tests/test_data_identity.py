"""Data identity: a dataset is what its files hold. Editing one record of a local data file makes
`validate` read the file again (and catch a broken record), gives new ids to exactly the cells that
read the edited records, and `run` re-runs exactly those cells."""

import json
import os
import textwrap

import yaml

from flows.study import study
from ftscope.config import load_config
from ftscope.datasets import Where, get
from ftscope.plan import cell_ids
from ftscope.store import Store
from ftscope.studies import STUDIES
from ftscope.studydata import Source
from ftscope.validate import validate

DESCRIPTION = """
include: {task}
name: {name}
domain: {domain}
source: {{format: files, train: {name}.train.json, test: {name}.test.json, demo: {name}.demo.json}}
test_items: null
"""


def _write_datasets(folder, data) -> dict[str, str]:
    """The smoke-G suite's sentiment and question-generation sets as local JSON files with descriptions."""
    folder.mkdir()
    shipped = get("sbx-reviews-products").origin
    tasks = {"sentiment": os.path.join(os.path.dirname(shipped), "..", "_sentiment.yaml"),
             "question_generation": os.path.join(os.path.dirname(shipped), "..", "_question.yaml")}
    names = {"sbx-reviews-products": "my-reviews", "sbx-qg-people": "my-questions"}
    for src, name in names.items():
        ds = data.dataset(src)
        (folder / f"{name}.yaml").write_text(textwrap.dedent(DESCRIPTION.format(
            task=os.path.abspath(tasks[ds.spec.task]), name=name, domain=ds.spec.domain)))
        for split in ("train", "test", "demo"):
            records = [{k: v for k, v in it.items() if k not in ("item_id", "split")} for it in ds.split(split)]
            (folder / f"{name}.{split}.json").write_text(json.dumps(records, indent=1))
    return names


def _study(tmp_path, base) -> str:
    path = tmp_path / "identity.yaml"
    path.write_text(yaml.safe_dump({
        "kind": "g", "study": "identity", "results_dir": str(tmp_path / "results"),
        "artifacts_dir": str(tmp_path / "artifacts"), "cache_dir": str(tmp_path / "cache"),
        "datasets_dirs": ["datasets"], "models": [{"name": "m", "path": base}],
        "data": {"test": ["my-reviews", "my-questions"], "test_items": 8},
        "grid": {"train": ["my-reviews", "my-questions"], "sizes": [16], "methods": ["icl", "sft"]},
        "eval": {"prompt_maps": [0], "shots": {"sentiment": [0], "question_generation": [0]}, "max_new_tokens": 8},
        "train": {"epochs": 1, "lr": 1.0e-3, "batch_size": 8, "max_length": 256}}))
    return str(path)


def _ids(path) -> dict[str, str]:
    cfg = load_config(path)
    study = STUDIES.get(cfg.kind)
    return cell_ids(cfg, study, study.load_data(cfg), {m.name: m.path for m in cfg.models})


def test_an_edited_record_reruns_exactly_the_cells_that_read_it(smoke_g_base, prefect_harness, tmp_path):
    _, data, base = smoke_g_base
    _write_datasets(tmp_path / "datasets", data)
    path = _study(tmp_path, base)
    before = _ids(path)
    assert sorted(before) == ["m/icl/s0", "m/train=my-questions/size=16/sft/s0", "m/train=my-reviews/size=16/sft/s0"]
    assert study(config_path=path, return_state=True).is_completed()

    # a broken record in the question-generation training file: validate reads the file again and names it
    train_file = tmp_path / "datasets" / "my-questions.train.json"
    good = json.loads(train_file.read_text())
    train_file.write_text(json.dumps([{k: v for k, v in r.items() if k != "output"} if i == 3 else r
                                      for i, r in enumerate(good)], indent=1))
    _, problems, _ = validate(path)
    assert any("my-questions.train.json, record 3: no field 'output'" in p for p in problems), problems

    # one record edited, same file size (and its old modification time): a new dataset all the same
    train_file.write_text(json.dumps(good, indent=1))
    stat = os.stat(train_file)
    edited = [dict(r) for r in good]
    edited[3]["output"] = edited[3]["output"][::-1]
    train_file.write_text(json.dumps(edited, indent=1))
    os.utime(train_file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert os.stat(train_file).st_size == stat.st_size
    _, problems, _ = validate(path)
    assert not problems, problems
    after = _ids(path)
    changed = sorted(label for label in before if before[label] != after[label])
    assert changed == ["m/train=my-questions/size=16/sft/s0"]  # only the cell trained on the edited records

    assert study(config_path=path, return_state=True).is_completed()
    attempts = Store(str(tmp_path / "results")).read("cells").to_pylist()
    runs = {}
    for a in attempts:
        runs[a["cell_id"]] = runs.get(a["cell_id"], 0) + 1
    assert runs == {**{cid: 1 for cid in before.values()}, after["m/train=my-questions/size=16/sft/s0"]: 1}


def test_the_fingerprint_follows_file_contents_not_size_or_time(tmp_path):
    (tmp_path / "t.yaml").write_text(textwrap.dedent("""
        name: t
        task: cbqa
        type: cbqa
        metric: contains
        templates: ["Q: {question}\\nA:"]
        target: answers
        source: {format: files, records: t.json}
        subsets: {R: {questions: ["Where is {s}?"]}}
    """))
    from ftscope.datasets.spec import read_spec

    spec = read_spec(tmp_path / "t.yaml")
    f = tmp_path / "t.json"
    f.write_text(json.dumps([{"relation": "R", "subject": "A", "answers": ["London"], "split": "test"}]))
    a = Source(spec, Where()).fingerprint({})
    assert Source(spec, Where()).fingerprint({}) == a
    stat = os.stat(f)
    f.write_text(json.dumps([{"relation": "R", "subject": "A", "answers": ["Lisbon"], "split": "test"}]))
    os.utime(f, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert Source(spec, Where()).fingerprint({}) != a
