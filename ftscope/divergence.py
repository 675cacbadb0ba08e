"""Token-level KL of Study K between a fine-tuned and the base model's next-token distributions,
under teacher forcing on test prompts followed by the gold answer. Computed in fp32 from
log-softmax, one batch at a time, so memory stays bounded by batch x length x vocabulary."""

from collections import defaultdict
from contextlib import nullcontext
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from ftscope.prompts import Prompter, encode_answered
from ftscope.records import KL, as_row


class KLConfig(BaseModel):
    """Study K's `kl:` section. KL(p_ft || p_base) ('ft_base') or KL(p_base || p_ft) ('base_ft'), at the
    positions that predict answer tokens ('answer'), only the first one, or every position."""
    model_config = ConfigDict(extra="forbid")
    direction: Literal["ft_base", "base_ft"] = "ft_base"
    positions: Literal["answer", "first_answer", "all"] = "answer"
    batch_size: int = Field(32, gt=0)


def _batch(pairs: list[tuple[list[int], list[int]]], pad_id: int, positions: str):
    """Right-padded ids, attention mask, and the mask of positions whose next-token distribution counts."""
    seqs, keep = [], []
    for p_ids, a_ids in pairs:
        ids = p_ids + a_ids
        # position t predicts token t+1: answer tokens are predicted from len(p_ids)-1 .. len(ids)-2
        first = len(p_ids) - 1
        last = first if positions == "first_answer" else len(ids) - 2
        start = 0 if positions == "all" else first
        seqs.append(ids)
        keep.append((start, last))
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), pad_id)
    attn = torch.zeros_like(ids)
    counted = torch.zeros_like(ids, dtype=torch.bool)
    for i, (s, (a, b)) in enumerate(zip(seqs, keep)):
        ids[i, :len(s)], attn[i, :len(s)] = torch.tensor(s), 1
        counted[i, a:b + 1] = True
    return ids, attn, counted


def log_probs(logits: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits.float(), -1)


def kl_per_position(lp: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
    """KL(p || q) at every position, from log-probabilities in fp32."""
    return (lp.exp() * (lp - lq)).sum(-1)


def _logits(model, ids, attn, span: torch.Tensor) -> torch.Tensor:
    """Logits at the positions `span` only: the output layer over the whole vocabulary is most of the cost, and
    only the answer's positions count (`logits_to_keep`; a model without it computes all, then slices)."""
    try:
        return model(input_ids=ids, attention_mask=attn, logits_to_keep=span.to(ids.device)).logits
    except TypeError:
        return model(input_ids=ids, attention_mask=attn).logits[:, span.to(ids.device)]


KEEP_MB = 512  # the base model's log-probabilities are kept for the next cell when they take at most this


@torch.no_grad()
def token_kl(ft_model, base_model, tokenizer, items: list[dict], prompter: Prompter,
             cfg: KLConfig, progress=None, kept: dict | None = None) -> list[tuple[float, int]]:
    """Per item: (mean KL over its counted positions, number of positions). `base_model=None` means
    the fine-tuned model itself with its LoRA adapter disabled. `progress(items done, items)` after each batch.
    `kept`: a dict the cells of one base model share, where the base model's log-probabilities on these items
    stay for the next cell (up to KEEP_MB): its forward pass was half of the KL's cost."""
    ft_model.eval()  # dropout (e.g. LoRA's) would make the distributions random
    if base_model is not None:
        base_model.eval()
    key = ("kl", tuple(it["item_id"] for it in items), cfg.positions, cfg.batch_size, str(ft_model.device))
    known, fresh = (kept or {}).get(key), []
    out = []
    pairs = encode_answered(tokenizer, prompter, items)  # one tokenizer call: a call per batch cost 0.3 s a cell
    for start in range(0, len(items), cfg.batch_size):
        ids, attn, counted = _batch(pairs[start:start + cfg.batch_size], tokenizer.pad_token_id, cfg.positions)
        ids, attn = ids.to(ft_model.device), attn.to(ft_model.device)
        cols = counted.any(0).nonzero().squeeze(1)
        span = torch.arange(int(cols.min()), int(cols.max()) + 1) if len(cols) else torch.arange(ids.shape[1])
        counted = counted[:, span]
        ft = log_probs(_logits(ft_model, ids, attn, span))
        if known is not None:
            base = known[start // cfg.batch_size]
        else:
            with (ft_model.disable_adapter() if base_model is None else nullcontext()):
                base = log_probs(_logits(ft_model if base_model is None else base_model, ids, attn, span))
            fresh.append(base)
        p, q = (ft, base) if cfg.direction == "ft_base" else (base, ft)
        kl = kl_per_position(p, q).cpu()
        for row, mask in zip(kl, counted):
            n = int(mask.sum())
            out.append((float(row[mask].mean()) if n else 0.0, n))
        if progress:
            progress(len(out), len(items))
    if kept is not None and known is None and sum(t.numel() * t.element_size() for t in fresh) <= KEEP_MB * 2**20:
        kept[key] = fresh
    return out


def kl_rows(cid: str, dataset: str, per_item: list[tuple[float, int]], domains: list[str], slices: list[str],
            cfg: KLConfig) -> list[dict]:
    """Mean over items of the per-item mean KL, per domain overall (slice 'all') and per slice."""
    groups = defaultdict(list)
    for (kl, n), d, s in zip(per_item, domains, slices):
        groups[(d, "all")].append((kl, n))
        if s != "all":
            groups[(d, s)].append((kl, n))
    return [as_row(KL(cell_id=cid, dataset=dataset, domain=d, slice=s, n=len(v), n_positions=sum(n for _, n in v),
                   value=sum(k for k, _ in v) / len(v), direction=cfg.direction, positions=cfg.positions))
            for (d, s), v in sorted(groups.items())]
