import torch

from ftscope.generation import cut, generate, stop_token_ids
from ftscope.models import load_model, load_tokenizer

PROMPTS = ["Question: Where was Abo Kel born?\nAnswer:", "Quick question: Who founded Zib Corp?", "city1"]


def _ids(tok, texts):
    return [tok(t, add_special_tokens=False)["input_ids"] for t in texts]


def test_greedy_first_lines_match_a_plain_generate_call(tiny_llama):
    tok, model = load_tokenizer(tiny_llama), load_model(tiny_llama)
    ours = [o[0] for o in generate(model, tok, _ids(tok, PROMPTS), max_new_tokens=6, batch_size=2)]
    tok.padding_side = "left"
    enc = tok(PROMPTS, return_tensors="pt", padding=True, add_special_tokens=False)
    ref = model.generate(**enc, max_new_tokens=6, do_sample=False, eos_token_id=stop_token_ids(tok),
                         pad_token_id=tok.pad_token_id)
    ref = [cut(t, "newline") for t in tok.batch_decode(ref[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)]
    assert ours == ref


def test_sampling_is_seeded_and_shaped(tiny_llama):
    tok, model = load_tokenizer(tiny_llama), load_model(tiny_llama)
    kw = dict(max_new_tokens=4, batch_size=8, num_samples=5, temperature=0.7)
    a = generate(model, tok, _ids(tok, ["city1", "city2", "city3"]), seed=1, **kw)
    b = generate(model, tok, _ids(tok, ["city1", "city2", "city3"]), seed=1, **kw)
    assert a == b and len(a) == 3 and all(len(s) == 5 for s in a)
    assert all("\n" not in s for per in a for s in per)


def test_newline_tokens_stop_generation(tiny_llama):
    tok = load_tokenizer(tiny_llama)
    ids = stop_token_ids(tok)
    assert tok.eos_token_id in ids and tok.convert_tokens_to_ids("\n") in ids
    assert torch.tensor(ids).unique().numel() == len(ids)
    assert stop_token_ids(tok, "blank_line") == [tok.eos_token_id]
    assert cut("a b\n\nc", "blank_line") == "a b" and cut("a b\nc", "newline") == "a b"
