"""Bad configs and data files, each caught by `validate` with a message that names the field, the file or
the record, before any pretraining or mastery scoring (and so before anything could be lost)."""

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ftscope.validate import validate

ROOT = Path(__file__).resolve().parents[1]
_N = itertools.count()
SMOKE = yaml.safe_load((ROOT / "configs/smoke.yaml").read_text())


def _config(tmp_path, raw: dict | None = None, text: str | bytes | None = None, **over) -> Path:
    body = {**SMOKE, "results_dir": str(tmp_path / "results"), "artifacts_dir": str(tmp_path / "artifacts"),
            "cache_dir": str(tmp_path / "cache"), **over} if raw is None else raw
    path = tmp_path / f"study-{next(_N)}.yaml"  # every case its own file
    if text is None:
        path.write_text(yaml.safe_dump(body))
    else:
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _eq_dir(tmp_path, files: dict) -> Path:
    """An EntityQuestions directory: a good P19 training file, plus the files given."""
    d = tmp_path / "eq"
    d.mkdir()
    (d / "P19.train.json").write_text(json.dumps([{"question": "Where was Ada Lovelace born?", "answers": ["London"]}]))
    for name, content in files.items():
        (d / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    return d


def _eq(tmp_path, files: dict, **over) -> Path:
    return _config(tmp_path, data={"dataset": "entityquestions", "path": str(_eq_dir(tmp_path, files))}, **over)


BAD_EQ = {
    "an empty file": ({"P19.test.json": ""}, r"P19.test.json: the file is empty"),
    "a record without answers": ({"P19.test.json": json.dumps([{"question": "Where was Alan Turing born?"}])},
                                 r"P19.test.json, record 0: no field 'answers'"),
    "answers that are a dict": ({"P19.test.json": json.dumps([{"question": "Where was Alan Turing born?",
                                                               "answers": {"a": "C0"}}])},
                                r"P19.test.json, record 0: field 'answers' must be an answer or a list of answers"),
    "bytes that are not UTF-8": ({"P19.test.json": b'[{"question": "Where was \xff born?", "answers": ["x"]}]'},
                                 r"P19.test.json: not UTF-8 text"),
    "malformed JSON": ({"P19.test.json": '[{"question": "Where was Alan Turing born?", "answers": ["x"]'},
                       r"P19.test.json, line 1: malformed JSON"),
    "a JSONL line that is not JSON": ({"P19.test.jsonl": '{"question": "Where was X born?", "answers": ["y"]}\n{oops\n'},
                                      r"P19.test.jsonl, line 2: malformed JSON"),
}


@pytest.mark.parametrize("case", sorted(BAD_EQ))
def test_bad_entityquestions_files_are_named_with_record_and_field(tmp_path, case):
    files, expect = BAD_EQ[case]
    _, problems, _ = validate(str(_eq(tmp_path, files, models=[{"name": "m", "path": str(tmp_path)}])))
    assert any(__import__("re").search(expect, p) for p in problems), problems


def _cases(tmp_path) -> dict[str, tuple[Path, str]]:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    return {
        "results_dir is a regular file": (_config(tmp_path, results_dir=str(blocker / "results")),
                                          "results_dir: " + str(blocker) + " is a file, not a directory"),
        "a relative data path that does not exist (it could be a hub id)": (
            _config(tmp_path, data={"dataset": "entityquestions", "path": "data/entity_questions"}),
            "data.path: data/entity_questions: not a local directory; as a hub id it is not in the local hub cache"),
        "a relative data path that can only be local": (
            _config(tmp_path, data={"dataset": "entityquestions", "path": "./data/eq"}),
            "data.path: ./data/eq: no such local file or directory"),
        "a model hub id not reachable offline": (
            _config(tmp_path, models=[{"name": "m", "path": "meta-llama/Llama-2-7b-hf"}]),
            "models.m.path: meta-llama/Llama-2-7b-hf: not a local directory; as a hub id it is not in the local hub "
            "cache and HF_HUB_OFFLINE is set"),
        "a dataset hub id not reachable offline": (
            _config(tmp_path, data={"dataset": "entityquestions", "path": "someone/entity-questions"}),
            "data.path: someone/entity-questions: not a local directory; as a hub id it is not in the local hub cache"),
        "a prompt placeholder the items do not have": (
            _config(tmp_path, models=[{**SMOKE["models"][0], "prompt": {"template": "Q: {question} A: {answer}"}}]),
            "models.sandbox-tiny.prompt.template: {answer} is not a field of sandbox-k's items"),
        "gpus on a machine without any": (
            _config(tmp_path, models=[{**SMOKE["models"][0], "gpus": 1}]),
            "models.sandbox-tiny.gpus: 1 GPUs per cell but this machine has 0"),
        "empty seeds": (_config(tmp_path, grid={**SMOKE["grid"], "seeds": []}), "grid.seeds: List should have at least 1"),
        "empty levels": (_config(tmp_path, grid={**SMOKE["grid"], "levels": []}), "grid.levels: List should have at least 1"),
        "empty methods": (_config(tmp_path, grid={**SMOKE["grid"], "methods": []}),
                          "grid.methods: List should have at least 1"),
        "a config that is a list": (_config(tmp_path, text="- kind: k\n- study: x\n"),
                                    "the top level must be a mapping of fields, not a list"),
        "a config that is a scalar": (_config(tmp_path, text="just some words\n"),
                                      "the top level must be a mapping of fields, not a str"),
        "a config that is not UTF-8": (_config(tmp_path, text=b"study: caf\xe9\n"), "not UTF-8 text (byte 10)"),
        "a study named ..": (_config(tmp_path, study=".."), "study: String should match pattern"),
        "a study named .hidden": (_config(tmp_path, study=".hidden"), "study: String should match pattern"),
        "a study name with a slash": (_config(tmp_path, study="a/b"), "study: String should match pattern"),
        "no kind": (_config(tmp_path, raw={k: v for k, v in SMOKE.items() if k != "kind"}),
                    "kind: missing; set the study kind, one of g, k"),
        "an unknown field": (_config(tmp_path, trian={"lr": 1}), "trian: Extra inputs are not permitted"),
        "a negative learning rate": (_config(tmp_path, train={"lr": -1}), "train.lr: Input should be greater than 0"),
        "an unknown method": (_config(tmp_path, grid={**SMOKE["grid"], "methods": ["sft", "magic"]}),
                              "grid.methods: Value error, unknown methods ['magic']"),
        "restore without its parent": (_config(tmp_path, grid={**SMOKE["grid"], "methods": ["restore"]}),
                                       "'restore' starts from the checkpoints of 'sft' cells; add 'sft'"),
        "an unknown dataset": (_config(tmp_path, data={"dataset": "trivia"}), "data.dataset: \"unknown dataset 'trivia'"),
        "more phrasings than described": (_config(tmp_path, mastery={"n_map": 40}),
                                          "mastery.n_map is 40 but relations"),
        "too little data for the sample counts": (_config(tmp_path, grid={**SMOKE["grid"], "sample_counts": [5000]}),
                                                  "fewer than every sample count [5000]"),
        "a sandbox option that does not exist": (_config(tmp_path, data={"dataset": "sandbox-k", "options": {"sed": 1}}),
                                                 "data.options.sed: Extra inputs are not permitted"),
        "a missing DeepSpeed config": (_config(tmp_path, models=[{**SMOKE["models"][0], "processes": 2,
                                                                  "deepspeed": "nope.json"}]),
                                       "models.sandbox-tiny.deepspeed: nope.json is neither a shipped DeepSpeed config"),
        "a missing config file": (tmp_path / "nowhere.yaml", "config file not found"),
    }


def test_every_bad_input_is_caught_before_anything_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))  # nothing cached
    missed = {}
    for name, (path, expect) in _cases(tmp_path).items():
        _, problems, _ = validate(str(path))
        if not any(expect in p for p in problems):
            missed[name] = problems
    assert not missed, json.dumps(missed, indent=1)
    assert not (tmp_path / "cache" / "models").exists()  # nothing was pretrained
    assert not (tmp_path / "results" / "mastery").exists()  # nothing was scored


def test_the_deepspeed_launcher_must_be_found(tmp_path, monkeypatch):
    import ftscope.validate as v

    monkeypatch.setattr(v, "launcher_executable", lambda name: None)
    path = _config(tmp_path, models=[{**SMOKE["models"][0], "processes": 2, "launcher": "deepspeed"}])
    _, problems, _ = validate(str(path))
    assert any("models.sandbox-tiny.launcher: the `deepspeed` launcher is not installed" in p for p in problems)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere: an unwritable directory cannot be made")
def test_an_unwritable_results_directory(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    _, problems, _ = validate(str(_config(tmp_path, results_dir=str(locked / "results"))))
    assert any("is not writable by this user" in p for p in problems)


def test_the_cli_exits_2_and_names_the_problem(tmp_path):
    path = _config(tmp_path, text=b"study: caf\xe9\n")
    r = subprocess.run([sys.executable, "-m", "flows.cli", "validate", str(path)], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 2 and "not UTF-8" in r.stderr
    r = subprocess.run([sys.executable, "-m", "flows.cli", "run", str(_config(tmp_path, study=".hidden"))],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "study:" in r.stderr and not (tmp_path / "cache").exists()
