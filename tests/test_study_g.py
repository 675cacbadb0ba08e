"""Study G's parts: label-probability scoring, ROUGE-L, FTICL inputs, the paper's data layout, and bad
data caught by `validate` with the file and record named."""

import json

import pytest
import torch
import yaml

from ftscope import datasets
from ftscope.datasets.spec import DatasetSpec
from ftscope.engines.hf import HFEngine, HFOptions
from ftscope.evaluate import LabelError, classify, label_token_ids
from ftscope.metrics import rouge_l
from ftscope.models import load_model, load_tokenizer
from ftscope.prompts import PromptConfig, Prompter, encode
from ftscope.train.examples import build_examples
from ftscope.validate import validate

WORDS = DatasetSpec(name="words", task="sentiment", type="classification", metric="label_prob",
                    labels=["city1", "city2", "person3"], templates=["Review: {input}\nLabel:", "{input} ->"],
                    target_sep="", source={"format": "files"})


def _items(n):
    return [{"item_id": f"w:{i}", "input": " ".join(f"person{j}" for j in range(i % 5 + 1)), "output": "city1"}
            for i in range(n)]


@torch.no_grad()
def test_label_prob_is_the_argmax_of_the_label_words_first_tokens(tiny_llama):
    tok, model = load_tokenizer(tiny_llama), load_model(tiny_llama).double()
    prompter = Prompter(WORDS, PromptConfig(), tok)
    items = _items(7)  # prompts of several lengths: left padding and positions must not change a thing
    ids = label_token_ids(tok, prompter, items[0])
    assert ids == [tok.convert_tokens_to_ids(w) for w in WORDS.labels]
    for pm in (0, 1):
        ours = classify(HFEngine(model, tok, HFOptions(batch_size=3), 65536), tok, prompter, items, prompt_map=pm,
                        demos=items[:2])
        for it, pred in zip(items, ours):
            prompt = torch.tensor([encode(tok, prompter.text(it, pm, items[:2]))])
            logits = model(prompt).logits[0, -1]
            assert pred == WORDS.labels[int(logits[ids].argmax())]


def test_labels_sharing_a_first_token_are_refused(tiny_llama):
    tok = load_tokenizer(tiny_llama)
    same = WORDS.model_copy(update={"labels": ["city1 person1", "city1 person2"]})
    with pytest.raises(LabelError, match="begin with the same token"):
        label_token_ids(tok, Prompter(same, PromptConfig(), tok), _items(1)[0])


def test_rouge_l_is_rouge_score_f_measure():
    from rouge_score import rouge_scorer

    assert rouge_l("a b c d", ["a c d e"]) == pytest.approx(0.75)  # LCS a c d: P = R = 3/4
    assert rouge_l("the cat", ["a dog"]) == 0.0
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    for pred, gold in [("The cat sat on the mat.", "the cat is on the mat"), ("Who owns Zib Corp ?", "Who owns Zib?")]:
        assert rouge_l(pred, [gold]) == scorer.score(gold, pred)["rougeL"].fmeasure
    assert rouge_l("a b", ["x y", "a b"]) == 1.0  # the best of several references


def test_fticl_inputs_hold_exactly_the_first_k_demonstrations_in_order(tiny_llama):
    from ftscope.methods import RECIPES

    tok = load_tokenizer(tiny_llama)
    prompter = Prompter(WORDS, PromptConfig(), tok)
    demos = [{"input": f"person{i}", "output": f"city{i % 2 + 1}"} for i in range(4)]
    item = {"input": "person9", "output": "city2"}
    text = prompter.text(item, 0, demos[:2])
    assert text == ("Review: person0\nLabel:city1\n\nReview: person1\nLabel:city2\n\nReview: person9\nLabel:")
    ex = build_examples([item], prompter, tok, 512, demos[:2])[0]
    prompt_ids = encode(tok, text)
    assert ex["input_ids"][:len(prompt_ids)] == prompt_ids and all(x == -100 for x in ex["labels"][:len(prompt_ids)])
    assert tok.decode([t for t in ex["labels"] if t != -100]) == "city2 </s>"
    # one FTICL cell per k of the training set's fticl_shots (or of fticl.shots)
    spec = datasets.get("sbx-reviews-products")
    fticl = RECIPES.get("fticl")

    class Cfg:
        class fticl:
            shots = None
    assert fticl.variants(Cfg, spec) == [{"shots": 2}, {"shots": 4}]


def _paper_root(tmp_path, test_records=None):
    """A directory in the released layout of Study G with two tasks."""
    root = tmp_path / "data"
    reviews = [{"idx": i, "input": f"review {i} {'great' if i % 2 else 'bad'}",
                "output": "positive" if i % 2 else "negative"} for i in range(12)]
    pairs = [{"input_1": f"s{i}", "input_2": f"t{i}", "output": "yes" if i % 3 else "no"} for i in range(12)]
    for folder, name, recs in [("sentiment", "amazon", reviews), ("detection", "paws", pairs)]:
        (root / folder / "few_shot").mkdir(parents=True)
        for n in (4, 8):  # nested training sets
            (root / folder / f"{name}_train_{n}.json").write_text(json.dumps(recs[:n]))
        (root / folder / f"{name}_test_500.json").write_text(json.dumps(test_records or recs[4:]))
        (root / folder / "few_shot" / f"{name}_few_shot.json").write_text(json.dumps(recs[-3:][::-1]))
    maps = [{"sentiment": "### Input:\n{input}\n### Sentiment:", "detection": "A:{input_1} B:{input_2} Same?:"},
            {"sentiment": "Text:{input}\nMood:", "detection": "{input_1} / {input_2}:"}]
    (root / "prompt_map.json").write_text(json.dumps(maps))
    return root


def _config(tmp_path, root, **over):
    raw = {"kind": "g", "study": "paper-layout", "results_dir": str(tmp_path / "res"),
           "cache_dir": str(tmp_path / "cache"), "models": [{"name": "m", "path": str(tmp_path)}],
           "data": {"root": str(root), "test": ["amazon", "paws"], "test_items": 5},
           "grid": {"train": ["amazon"], "sizes": [4, 8], "methods": ["icl", "sft", "fticl"]},
           "eval": {"shots": {"sentiment": [0, 2], "paraphrase": [0, 2]}}, "fticl": {"shots": [2]}, **over}
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_papers_released_layout_loads_as_is(tmp_path):
    from ftscope.config import load_config
    from ftscope.studies import g

    root = _paper_root(tmp_path)
    cfg = load_config(_config(tmp_path, root))
    data = g.STUDY.load_data(cfg)
    amazon = data.dataset("amazon")
    assert [len(amazon.split(s)) for s in ("train_4", "train_8", "test", "demo")] == [4, 8, 5, 3]
    assert [it["idx"] for it in amazon.demos] == [11, 10, 9]  # the pool, in the file's order
    assert amazon.split("train_8")[:4] == [{**it, "split": "train_8", "item_id": it["item_id"].replace("_4", "_8")}
                                          for it in amazon.split("train_4")]  # nested
    assert amazon.spec.templates[1] == "Text:{input}\nMood:"  # the directory's prompt_map.json wins
    assert data.dataset("paws").split("test")[0]["input_1"] == "s4"
    assert len(g.STUDY.grid(cfg)) == 1 + 2 * 2  # icl + (sft, fticl-2) x 2 sizes


@pytest.mark.parametrize("bad,expect", [
    ({"idx": 3, "input": "fine"}, r"amazon_test_500.json, record 0: no field 'output'"),
    ({"idx": 3, "input": "fine", "output": "great"}, r"amazon_test_500.json, record 0: label 'great' is not one of"),
])
def test_bad_records_fail_validation_with_file_and_record(tmp_path, bad, expect):
    root = _paper_root(tmp_path)
    (root / "sentiment" / "amazon_test_500.json").write_text(json.dumps([bad]))
    cfg, problems, _ = validate(str(_config(tmp_path, root)))
    assert any(__import__("re").search(expect, p) for p in problems), problems


def test_a_template_field_missing_from_the_records_fails_validation(tmp_path):
    root = _paper_root(tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "reviews.yaml").write_text(yaml.safe_dump({
        "include": str(datasets.SHIPPED / "g" / "_sentiment.yaml"), "name": "my-reviews", "domain": "amazon",
        "templates": ["Review of {product}: {input}\nSentiment:", "{product}: {input} ->"],
        "source": {"format": "files", "records": "reviews.json"}}))
    (tmp_path / "mine" / "reviews.json").write_text(json.dumps(
        [{"input": "nice", "output": "positive", "split": s} for s in ("train", "test", "demo")]))
    path = _config(tmp_path, root, datasets_dirs=[str(tmp_path / "mine")],
                   data={"root": str(root), "test": ["amazon", "my-reviews"]})
    _, problems, _ = validate(str(path))
    assert any("reviews.json, record 0: no field 'product'" in p for p in problems), problems
