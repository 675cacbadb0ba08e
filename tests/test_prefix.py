"""A shared prefix computed once gives what the full rows give: training loss and gradients (FTICL's examples),
and label log-probabilities (k-shot prompts), up to float rounding; examples without demonstrations are untouched."""

import pytest
import torch

from ftscope import prefix
from ftscope.datasets import get
from ftscope.engines.hf import HFEngine, HFOptions
from ftscope.generation import left_pad
from ftscope.models import load_model, load_tokenizer
from ftscope.prompts import PromptConfig, Prompter, encode_all
from ftscope.train.examples import build_examples

CBQA = Prompter(get("entityquestions"), PromptConfig())
ITEMS = [{"question": f"Where was person{i} born?" + " Quick question" * (i % 3), "answers": [f"city{i}"]}
         for i in range(8)]
SAME_QUESTION = [{"question": "Where was person1 born?", "answers": [f"city{i}"]} for i in range(8)]  # differ at the answer
DEMOS = [{"question": f"Where was person{i} born?", "answers": [f"city{i}"]} for i in range(20, 27)]


def test_common_length():
    assert prefix.common_length([[1, 2, 3], [1, 2, 4]]) == 2
    assert prefix.common_length([[1, 2], [1, 2]]) == 1  # each row keeps a token of its own
    assert prefix.common_length([[5], [5]]) == 0
    assert prefix.common_length([[1, 2, 3], [7, 2, 3]]) == 0


def test_only_examples_with_demonstrations_share_and_never_a_supervised_token(tiny_llama):
    tok = load_tokenizer(tiny_llama)
    assert all("shared" not in e for e in build_examples(ITEMS, CBQA, tok, 128))  # SFT: as before
    examples = build_examples(ITEMS, CBQA, tok, 128, demos=DEMOS)
    n = examples[0]["shared"]
    assert n > 20 and all(e["shared"] == n for e in examples)
    assert all(e["labels"][: n + 1] == [-100] * (n + 1) for e in examples)
    assert all("shared" not in e for e in build_examples(ITEMS, CBQA, tok, 24, demos=DEMOS))  # truncated: no prefix


def _grads(model):
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("items", [ITEMS, SAME_QUESTION], ids=["questions", "one-question"])
def test_training_loss_and_gradients_equal_the_full_rows(tiny_llama, items):
    from transformers import DataCollatorForSeq2Seq

    tok = load_tokenizer(tiny_llama)
    tok.padding_side = "right"
    pad = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)
    examples = build_examples(items, CBQA, tok, 128, demos=DEMOS)
    model = load_model(tiny_llama).train()

    full = pad([{k: e[k] for k in ("input_ids", "labels")} for e in examples])
    loss_full = model(**full).loss
    loss_full.backward()
    grads_full = _grads(model)
    model.zero_grad()

    shared = prefix.Collator(pad)(examples)
    assert shared["prefix_ids"].shape[1] == examples[0]["shared"]
    assert shared["input_ids"].shape[1] == full["input_ids"].shape[1] - examples[0]["shared"]
    loss_shared = model(**prefix.continued(model, shared)).loss
    loss_shared.backward()
    torch.testing.assert_close(loss_shared, loss_full, rtol=1e-5, atol=1e-6)
    for a, b in zip(_grads(model), grads_full):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_label_logprobs_equal_the_full_prompts(tiny_llama):
    tok, model = load_tokenizer(tiny_llama), load_model(tiny_llama)
    prompts = encode_all(tok, [CBQA.text(it, 0, DEMOS) for it in ITEMS])
    assert prefix.common_length(prompts) >= prefix.WORTH  # the shared path is the one tested
    labels = [tok.convert_tokens_to_ids("city1"), tok.convert_tokens_to_ids("city2")]
    shared = HFEngine(model, tok, HFOptions(batch_size=5), token_budget=4096).label_logprobs(prompts, labels)
    with torch.no_grad():
        ids, mask = left_pad(prompts, tok.pad_token_id, "cpu")
        logits = model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits
    full = torch.log_softmax(logits[:, -1], -1)[:, labels]
    torch.testing.assert_close(torch.tensor(shared), full, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def lively(tiny_llama):
    """tiny_llama's tokenizer and a random Llama with larger weights: its answers change with what it reads (at
    the usual initialisation every prompt gets the same answer, which would hide a wrong prefix)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = load_tokenizer(tiny_llama)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=2, intermediate_size=64, max_position_embeddings=256,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id,
                      initializer_range=0.3)
    return tok, LlamaForCausalLM(cfg).eval()


@pytest.mark.parametrize("num_samples,temperature", [(1, None), (3, 1.0)], ids=["greedy", "sampled"])
def test_generated_answers_equal_the_full_prompts(lively, monkeypatch, num_samples, temperature):
    from ftscope.generation import generate

    tok, model = lively
    prompts = encode_all(tok, [CBQA.text(it, 0, DEMOS) for it in ITEMS])

    def answers():
        return generate(model, tok, prompts, max_new_tokens=12, num_samples=num_samples, temperature=temperature)

    shared = answers()
    assert len({a[0] for a in shared}) > 2  # answers that depend on the prompt
    monkeypatch.setattr(prefix, "WORTH", 10**9)  # the full prompts, as before
    assert answers() == shared
