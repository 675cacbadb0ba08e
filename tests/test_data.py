import json

import pytest

from ftscope import datasets
from ftscope.datasets.readers import Where
from ftscope.datasets.records import DataError, extract_subject
from ftscope.sandbox.world import WorldOptions, build_world

SMALL = dict(facts_per_id_relation=10, facts_per_ood_relation=3, format_facts_per_relation=2,
             n_cities=20, n_countries=8, n_people=20)
SANDBOX = datasets.get("sandbox-k")
EQ = datasets.get("entityquestions")
ID_RELATIONS = EQ.groups["id"]


def test_registry_describes_both_cbqa_datasets():
    assert len(EQ.subsets) == 24 and all(len(set(EQ.phrasings(r))) == 21 for r in EQ.subsets)
    assert len(ID_RELATIONS) == 10 and set(ID_RELATIONS) | set(EQ.groups["ood"]) == set(EQ.subsets)
    # the sandbox world includes the EntityQuestions description and adds its statement phrasings
    assert SANDBOX.phrasings("P19") == EQ.phrasings("P19") and SANDBOX.subsets["P19"].statements
    assert all(st.index("{s}") < st.index("{o}") for r in SANDBOX.subsets.values() for st in r.statements)


def test_world_is_seeded_and_covers_24_relations():
    a = build_world(SANDBOX, **WorldOptions(**SMALL).model_dump(), id_relations=ID_RELATIONS)
    b = build_world(SANDBOX, **WorldOptions(**SMALL).model_dump(), id_relations=ID_RELATIONS)
    assert a == b
    assert {it["relation"] for it in a.items} == set(SANDBOX.subsets)
    assert len({it["item_id"] for it in a.items}) == len(a.items)
    assert all(it["domain"] == ("id" if it["relation"] in ID_RELATIONS else "ood") for it in a.items)
    assert all(it["split"] == "test" for it in a.items if it["domain"] == "ood")


def test_exposure_counts_are_what_the_corpus_holds():
    w = build_world(SANDBOX, **WorldOptions(**SMALL, exposures=[0, 3]).model_dump(), id_relations=ID_RELATIONS)
    for it in w.items[:30]:
        stated = sum(it["subject"] in d and it["answers"][0] in d and "Question:" not in d for d in w.documents)
        assert stated == it["exposure"], it
        # scored facts never appear in question form
        assert not any(it["subject"] in d and "Question:" in d for d in w.documents)


def test_study_data_is_cached_by_fingerprint(tmp_path):
    from ftscope.config import load_config
    from ftscope.studies import k

    cfg = load_config("configs/smoke.yaml", {"cache_dir": str(tmp_path), "results_dir": str(tmp_path / "r")})
    small = cfg.model_copy(update={"data": cfg.data.model_copy(update={"options": SMALL})})
    a = k.STUDY.load_data(small)
    assert list((tmp_path / "data").glob("*.json"))
    b = k.STUDY.load_data(small)
    assert a == b
    c = k.STUDY.load_data(cfg.model_copy(update={"data": cfg.data.model_copy(update={"options": {**SMALL, "seed": 1}})}))
    assert c.fingerprint != a.fingerprint


def test_entityquestions_loader_reads_local_files(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    (tmp_path / "train" / "P19.train.json").write_text(json.dumps(
        [{"question": "Where was Ada Lovelace born?", "answers": ["London"]}]))
    (tmp_path / "test" / "P19.test.json").write_text(json.dumps(
        [{"question": "Where was Alan Turing born?", "answers": ["Maida Vale", "London"]}]))
    (tmp_path / "test" / "P50.test.jsonl").write_text(
        json.dumps({"question": "Who is the author of Dune?", "answers": ["Frank Herbert"]}) + "\n")
    (tmp_path / "train" / "P50.train.json").write_text(json.dumps(
        [{"question": "Who is the author of Emma?", "answers": ["Jane Austen"]}]))
    items = datasets.load(EQ, Where(str(tmp_path))).items
    by_q = {it["question"]: it for it in items}
    assert len(items) == 3  # OOD relations are test-only: P50's train file is not read
    assert by_q["Where was Ada Lovelace born?"]["split"] == "train"
    turing = by_q["Where was Alan Turing born?"]
    assert turing["answers"] == ["Maida Vale", "London"] and turing["subject"] == "Alan Turing"
    assert turing["split"] == "test" and turing["domain"] == "id"
    assert by_q["Who is the author of Dune?"]["domain"] == "ood"
    assert by_q["Who is the author of Dune?"]["subject"] == "Dune"


def test_subject_extraction_error_says_what_to_do():
    assert extract_subject(EQ, "Who is Ada Lovelace's child?", "P40") == "Ada Lovelace"
    with pytest.raises(DataError, match="add a 'subject' field"):
        extract_subject(EQ, "Completely different wording", "P40")
