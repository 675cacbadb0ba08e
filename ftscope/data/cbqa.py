"""EntityQuestions-format closed-book QA from a local directory or a Hugging Face dataset id.

Local layout: one JSON or JSONL file per relation and split, named like `P19.train.json` (any
sub-folder), each record with `question` and `answers` (and optionally `relation`, `subject`).
A dataset id must have `train` and `test` splits with `question`, `answers` and `relation` columns.
The subject is read from the record or recovered by matching the relation's question stems.
"""

import re
from pathlib import Path

from ftscope.data.relations import RELATIONS

_FILE = re.compile(r"^(P\d+)\.(train|dev|test)\.jsonl?$")


def load_entityquestions(path: str, id_relations: list[str]) -> list[dict]:
    import datasets  # heavy; only needed for real data

    local = Path(path)
    rows: list[dict] = []
    if local.exists():
        files = [(f, *_FILE.match(f.name).groups()) for f in sorted(local.rglob("P*.json*")) if _FILE.match(f.name)]
        if not files:
            raise FileNotFoundError(f"{path}: no files named like 'P19.train.json' or 'P19.test.jsonl'")
        for f, pid, split in files:
            if split == "dev":
                continue
            ds = datasets.load_dataset("json", data_files=str(f), split="train")
            rows += [dict(r, relation=r.get("relation") or pid, split=split) for r in ds]
    else:
        ds = datasets.load_dataset(path)
        missing = {"train", "test"} - set(ds)
        if missing:
            raise ValueError(f"dataset {path} lacks splits {sorted(missing)}")
        rows = [dict(r, split=split) for split in ("train", "test") for r in ds[split]]
    # OOD relations are test-only; their train files are not read as test data.
    keep = [r for r in rows if r["relation"] in RELATIONS and (r["relation"] in id_relations or r["split"] == "test")]
    return [_item(r, id_relations) for r in keep]


def _item(r: dict, id_relations: list[str]) -> dict:
    pid = r["relation"]
    domain = "id" if pid in id_relations else "ood"
    subject = r.get("subject") or extract_subject(r["question"], pid)
    answers = r["answers"] if isinstance(r["answers"], list) else [r["answers"]]
    return {"item_id": f"{pid}:{subject}:{r['split']}", "relation": pid, "subject": subject,
            "question": r["question"], "answers": [str(a) for a in answers],
            "split": r["split"], "domain": domain, "exposure": -1}


def extract_subject(question: str, pid: str) -> str:
    """Invert a relation's question stems to find the subject; error if none matches."""
    for stem in RELATIONS[pid].stems:
        pattern = "^" + re.escape(stem).replace(re.escape("{s}"), "(.+)") + "$"
        m = re.match(pattern, question.strip())
        if m:
            return m.group(1)
    raise ValueError(f"{pid}: cannot find the subject in {question!r}; add a 'subject' field to the records "
                     f"or phrase the question like {RELATIONS[pid].stems[0]!r}")
