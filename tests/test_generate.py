"""The fast generator against transformers' plain `generate` and against a slow reference that shares
its per-prompt uniforms: greedy answers identical, samples identical to the reference whatever the
batching, and the same distribution as plain `generate`'s sampler."""

import random

import pytest
import torch

from ftscope.generation import _draw, cut, generate, generate_plain, newline_token_ids, stop_token_ids
from ftscope.models import load_model, load_tokenizer

PROMPTS = ["Question: Where was Abo Kel born?\nAnswer:", "Quick question: Who founded Zib Corp?", "city1",
           "Answer briefly: Which country is Tam Tower located in?", "person1 person2 person3 city4"]


def _ids(tok, texts):
    return [tok(t, add_special_tokens=False)["input_ids"] for t in texts]


@pytest.fixture(scope="module")
def double_model(tiny_llama):
    """float64, so that no two logits of a row tie by rounding: any difference is a real one."""
    return load_tokenizer(tiny_llama), load_model(tiny_llama).double()


def test_greedy_answers_equal_plain_generate(double_model):
    tok, model = double_model
    prompts = _ids(tok, PROMPTS * 3)
    plain = generate_plain(model, tok, prompts, max_new_tokens=8, batch_size=4)
    for budget in (40, 65536):  # many small batches, or one
        assert generate(model, tok, prompts, max_new_tokens=8, token_budget=budget) == plain
    for stop in ("newline", "blank_line"):
        assert generate(model, tok, prompts, max_new_tokens=8, stop=stop) == \
            generate_plain(model, tok, prompts, max_new_tokens=8, batch_size=4, stop=stop)


@torch.no_grad()
def _reference(model, tok, prompt, seed, n, max_new, temperature):
    """One prompt at a time, no cache, no batching: recompute the whole sequence at every step."""
    u = torch.rand((n, max_new), dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    stops, out = stop_token_ids(tok), []
    for s in range(n):
        ids = list(prompt)
        for t in range(max_new):
            logits = model(torch.tensor([ids])).logits[:, -1]
            tok_id = int(_draw(logits, u[s, t].view(1, 1), temperature)[0, 0])
            ids.append(tok_id)
            if tok_id in stops:
                break
        out.append(cut(tok.decode(ids[len(prompt):], skip_special_tokens=True), "newline"))
    return out


def test_samples_equal_a_slow_reference_whatever_the_batching_and_order(double_model):
    tok, model = double_model
    prompts, seeds = _ids(tok, PROMPTS), [11, 22, 33, 44, 55]
    kw = dict(max_new_tokens=5, num_samples=6, temperature=0.7)
    ours = generate(model, tok, prompts, seeds=seeds, **kw)
    assert ours == [_reference(model, tok, p, s, 6, 5, 0.7) for p, s in zip(prompts, seeds)]
    order = list(range(len(prompts)))
    random.Random(0).shuffle(order)
    shuffled = generate(model, tok, [prompts[i] for i in order], seeds=[seeds[i] for i in order], token_budget=30, **kw)
    assert [shuffled[order.index(i)] for i in range(len(prompts))] == ours  # an item's samples are its own
    assert generate(model, tok, prompts, seeds=[1, 22, 33, 44, 55], **kw)[1:] == ours[1:]


def test_sampling_follows_the_distribution_of_plain_generate(tiny_llama):
    """First tokens of 3000 samples from each sampler: a chi-square test of the two distributions."""
    from scipy.stats import chi2_contingency

    tok, model = load_tokenizer(tiny_llama), load_model(tiny_llama)
    prompt = _ids(tok, ["Question: Where was person7 born?\nAnswer:"])
    ours = generate(model, tok, prompt * 300, seeds=list(range(300)), max_new_tokens=1, num_samples=10,
                    temperature=0.7)
    theirs = generate_plain(model, tok, prompt, batch_size=3000, max_new_tokens=1, num_samples=3000, temperature=0.7)
    a = [t for ss in ours for t in ss]
    b = theirs[0]
    words = sorted(set(a) | set(b))
    common = [w for w in words if a.count(w) + b.count(w) >= 20]
    rare = [w for w in words if w not in common]
    table = [[x.count(w) for w in common] + ([sum(x.count(w) for w in rare)] if rare else []) for x in (a, b)]
    assert len(common) >= 10
    assert chi2_contingency(table).pvalue > 0.001


def test_newline_tokens_stop_generation(tiny_llama):
    tok = load_tokenizer(tiny_llama)
    ids = stop_token_ids(tok)
    assert tok.eos_token_id in ids and tok.convert_tokens_to_ids("\n") in ids
    assert torch.tensor(ids).unique().numel() == len(ids) and set(newline_token_ids(tok)) < set(ids)
    assert stop_token_ids(tok, "blank_line") == [tok.eos_token_id]
    assert cut("a b\n\nc", "blank_line") == "a b" and cut("a b\nc", "newline") == "a b"


def test_prompts_encoded_at_once_are_the_prompts_encoded_one_by_one(k_items, smoke_base):
    """Mastery, evaluation, KL and training tokenize their prompts in one tokenizer call (several times faster
    than a call each): the same ids, for the prompts and for the (prompt, target) pairs."""
    from ftscope.prompts import Prompter, encode, encode_all, encode_answered
    from ftscope.studies.k.data import the_dataset

    cfg, data, base, _ = smoke_base
    tok = load_tokenizer(base)
    prompter = Prompter(the_dataset(data).spec, cfg.models[0].prompt, tok)
    items = k_items[:50]
    texts = [prompter.text(it) for it in items]
    for style in ("raw", "chat"):
        assert encode_all(tok, texts, style) == [encode(tok, t, style) for t in texts]
    assert encode_all(tok, [], "raw") == []
    pairs = encode_answered(tok, prompter, items)
    assert pairs == [(encode(tok, p), tok(prompter.continuation(p, prompter.target(it)), add_special_tokens=False)
                      ["input_ids"]) for p, it in zip(texts, items)]
    assert encode_answered(tok, prompter, []) == []
