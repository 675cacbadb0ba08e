"""Reading records from local files (JSON list, JSONL, Parquet) and checking them against a dataset's
description, so that a bad file is reported by its name, the record and the field, not by a traceback."""

import json
import re
from pathlib import Path

import pyarrow.parquet as pq

from ftscope.datasets.spec import DatasetSpec, placeholders


class DataError(ValueError):
    """A data file that cannot be used, with the file, record and field that say what to fix."""


def read_records(path: Path) -> list[dict]:
    """Every record of a .json (a list of objects), .jsonl (one object per line) or .parquet file."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.suffix == ".parquet":
        try:
            return pq.read_table(path).to_pylist()
        except Exception as e:  # noqa: BLE001 -- pyarrow raises several types for a bad file
            raise DataError(f"{path}: not a readable Parquet file ({e})") from None
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start}); re-encode the file as UTF-8") from None
    if not text.strip():
        raise DataError(f"{path}: the file is empty")
    if path.suffix == ".jsonl":
        records = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}, line {n}: malformed JSON ({e.msg})") from None
    else:
        try:
            records = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}, line {e.lineno}: malformed JSON ({e.msg})") from None
        if isinstance(records, dict):
            records = [records]
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise DataError(f"{path}: expected a list of records (JSON objects)")
    return records


def required_fields(spec: DatasetSpec) -> set[str]:
    """The fields every record needs: whatever the templates fill, and the target. A cbqa record needs
    its relation; its question (and subject) can be derived from the relation's phrasings."""
    need = {spec.target} | set().union(*(placeholders(t) for t in spec.templates))
    return (need - {"question"}) | {"relation"} if spec.type == "cbqa" else need


def to_item(spec: DatasetSpec, record: dict, *, split: str, position: int, where: str) -> dict:
    """A record as an item: fields renamed to the names the templates use, checked, with a stable id."""
    item = dict(record)
    for name, column in spec.fields.items():
        if column in record:
            item[name] = record[column]
    missing = sorted(f for f in required_fields(spec) if item.get(f) is None)
    if missing:
        raise DataError(f"{where}, record {position}: no field {', '.join(map(repr, missing))} "
                        f"(has {sorted(record)}); map it with `fields:` in {spec.origin or spec.name}")
    if spec.type == "cbqa":
        return _cbqa_item(spec, item, split=split, where=f"{where}, record {position}")
    gold = item[spec.target]
    if not isinstance(gold, (str, int, float)):
        raise DataError(f"{where}, record {position}: field {spec.target!r} must be text, got {gold!r}")
    else:
        item[spec.target] = str(gold)
    if spec.type == "classification" and item[spec.target] in spec.unlabeled:
        item["unlabeled"] = True  # no gold label: kept, never predicted correctly (no label word matches it)
    elif spec.type == "classification" and item[spec.target] not in spec.labels:
        raise DataError(f"{where}, record {position}: label {item[spec.target]!r} is not one of the label words "
                        f"{spec.labels} of {spec.origin or spec.name}")
    for f in required_fields(spec) - {spec.target}:
        if not isinstance(item[f], (str, int, float)):
            raise DataError(f"{where}, record {position}: field {f!r} must be text, got {item[f]!r}")
        item[f] = str(item[f])
    key = record.get("idx", record.get("id", position))
    item.update(item_id=f"{spec.name}:{split}:{key}", split=split)
    return item


def _cbqa_item(spec: DatasetSpec, item: dict, *, split: str, where: str) -> dict:
    """A closed-book QA fact: its relation (one of the description's subsets), subject, gold answers,
    question (phrasing 0 unless the record has one), domain (the relation's group)."""
    rel = str(item["relation"])
    if rel not in spec.subsets:
        raise DataError(f"{where}: relation {rel!r} is not described in {spec.origin or spec.name} "
                        f"(subsets: {sorted(spec.subsets)})")
    gold = item[spec.target]
    gold = gold if isinstance(gold, list) else [gold]
    if not gold or not all(isinstance(g, (str, int, float)) for g in gold):
        raise DataError(f"{where}: field {spec.target!r} must be an answer or a list of answers (strings), "
                        f"got {item[spec.target]!r}")
    if item.get("question") is not None and not isinstance(item["question"], str):
        raise DataError(f"{where}: field 'question' must be text, got {item['question']!r}")
    if item.get("subject") is None and item.get("question") is None:
        raise DataError(f"{where}: a record needs a 'subject' or a 'question' (has {sorted(item)})")
    subject = str(item["subject"]) if item.get("subject") is not None else extract_subject(spec, item["question"], rel, where)
    return {**item, "item_id": f"{rel}:{subject}:{split}", "relation": rel, "subject": subject,
            "question": item.get("question") or spec.phrasings(rel)[0].format(s=subject),
            spec.target: [str(g) for g in gold], "split": split, "domain": spec.group_of(rel) or "id",
            "exposure": int(item.get("exposure", -1))}


def extract_subject(spec: DatasetSpec, question: str, pid: str, where: str = "") -> str:
    """Invert a relation's question stems to find the subject; error if none matches."""
    for stem in spec.subsets[pid].questions:
        pattern = "^" + re.escape(stem).replace(re.escape("{s}"), "(.+)") + "$"
        m = re.match(pattern, question.strip())
        if m:
            return m.group(1)
    raise DataError(f"{where + ': ' if where else ''}{pid}: cannot find the subject in {question!r}; add a 'subject' "
                    f"field to the records or phrase the question like {spec.subsets[pid].questions[0]!r}")
