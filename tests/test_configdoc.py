"""docs/config.md is the schema's reference as generated now: a key added, renamed or re-described without
regenerating it fails here (`python -m ftscope.configdoc > docs/config.md`)."""

from pathlib import Path

from ftscope.configdoc import reference

ROOT = Path(__file__).resolve().parents[1]


def test_config_reference_is_current():
    assert (ROOT / "docs/config.md").read_text() == reference(), \
        "docs/config.md is out of date: run `python -m ftscope.configdoc > docs/config.md`"


def test_every_key_is_listed():
    text = reference()
    for key in ("`results_dir`", "`models[].sandbox.seeds`", "`eval.general.tasks[].metric`", "`cluster.poll_s`",
                "`grid.sample_counts`", "`grid.sizes`", "`restore.k_percent`", "`lora.r`"):
        assert key in text, key
