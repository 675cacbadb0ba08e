"""Study K's preparation: the knowledge mastery R_M^k of every item under each base model, the share of N_map
phrasings x N_sample samples whose output contains the gold answer, and the five levels it falls into. Scored
once per (checkpoint, data, settings, prompt, engine), then read from the store's `mastery` table."""

import json
import logging
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ftscope import engines, generation
from ftscope.engines import open_engine
from ftscope.faults import kill_point
from ftscope.fingerprint import fingerprint, model_fingerprint
from ftscope.locks import exclusive
from ftscope.metrics import contains
from ftscope.models import load_tokenizer
from ftscope.progress import Progress, file_sink, progress_file, terminal_sink
from ftscope.prompts import Prompter, encode_all
from ftscope.records import Mastery, as_row
from ftscope.studies.k.data import the_dataset
from ftscope.studydata import StudyData
from ftscope.train.gpus import hold_gpus

LEVEL_EDGES = (0.25, 0.5, 0.75)
log = logging.getLogger("ftscope.mastery")


class MasteryConfig(BaseModel):
    """Study K's `mastery:` section."""
    model_config = ConfigDict(extra="forbid")
    n_map: int = Field(21, ge=1, description="phrasings per fact (at most the dataset's stems x framings)")
    n_sample: int = Field(10, ge=1)
    temperature: float = Field(0.7, gt=0)
    max_new_tokens: int = Field(8, gt=0)
    seed: int = Field(0, description="with the item id and the phrasing, seeds each prompt's samples")


def mastery_level(r: float) -> int:
    """0: R = 0; 1: 0 < R <= .25; 2: .25 < R <= .5; 3: .5 < R <= .75; 4: .75 < R <= 1."""
    if r <= 0:
        return 0
    return 1 + sum(r > e + 1e-12 for e in LEVEL_EDGES)


def phrasings(prompter: Prompter, item: dict, n_map: int) -> list[str]:
    return [q.format(s=item["subject"]) for q in prompter.spec.phrasings(item["relation"])[:n_map]]


def score_mastery(engine, tokenizer, items: list[dict], prompter: Prompter, cfg,
                  progress: Progress | None = None) -> list[dict]:
    """One row per item: R, its level, and the counts behind it. Each (item, phrasing) samples with its
    own seed, so an item's R does not depend on the other items scored with it, or their order."""
    asked = [phrasings(prompter, it, cfg.n_map) for it in items]
    texts = [prompter.text({**it, "question": q}) for it, qs in zip(items, asked) for q in qs]
    seeds = [generation.prompt_seed(cfg.seed, it["item_id"], i) for it, qs in zip(items, asked) for i in range(len(qs))]
    if progress:
        progress.phase("mastery", total=len(texts), unit="prompts")
    samples = engine.generate(encode_all(tokenizer, texts, prompter.prompt.style),
                              max_new_tokens=cfg.max_new_tokens, num_samples=cfg.n_sample, temperature=cfg.temperature,
                              seeds=seeds, stop=prompter.spec.generation.stop, progress=progress and progress.counter())
    kill_point("mastery")
    rows, start = [], 0
    for it, qs in zip(items, asked):
        outs, start = samples[start:start + len(qs)], start + len(qs)
        hits = int(sum(contains(o, prompter.golds(it)) for per_q in outs for o in per_q))
        r = hits / (len(qs) * cfg.n_sample)
        rows.append({"item_id": it["item_id"], "relation": it["relation"], "split": it["split"],
                     "domain": it["domain"], "exposure": it["exposure"], "hits": hits, "r": r,
                     "level": mastery_level(r), "n_map": len(qs)})
    return rows


def prepare(cfg, model, base_path: str, data: StudyData, store) -> dict[str, int]:
    """Mastery level of every item under this base model; scored once, then read from the store.
    Model entries that share a checkpoint and prompt (e.g. the same model under other launch settings)
    share the scores."""
    fp = mastery_fingerprint(cfg, model, base_path, data)
    key = f"{model.name}-{fp}"
    claim = Path(cfg.artifacts_dir) / "claims" / f"mastery-{key}.lock"
    with exclusive(claim):  # concurrent runs score once
        _score_once(cfg, model, base_path, data, store, fp, key, claim)
    table = store.read_key("mastery", key)
    return dict(zip(table["item_id"].to_pylist(), table["level"].to_pylist()))


def mastery_fingerprint(cfg, model, base_path: str, data: StudyData) -> str:
    """What mastery depends on: the checkpoint, the data, the scoring settings, the prompt and the engine."""
    return fingerprint([model_fingerprint(base_path), data.fingerprint, cfg.mastery.model_dump(),
                        model.prompt.model_dump(), engines.identity(cfg, model)])


def _score_once(cfg, model, base_path: str, data: StudyData, store, fp: str, key: str, claim: Path) -> None:
    same = [k for k in store.keys("mastery") if k.endswith(f"-{fp}")]
    if not store.exists("mastery", key) and same:
        rows = store.read_key("mastery", same[0]).to_pylist()
        store.write("mastery", key, [{**r, "model": model.name} for r in rows])
    if not store.exists("mastery", key):
        ds = the_dataset(data)
        tok = load_tokenizer(base_path, model.trust_remote_code)
        with hold_gpus(model.gpus, what=f"mastery of {model.name}") as gpus:
            engine = open_engine(cfg, model, base_path, gpus)
            progress = Progress(f"mastery of {model.name}", sinks=tuple(filter(None, [
                file_sink(progress_file(claim)), terminal_sink()])))
            rows = score_mastery(engine, tok, ds.items, Prompter(ds.spec, model.prompt, tok), cfg.mastery, progress)
            progress.finish()
            engine.close()
        extra = {"model": model.name, "model_fp": model_fingerprint(base_path), "data_fp": data.fingerprint,
                 "n_sample": cfg.mastery.n_sample, "temperature": cfg.mastery.temperature,
                 "engine": json.dumps(engines.identity(cfg, model))}
        store.write("mastery", key, [as_row(Mastery(**r, **extra)) for r in rows])
        log.info("scored mastery of %d items for %s", len(rows), model.name)
