import pytest

from ftscope.datasets import get
from ftscope.prompts import PromptConfig, Prompter
from ftscope.studies.k.mastery import MasteryConfig, mastery_level, phrasings, score_mastery

CBQA = Prompter(get("entityquestions"), PromptConfig())


@pytest.mark.parametrize("r,level", [(0, 0), (0.001, 1), (0.25, 1), (0.2501, 2), (0.5, 2), (0.51, 3),
                                     (0.75, 3), (0.76, 4), (1.0, 4)])
def test_levels_follow_the_paper_edges(r, level):
    assert mastery_level(r) == level


def test_level_edges_are_exact_for_sample_fractions():
    # 21 x 10 samples: 52/210 < .25 < 53/210
    assert mastery_level(52 / 210) == 1 and mastery_level(53 / 210) == 2


def test_21_distinct_phrasings_per_relation():
    for pid in CBQA.spec.subsets:
        qs = phrasings(CBQA, {"relation": pid, "subject": "Abo Kel"}, 21)
        assert len(set(qs)) == 21 and all("Abo Kel" in q for q in qs)


def test_score_mastery_counts_hits_over_all_samples(tiny_llama):
    from ftscope.engines.hf import HFEngine, HFOptions
    from ftscope.models import load_model, load_tokenizer

    tok, model = load_tokenizer(tiny_llama), load_model(tiny_llama)
    items = [{"item_id": "P19:Abo Kel", "relation": "P19", "subject": "Abo Kel", "answers": ["Varo"],
              "split": "train", "domain": "id", "exposure": 0}]
    cfg = MasteryConfig(n_map=3, n_sample=4, max_new_tokens=3)
    engine = HFEngine(model, tok, HFOptions(), 65536)
    rows = score_mastery(engine, tok, items, CBQA, cfg)
    assert len(rows) == 1 and 0 <= rows[0]["hits"] <= 12
    assert rows[0]["r"] == rows[0]["hits"] / 12 and rows[0]["level"] == mastery_level(rows[0]["r"])
    # an empty gold answer never counts as contained
    items[0]["answers"] = [""]
    assert score_mastery(engine, tok, items, CBQA, cfg)[0]["r"] == 0
