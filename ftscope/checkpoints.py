"""The life of a cell's checkpoint: written when a method trains or edits a model (or when an
analysis needs the weights on disk), kept while cells that start from it still have to run (restore
cells edit their SFT parent's), deleted after that unless `keep_checkpoints` is set. Checkpoints are
artifacts, never results: they live under `artifacts_dir/<study>/cells/<cell id>/`."""

import shutil
from pathlib import Path


def cell_dir(cfg, cid: str) -> Path:
    return Path(cfg.artifacts_dir) / cfg.study / "cells" / cid


def checkpoint_of(cfg, cid: str) -> Path:
    return cell_dir(cfg, cid) / "model"


def claim_of(cfg, cid: str) -> Path:
    """The lock a cell holds while it runs (shared by every study writing to this artifacts directory)."""
    return Path(cfg.artifacts_dir) / "claims" / f"{cid}.lock"


def available(cfg, cid: str) -> bool:
    return (checkpoint_of(cfg, cid) / "config.json").exists()


def save(run, built) -> Path:
    """Where `built`'s weights are on disk: its own checkpoint, or saved now to the cell's directory."""
    if built.checkpoint is not None:
        return Path(built.checkpoint)
    out = checkpoint_of(run.cfg, run.cid)
    if not (out / "config.json").exists():
        built.merge_adapter().model.save_pretrained(out)
        run.tokenizer.save_pretrained(out)
    return out


def finish(run, keep: bool) -> None:
    """After a cell: drop trainer state, and the whole directory unless its checkpoint is still needed."""
    shutil.rmtree(run.work / "trainer", ignore_errors=True)
    if not keep:
        shutil.rmtree(run.work, ignore_errors=True)


def release(cfg, planned, latest: dict[str, dict]) -> list[str]:
    """Delete the checkpoints whose children are all done (unless keep_checkpoints); their cell ids."""
    if cfg.keep_checkpoints:
        return []
    children: dict[str, list[str]] = {}
    for p in planned:
        if p.parent_id:
            children.setdefault(p.parent_id, []).append(p.cid)
    released = []
    for parent, kids in children.items():
        if all(latest.get(k, {}).get("status") == "done" for k in kids) and cell_dir(cfg, parent).exists():
            shutil.rmtree(cell_dir(cfg, parent), ignore_errors=True)
            released.append(parent)
    return released
