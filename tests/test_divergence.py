import copy

import pytest
import torch

from ftscope.datasets import get
from ftscope.divergence import KLConfig, kl_rows, token_kl
from ftscope.models import load_model, load_tokenizer
from ftscope.prompts import PromptConfig, Prompter
from ftscope.train.lora import LoraConfig, wrap_lora

CBQA = Prompter(get("entityquestions"), PromptConfig())

ITEMS = [{"item_id": f"P19:{s}", "relation": "P19", "question": f"Where was {s} born?", "answers": [a],
          "domain": d, "split": "test"}
         for s, a, d in [("Abo Kel", "Varo", "id"), ("person1", "city1 city2", "id"), ("person2", "city3", "ood")]]


def _perturbed(model, seed=0):
    other = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return other


def test_identical_models_have_zero_kl(tiny_llama):
    tok, model = load_tokenizer(tiny_llama), load_model(tiny_llama)
    per_item = token_kl(model, model, tok, ITEMS, CBQA, KLConfig(batch_size=2))
    assert all(abs(kl) < 1e-6 and n > 0 for kl, n in per_item)


@torch.no_grad()
def test_kl_matches_direct_computation(tiny_llama):
    tok, base = load_tokenizer(tiny_llama), load_model(tiny_llama)
    ft = _perturbed(base)
    for direction in ("ft_base", "base_ft"):
        per_item = token_kl(ft, base, tok, ITEMS, CBQA, KLConfig(batch_size=2, direction=direction))
        for it, (kl, n) in zip(ITEMS, per_item):
            prompt = f"Question: {it['question']}\nAnswer:"
            p_ids = tok(prompt)["input_ids"]
            ids = torch.tensor([p_ids + tok(" " + it["answers"][0], add_special_tokens=False)["input_ids"]])
            lf = torch.log_softmax(ft(ids).logits[0].double(), -1)
            lb = torch.log_softmax(base(ids).logits[0].double(), -1)
            lp, lq = (lf, lb) if direction == "ft_base" else (lb, lf)
            pos = range(len(p_ids) - 1, ids.shape[1] - 1)  # positions that predict answer tokens
            direct = torch.stack([(lp[t].exp() * (lp[t] - lq[t])).sum() for t in pos]).mean()
            assert n == len(pos) and kl == pytest.approx(float(direct), rel=1e-4, abs=1e-7)
            assert kl > 0


def test_lora_base_is_the_model_with_adapter_disabled(tiny_llama):
    tok, base = load_tokenizer(tiny_llama), load_model(tiny_llama)
    peft_model = wrap_lora(copy.deepcopy(base), LoraConfig(r=4))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    via_adapter = token_kl(peft_model, None, tok, ITEMS, CBQA, KLConfig())
    merged = copy.deepcopy(peft_model).merge_and_unload()
    direct = token_kl(merged, base, tok, ITEMS, CBQA, KLConfig())
    assert [round(k, 5) for k, _ in via_adapter] == [round(k, 5) for k, _ in direct]
    assert all(k > 0 for k, _ in via_adapter)


def test_rows_per_domain_and_level():
    rows = kl_rows("c", "d", [(0.1, 2), (0.3, 3), (0.5, 1)], ["id", "id", "ood"], ["level=0", "level=4", "level=0"],
                   KLConfig())
    by = {(r["domain"], r["slice"]): r for r in rows}
    assert by[("id", "all")]["value"] == pytest.approx(0.2) and by[("id", "all")]["n_positions"] == 5
    assert by[("id", "level=4")]["value"] == pytest.approx(0.3) and by[("ood", "level=0")]["n"] == 1


def test_the_base_log_probabilities_kept_for_the_next_cell_give_the_same_kl(tiny_llama):
    """The cells of one base model share its log-probabilities on the KL prompts (ModelContext.kept): a cell that
    reads them computes the KL it would have computed with the base model, bit for bit, a LoRA cell (adapter
    switched off) included."""
    tok, base = load_tokenizer(tiny_llama), load_model(tiny_llama)
    kept = {}
    cfg = KLConfig(batch_size=2)
    token_kl(base, base, tok, ITEMS, CBQA, cfg, kept=kept)  # the base cell fills it
    assert len(kept) == 1
    ft = _perturbed(base)
    assert token_kl(ft, base, tok, ITEMS, CBQA, cfg, kept=kept) == token_kl(ft, base, tok, ITEMS, CBQA, cfg)
    peft_model = wrap_lora(copy.deepcopy(base), LoraConfig(r=4))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    assert token_kl(peft_model, None, tok, ITEMS, CBQA, cfg, kept=kept) == token_kl(peft_model, None, tok, ITEMS, CBQA, cfg)
    other = KLConfig(batch_size=3)  # other batches: not the kept ones
    assert token_kl(ft, base, tok, ITEMS, CBQA, other, kept=kept) == token_kl(ft, base, tok, ITEMS, CBQA, other)
    assert len(kept) == 2
    used = {}
    token_kl(ft, ft, tok, ITEMS, CBQA, cfg, kept=used)  # kept from another model: the next call reads them, not base
    assert all(kl == 0 for kl, _ in token_kl(ft, base, tok, ITEMS, CBQA, cfg, kept=used))
