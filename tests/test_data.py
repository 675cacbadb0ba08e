import json

import pytest

from ftscope.config import DataConfig, SandboxWorld
from ftscope.data.cbqa import extract_subject, load_entityquestions
from ftscope.data.prepare import prepare_data
from ftscope.data.relations import ID_RELATIONS, RELATIONS
from ftscope.data.sandbox import build_world

SMALL = dict(facts_per_id_relation=10, facts_per_ood_relation=3, format_facts_per_relation=2,
             n_cities=20, n_countries=8, n_people=20)


def test_world_is_seeded_and_covers_24_relations():
    a = build_world(**SandboxWorld(**SMALL).model_dump(), id_relations=list(ID_RELATIONS))
    b = build_world(**SandboxWorld(**SMALL).model_dump(), id_relations=list(ID_RELATIONS))
    assert a == b
    assert {it["relation"] for it in a.items} == set(RELATIONS)
    assert len({it["item_id"] for it in a.items}) == len(a.items)
    assert all(it["domain"] == ("id" if it["relation"] in ID_RELATIONS else "ood") for it in a.items)
    assert all(it["split"] == "test" for it in a.items if it["domain"] == "ood")


def test_exposure_counts_are_what_the_corpus_holds():
    w = build_world(**SandboxWorld(**SMALL, exposures=[0, 3]).model_dump(), id_relations=list(ID_RELATIONS))
    for it in w.items[:30]:
        stated = sum(it["subject"] in d and it["answers"][0] in d and "Question:" not in d for d in w.documents)
        assert stated == it["exposure"], it
        # scored facts never appear in question form
        assert not any(it["subject"] in d and "Question:" in d for d in w.documents)


def test_prepare_data_caches_by_fingerprint(tmp_path):
    cfg = DataConfig(sandbox=SandboxWorld(**SMALL))
    a = prepare_data(cfg, str(tmp_path))
    assert list((tmp_path / "data").glob("*.json"))
    b = prepare_data(cfg, str(tmp_path))
    assert a == b
    c = prepare_data(DataConfig(sandbox=SandboxWorld(**SMALL, seed=1)), str(tmp_path))
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
    items = load_entityquestions(str(tmp_path), list(ID_RELATIONS))
    by_q = {it["question"]: it for it in items}
    assert len(items) == 3  # OOD relations are test-only: P50's train file is not read
    assert by_q["Where was Ada Lovelace born?"]["split"] == "train"
    turing = by_q["Where was Alan Turing born?"]
    assert turing["answers"] == ["Maida Vale", "London"] and turing["subject"] == "Alan Turing"
    assert turing["split"] == "test" and turing["domain"] == "id"
    assert by_q["Who is the author of Dune?"]["domain"] == "ood"
    assert by_q["Who is the author of Dune?"]["subject"] == "Dune"


def test_subject_extraction_error_says_what_to_do():
    assert extract_subject("Who is Ada Lovelace's child?", "P40") == "Ada Lovelace"
    with pytest.raises(ValueError, match="add a 'subject' field"):
        extract_subject("Completely different wording", "P40")
