"""Bad inputs, round two: what used to crash `validate` with a traceback, what passed it and failed later (or
silently), hostile YAML, and messages that said the wrong thing. Every case ends in `ftscope validate`
exiting 2 with a message naming the file or field, no traceback, and nothing pretrained or scored."""

import contextlib
import io
import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from flows.cli import main
from ftscope.datasets import SHIPPED

ROOT = Path(__file__).resolve().parents[1]
SMOKE = yaml.safe_load((ROOT / "configs/smoke.yaml").read_text())
SMOKE_G = yaml.safe_load((ROOT / "configs/smoke-g.yaml").read_text())


def _write(path: Path, body) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body if isinstance(body, str) else yaml.safe_dump(body))
    return path


def _k(tmp_path, name="study.yaml", **over) -> Path:
    return _write(tmp_path / name, {**SMOKE, "results_dir": str(tmp_path / "results"),
                                    "artifacts_dir": str(tmp_path / "artifacts"), "cache_dir": str(tmp_path / "cache"),
                                    **over})


def _g(tmp_path, name="g.yaml", **over) -> Path:
    return _write(tmp_path / name, {**SMOKE_G, "results_dir": str(tmp_path / "results"),
                                    "artifacts_dir": str(tmp_path / "artifacts"), "cache_dir": str(tmp_path / "cache"),
                                    **over})


def _my_dataset(tmp_path, **fields) -> Path:
    """A datasets directory holding one sentiment dataset read from a local file, with `fields` over it."""
    folder = tmp_path / "mine"
    _write(folder / "reviews.json", json.dumps([{"input": "nice", "output": "positive", "split": s}
                                                for s in ("train", "test", "demo")]))
    _write(folder / "my-reviews.yaml", {"include": str(SHIPPED / "g" / "_sentiment.yaml"), "name": "my-reviews",
                                        "domain": "mine", "source": {"format": "files", "records": "reviews.json"},
                                        **fields})
    return folder


def _paper_root(tmp_path, prompt_map: str) -> Path:
    root = tmp_path / "paper"
    recs = [{"idx": i, "input": f"review {i}", "output": "positive" if i % 2 else "negative"} for i in range(8)]
    _write(root / "sentiment" / "amazon_test_500.json", json.dumps(recs))
    _write(root / "sentiment" / "amazon_train_4.json", json.dumps(recs[:4]))
    _write(root / "sentiment" / "few_shot" / "amazon_few_shot.json", json.dumps(recs[:2]))
    _write(root / "prompt_map.json", prompt_map)
    return root


def _paper_g(tmp_path, root) -> Path:
    return _g(tmp_path, data={"root": str(root), "test": ["amazon"]},
              grid={"train": ["amazon"], "sizes": [4], "methods": ["icl", "sft"]},
              eval={"shots": {"sentiment": [0, 2]}, "prompt_maps": [0]})


def _cases(tmp_path) -> dict[str, tuple[Path, str]]:
    t = tmp_path
    inc = lambda name, include: _write(t / name / "d.yaml", {"include": include, "name": f"x-{name}"})  # noqa: E731
    big = t / "big.yaml"
    big.write_text("study: big\n" + "# filler\n" * 4_500_000)  # 40 MB of comments
    bomb = t / "bomb.yaml"
    bomb.write_text("a: &a [" + ",".join(["lol"] * 9) + "]\n" + "".join(
        f"{b}: &{b} [" + ",".join([f"*{a}"] * 9) + "]\n" for a, b in zip("abcdefgh", "bcdefghi")))
    return {
        # crashes seen (tracebacks before)
        "include: naming a missing file": (
            _k(t, "c1.yaml", datasets_dirs=[str(inc("c1", "nowhere.yaml").parent)]), "include: dataset description not found"),
        "include: naming a directory": (
            _k(t, "c2.yaml", datasets_dirs=[str(inc("c2", ".").parent)]), "is a directory, not a YAML file"),
        "include: as a list": (
            _k(t, "c3.yaml", datasets_dirs=[str(inc("c3", ["a.yaml", "b.yaml"]).parent)]), "include: must name one file"),
        "a prompt_map.json template that is not a string": (
            _paper_g(t / "c4", _paper_root(t / "c4", json.dumps([{"sentiment": 42}]))),
            "prompt_map.json: map 0, task folder 'sentiment': the template must be a string"),
        "a malformed prompt_map.json": (
            _paper_g(t / "c5", _paper_root(t / "c5", "[{")), "prompt_map.json: not a valid JSON file"),
        "eval.shots with an empty list": (_g(t, "c6.yaml", eval={"shots": {"sentiment": []}}),
                                          "eval.shots.sentiment: List should have at least 1 item"),
        "datasets_dirs naming a missing directory": (_k(t, "c7.yaml", datasets_dirs=["no-such-dir"]),
                                                     "datasets_dirs: Value error, not a directory"),
        "extends: as a list": (_write(t / "c8.yaml", {"extends": ["a.yaml"], "study": "x"}), "extends: must name one file"),
        "extends: naming a missing file": (_write(t / "c9.yaml", {"extends": "nowhere.yaml", "study": "x"}),
                                           "c9.yaml: extends: config file not found"),
        # passed validation, then failed late or silently
        "an unknown metric": (_g(t, "l1.yaml", datasets_dirs=[str(_my_dataset(t / "l1", metric="bleu"))],
                                 data={"test": ["my-reviews"]}, grid={"train": ["my-reviews"], "sizes": [1],
                                                                      "methods": ["icl"]}),
                              "metric: Value error, unknown metric 'bleu'"),
        "label_prob on a generation dataset": (
            _g(t, "l2.yaml", datasets_dirs=[str(_my_dataset(t / "l2", type="generation", labels=None))],
               data={"test": ["my-reviews"]}, grid={"train": ["my-reviews"], "sizes": [1], "methods": ["icl"]}),
            "'label_prob' scores classification datasets, not a generation dataset"),
        "negative fticl.shots": (_g(t, "l3.yaml", fticl={"shots": [-1]}),
                                 "fticl.shots.0: Input should be greater than or equal to 0"),
        "negative eval.shots": (_g(t, "l4.yaml", eval={"shots": {"sentiment": [-2]}}),
                                "eval.shots.sentiment.0: Input should be greater than or equal to 0"),
        "negative prompt_maps": (_g(t, "l5.yaml", eval={"prompt_maps": [-1]}),
                                 "eval.prompt_maps.0: Input should be greater than or equal to 0"),
        "an unknown lr_scheduler": (_k(t, "l6.yaml", train={**SMOKE["train"], "lr_scheduler": "cosin"}),
                                    "train.lr_scheduler: Input should be 'linear', 'cosine'"),
        "a scheduler the Trainer refuses without an evaluation set": (
            _k(t, "l7.yaml", train={**SMOKE["train"], "lr_scheduler": "reduce_lr_on_plateau"}), "train.lr_scheduler"),
        "artifacts_dir that is a file": (_k(t, "l8.yaml", artifacts_dir=str(_write(t / "afile", "x"))),
                                         "artifacts_dir: " + str(t / "afile") + " is a file"),
        "cache_dir that is a file": (_k(t, "l9.yaml", cache_dir=str(_write(t / "cfile", "x") / "sub")),
                                     "cache_dir: " + str(t / "cfile") + " is a file"),
        "a study name too long for a file name": (_k(t, "l10.yaml", study="s" * 300),
                                                  "study: String should have at most 100 characters"),
        "a model directory without its weights": (
            _k(t, "l11.yaml", models=[{"name": "m", "path": str(_write(t / "model" / "config.json", "{}").parent)}]),
            "the checkpoint is damaged: no weights (model.safetensors)"),
        "a model directory with a truncated weights file": (
            _k(t, "l12.yaml", models=[{"name": "m", "path": str(_truncated_model(t / "model2"))}]),
            "model.safetensors: truncated"),
        # hostile YAML
        "an alias bomb": (bomb, "expands to more than 200,000 values through its aliases"),
        "a 40 MB config": (big, "MiB; one over 1 MiB is refused"),
    }


def _truncated_model(folder: Path) -> Path:
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    save_file({"w": torch.zeros(1000)}, str(folder / "model.safetensors"))
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[:len(data) // 2])
    return folder


def _validate(path: Path) -> tuple[int, str]:
    """`ftscope validate PATH` in this process: (exit code, standard error)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(["validate", str(path)])
        except SystemExit as e:
            rc = e.code
    return rc, err.getvalue()


def test_every_case_exits_2_with_a_message_and_no_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    missed = {}
    for name, (path, expect) in _cases(tmp_path).items():
        rc, err = _validate(path)
        if rc != 2 or expect not in err or "Traceback" in err:
            missed[name] = (rc, err[-600:])
    assert not missed, json.dumps(missed, indent=1)
    assert not (tmp_path / "cache" / "models").exists() and not (tmp_path / "results" / "mastery").exists()


def test_a_study_g_dataset_error_is_said_once(tmp_path):
    path = _g(tmp_path, data={"test": ["no-such-set"]})
    rc, err = _validate(path)
    assert rc == 2 and err.count("no-such-set") == 1, err


def test_no_message_echoes_unbounded_input(tmp_path):
    path = _k(tmp_path, train={"lr": "x" * 100_000})
    rc, err = _validate(path)
    assert rc == 2 and "train.lr" in err and len(err) < 2000, len(err)


@pytest.fixture()
def read_only_dir(tmp_path):
    """A directory on a real read-only filesystem (a tmpfs mounted read-only; needs root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a read-only filesystem needs root")
    mnt = tmp_path / "ro"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(mnt)]).returncode != 0:
        pytest.skip("this machine does not let the tests mount a tmpfs")
    yield mnt
    subprocess.run(["umount", str(mnt)])


def test_a_read_only_filesystem_is_named_as_such(tmp_path, read_only_dir):
    for key in ("cache_dir", "results_dir"):
        rc, err = _validate(_k(tmp_path, f"{key}.yaml", **{key: str(read_only_dir / "sub")}))
        assert rc == 2 and f"{key}: {read_only_dir} is on a read-only filesystem" in err, err


def test_records_without_a_gold_label_are_kept_as_the_paper_does(tmp_path):
    """MNLI's released test files hold records labelled '-' (annotators disagreed): they are kept (and can never
    be predicted correctly), validate says how many; `data.unlabeled: drop` leaves them out."""
    from ftscope.config import load_config
    from ftscope.studies import g
    from ftscope.validate import validate

    root = tmp_path / "paper"
    recs = [{"idx": i, "input_1": f"p{i}", "input_2": f"h{i}",
             "output": "-" if i in (2, 5) else ["entailment", "neutral", "contradiction"][i % 3]} for i in range(9)]
    _write(root / "inference" / "multinli_test_500.json", json.dumps(recs))
    _write(root / "inference" / "multinli_train_6.json", json.dumps([r for r in recs if r["output"] != "-"]))
    _write(root / "inference" / "few_shot" / "multinli_few_shot.json", json.dumps([recs[0], recs[1], recs[3]]))
    raw = {"data": {"root": str(root), "test": ["multinli"]}, "eval": {"shots": {"nli": [0, 3]}, "prompt_maps": [0]},
           "grid": {"train": ["multinli"], "sizes": [4], "methods": ["icl", "sft"]}}
    cfg, problems, notes = validate(str(_g(tmp_path, **raw)))
    assert not problems, problems
    assert any("multinli has 2 test records labelled '-' (no gold label): kept" in n for n in notes), notes
    test = g.STUDY.load_data(cfg).dataset("multinli").split("test")
    assert len(test) == 9 and [it["output"] for it in test if it.get("unlabeled")] == ["-", "-"]
    dropped = load_config(_g(tmp_path, "drop.yaml", **{**raw, "data": {**raw["data"], "unlabeled": "drop"}}))
    assert len(g.STUDY.load_data(dropped).dataset("multinli").split("test")) == 7
    (root / "inference" / "multinli_test_500.json").write_text(json.dumps([{**recs[0], "output": "maybe"}]))
    _, problems, _ = validate(str(_g(tmp_path, "bad.yaml", **raw)))
    assert any("label 'maybe' is not one of the label words" in p for p in problems), problems  # others still fail


def test_a_dataset_description_may_not_include_its_way_out_of_a_loop(tmp_path):
    folder = tmp_path / "loop"
    _write(folder / "a.yaml", {"include": "b.yaml", "name": "a"})
    _write(folder / "b.yaml", {"include": "a.yaml"})
    rc, err = _validate(_k(tmp_path, datasets_dirs=[str(folder)]))
    assert rc == 2 and "loops back" in err, err


def test_the_bounds_are_measured_not_guessed():
    """The alias measure counts the document as expanded, on the shared graph (no expansion happens)."""
    import yaml as pyyaml

    from ftscope.yamlfile import _expanded_size

    node = pyyaml.compose(textwrap.dedent("""
        a: &a [1, 2]
        b: [*a, *a, *a]
    """))
    # mapping + (key a + list a(3)) + (key b + list b(1 + 3 x 3))
    assert _expanded_size(node, {}) == 1 + (1 + 3) + (1 + 1 + 3 * 3)
