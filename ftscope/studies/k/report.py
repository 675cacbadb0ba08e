"""Study K's report, rendered from the study's Results alone: text tables over the grid (rows: model /
method variant / train level; columns: sample count), mastery-level counts, the parameter-level picture,
the README block, one function per figure, and the paper's findings as comparisons."""

import json
import re
import textwrap
from pathlib import Path

import numpy as np

from ftscope.methods import report_order
from ftscope.report import general, numbers
from ftscope.report.figures import COLORS, count_ticks, legend, line, panels, reference, save
from ftscope.report.page import Section, columns
from ftscope.report.results import KL, Results, compare, interval_kind
from ftscope.stats import bootstrap_mean
from ftscope.studies.study import StudyReport

MATRICES = ["q", "k", "v", "o", "gate", "up", "down"]


def _score(metric: str) -> bool:
    """A test set's own metric (contains, exact_match, a plug-in's), not KL."""
    return metric != KL


def _acc(results: Results, **where):
    return results.select(metric=_score, prompt_map=0, shots=0, **where)


def _levels(conds) -> list[str]:
    return sorted({c.axes["level"] for c in conds}, key=lambda v: (v == "mixed", v))


def _pct(x: float) -> float:
    return 100 * x


def _variant_order(variant: str) -> tuple:
    """base first, then methods by name, a method's variants by their number (restore-top5 < top20)."""
    number = re.search(r"([0-9.]+)$", variant)
    try:
        k = float(number.group(1)) if number else None
    except ValueError:
        k = None
    return variant != "base", re.sub(r"[0-9.]+$", "", variant), k is not None, k or 0.0


# -- text tables -------------------------------------------------------------------------------------

def _grid_table(conds, kind: str, title: str) -> str:
    """Rows: model / method variant / train level; columns: the sample counts. The base model, which trains on
    nothing, shows its value under every count. `kind`: 'points' (accuracy) or 'kl'."""
    if not conds:
        return f"{title}: no finished cells yet"
    write = numbers.sig3 if kind == "kl" else (lambda v: numbers.points(v))
    counts = sorted({c.axes["n"] for c in conds if "n" in c.axes})
    grid: dict[tuple, dict[int, str]] = {}
    for c in sorted(conds, key=lambda c: (c.model, *_variant_order(c.variant), c.axes.get("level", "-"))):
        row = grid.setdefault((c.model, c.variant, c.axes.get("level", "-")), {})
        for n in ([c.axes["n"]] if "n" in c.axes else counts):
            row[n] = write(c.value)
    rows = [[model, variant, level] + [vals.get(n, numbers.DASH) for n in counts]
            for (model, variant, level), vals in grid.items()]
    return title + "\n" + columns(["model", "method", "level"] + [f"n={n}" for n in counts], rows, left=3)


def accuracy_table(results: Results, domain: str) -> str:
    return _grid_table(results.select(metric=_score, domain=domain, slice="all"), "points",
                       f"accuracy (%) on {domain}_test, by train level x sample count")


def mastery_table(results: Results) -> str:
    """Mastery-level counts per model: how the scored items spread over the five levels."""
    counts: dict[tuple, dict[int, int]] = {}
    for r in sorted(results.mastery, key=lambda r: (r["model"], r["domain"], r["split"])):
        c = counts.setdefault((r["model"], r["domain"], r["split"]), {})
        c[r["level"]] = c.get(r["level"], 0) + 1
    return "\n".join(["items per mastery level (0..4)"] + [
        f"  {model} {domain}/{split}: " + " ".join(str(c.get(lvl, 0)) for lvl in range(5))
        for (model, domain, split), c in counts.items()])


def change_summary(results: Results) -> str:
    """The parameter-level picture: how concentrated each SFT cell's change is, and how much of each
    matrix type's change restoring the top k% undoes."""
    sft = [r for r in results.params if r["scope"] == "region" and results.cells[r["cell_id"]]["method"] == "sft"]
    if not sft:
        return "parameter change: no SFT cells yet"
    shares = [r["top1_share"] for r in sft]
    zeros = {results.cells[r["cell_id"]]["model"]: r["n_zero_base"] for r in sft}  # per base model
    lines = textwrap.wrap(
        f"parameter change ({sft[0]['measure']}): the top 1% of elements holds {100 * min(shares):.0f}-"
        f"{100 * max(shares):.0f}% (median {100 * float(np.median(shares)):.0f}%) of the total change over "
        f"{len(sft)} SFT cells (paper: about 70%); {'/'.join(f'{z:,}' for z in sorted(set(zeros.values())))} "
        f"base weights are exactly 0" + (" (per base model)" if len(zeros) > 1 else ""), 120, subsequent_indent="  ")
    undone: dict[tuple, list[float]] = {}
    for r in results.restoration:
        if r["strategy"] == "top":
            undone.setdefault((r["k_percent"], r["matrix"]), []).append(r["undone_share"])
    if undone:
        mats = sorted({m for _, m in undone}, key=(MATRICES + ["other"]).index)
        measures = sorted({json.loads(results.cells[r["cell_id"]]["config"] or "{}").get("method", {}).get(
            "restore", {}).get("measure", "relative") for r in results.restoration})
        lines.append(f"share of each matrix type's change ({'/'.join(measures)}) undone by restoring the top k% (mean "
                     f"over restore cells)")
        lines.append(f"{'k %':>6}" + "".join(f"{m:>8}" for m in mats))
        for k in sorted({k for k, _ in undone}):
            vals = {m: float(np.mean(v)) for (kk, m), v in undone.items() if kk == k}
            lines.append(f"{k:>6g}" + "".join(f"{100 * vals[m]:>7.0f}%" if m in vals else f"{'-':>8}" for m in mats))
    return "\n".join(lines)


TABLES = [mastery_table, lambda r: accuracy_table(r, "id"), lambda r: accuracy_table(r, "ood"),
          lambda r: _grid_table(r.select(metric=KL, domain="id", slice="all"), "kl",
                                "token-level KL to the base model on id_test"),
          change_summary]


def mastery_check(results: Results) -> str:
    """How the scored facts spread over the levels, and (sandbox) whether mastery tracks exposure."""
    from scipy.stats import spearmanr  # deferred: scipy is only needed for this one line

    lines = []
    models = sorted({r["model"] for r in results.mastery})
    for model in models:
        rows = [r for r in results.mastery if r["model"] == model]
        train = [sum(r["level"] == lvl for r in rows if r["split"] == "train" and r["domain"] == "id") for lvl in range(5)]
        line = (f"mastery of {len(rows)} facts{f' under {model}' if len(models) > 1 else ''}; ID training facts per "
                f"level 0..4: {' / '.join(map(str, train))}")
        known = [r for r in rows if r["exposure"] >= 0]
        if known:
            rho = spearmanr([r["exposure"] for r in known], [r["r"] for r in known]).statistic
            line += f"; Spearman(R, times stated in pretraining) = {rho:.2f}"
        lines.append(line)
    return "\n".join(lines)


def headline(results: Results) -> str:
    """The README block: accuracy in and out of domain over the grid for every method without variants
    (base, SFT, LoRA, a plug-in's), mean over seeds; KL of SFT; then the parameter-level summary."""
    conds = [c for c in results.select(metric=_score, slice="all", prompt_map=0, shots=0) if c.variant == c.method]
    kl = results.select(metric=KL, slice="all", domain="id", method="sft")
    counts = sorted({c.axes["n"] for c in conds if "n" in c.axes})
    head = ["method", "level"] + [f"ID n={n}" for n in counts] + [f"OOD n={n}" for n in counts] + \
        [f"KL n={n}" for n in counts]
    rows = []
    methods = sorted({c.method for c in conds}, key=report_order)
    for method in methods:
        mine = [c for c in conds if c.method == method]
        for lvl in sorted({c.axes.get("level", "none") for c in mine}, key=lambda v: (v == "mixed", v)):
            def cell(of, n, write=numbers.points):
                c = next((c for c in of if c.axes.get("n", 0) in (n, 0) and c.axes.get("level", "none") == lvl), None)
                return write(c.value) if c else numbers.DASH
            rows.append([method, lvl] + [cell([c for c in mine if c.domain == "id"], n) for n in counts]
                        + [cell([c for c in mine if c.domain == "ood"], n) for n in counts]
                        + [cell(kl, n, numbers.sig3) if method == "sft" else numbers.DASH for n in counts])
    seeds = max((c.seeds for c in conds), default=0)
    bases = max((c.base_models for c in conds), default=0)
    n_id = next((c.n for c in conds if c.domain == "id"), 0)
    n_ood = next((c.n for c in conds if c.domain == "ood"), 0)
    over = f"{bases} base models x {seeds} seed(s)" if bases > 1 else f"{seeds} seed(s)"
    return (mastery_check(results) + f"\naccuracy (%) on {numbers.count(n_id)} ID and {numbers.count(n_ood)} OOD test "
            f"facts, mean over {over}; KL on the ID facts\n" + columns(head, rows, left=2) + "\n\n"
            + change_summary(results))


# -- figures: one function each; (Results, out dir) -> Section, or None when there is nothing to draw ----

def _over_counts(ax, counts, pts: dict, label: str, color, scale: float = 100) -> None:
    """One line over the sample counts from {n: condition}, with its 95% band; a gap where a count is missing."""
    at = lambda field: [scale * getattr(pts[n], field) if n in pts else None for n in counts]  # noqa: E731
    line(ax, counts, at("value"), at("lo"), at("hi"), label, color)


def accuracy_figure(results: Results, out: Path) -> Section | None:
    sft = _acc(results, method="sft", slice="all")
    if not sft:
        return None
    base = {c.domain: c for c in _acc(results, method="base", slice="all")}
    counts = sorted({c.axes["n"] for c in sft})
    fig, axes = panels(2)
    rows = []
    several = any(c.seeds > 1 for c in sft)  # a seed spread to show
    for ax, domain in zip(axes, ("id", "ood")):
        for i, lvl in enumerate(_levels(sft)):
            pts = {c.axes["n"]: c for c in sft if c.domain == domain and c.axes["level"] == lvl}
            _over_counts(ax, counts, pts, f"level {lvl}", COLORS[i % 10])
            rows += [{"domain": domain, "train level": lvl, "n": n, "accuracy %": _pct(c.value),
                      "95% low": _pct(c.lo), "95% high": _pct(c.hi), "items": c.n, "seeds": c.seeds,
                      **({"seed sd %": _pct(c.spread) if c.seeds > 1 else None} if several else {})}
                     for n, c in sorted(pts.items())]
        if domain in base:
            b = base[domain]
            reference(ax, _pct(b.value), _pct(b.lo), _pct(b.hi), "base model")
            rows.append({"domain": domain, "train level": "base", "n": None, "accuracy %": _pct(b.value),
                         "95% low": _pct(b.lo), "95% high": _pct(b.hi), "items": b.n, "seeds": None,
                         **({"seed sd %": None} if several else {})})
        ax.set(title=f"{'in' if domain == 'id' else 'out of'} domain (test)", xlabel="training samples",
               ylabel="accuracy (%)", xscale="log")
        count_ticks(ax, counts)
    legend(axes[0], fontsize=7)
    return Section("Accuracy vs sample count, by mastery of the training data",
                   f"Full SFT; error bars and the base model's band are 95% intervals: "
                   f"{interval_kind(sft + list(base.values()))}.", save(fig, out, "k_accuracy"), rows)


def accuracy_by_test_level_figure(results: Results, out: Path) -> Section | None:
    by_test = [c for c in _acc(results, method="sft", domain="id") if c.slice != "all"]
    if not by_test:
        return None
    counts = sorted({c.axes["n"] for c in _acc(results, method="sft", slice="all")})
    test_levels = sorted({c.slice for c in by_test})
    fig, axes = panels(len(test_levels), cols=5, width=2.6)
    rows = []
    for ax, tl in zip(axes, test_levels):
        for i, lvl in enumerate(_levels(by_test)):
            pts = {c.axes["n"]: c for c in by_test if c.slice == tl and c.axes["level"] == lvl}
            _over_counts(ax, counts, pts, f"train {lvl}", COLORS[i % 10])
            rows += [{"test level": tl, "train level": lvl, "n": n, "accuracy %": _pct(c.value),
                      "95% low": _pct(c.lo), "95% high": _pct(c.hi), "items": c.n} for n, c in sorted(pts.items())]
        b = next((c for c in _acc(results, method="base", domain="id", slice=tl)), None)
        if b:
            reference(ax, _pct(b.value), _pct(b.lo), _pct(b.hi), "base")
        ax.set(title=f"test facts at {tl.replace('=', ' ')}", xlabel="n", xscale="log", ylim=(-5, 105))
        count_ticks(ax, counts)
    axes[0].set_ylabel("ID accuracy (%)")
    legend(axes[0], fontsize=6)
    return Section("Accuracy by the test facts' mastery level",
                   f"In-domain test facts split by how well the base model knew them; 95% intervals: "
                   f"{interval_kind(by_test)}.",
                   save(fig, out, "k_accuracy_by_test_level"), rows)


def kl_figure(results: Results, out: Path) -> Section | None:
    kl = results.select(method="sft", metric=KL, domain="id", slice="all")
    if not kl:
        return None
    counts = sorted({c.axes["n"] for c in _acc(results, method="sft", slice="all")} | {c.axes["n"] for c in kl})
    fig, axes = panels(1, width=4.2)
    rows = []
    for i, lvl in enumerate(_levels(kl)):
        pts = {c.axes["n"]: c for c in kl if c.axes["level"] == lvl}
        _over_counts(axes[0], counts, pts, f"level {lvl}", COLORS[i % 10], scale=1)
        rows += [{"train level": lvl, "n": n, "KL": c.value, "95% low": c.lo, "95% high": c.hi, "items": c.n}
                 for n, c in sorted(pts.items())]
    axes[0].set(xlabel="training samples", ylabel="KL(p_ft || p_base) per answer token", xscale="log",
                title="token-level KL to the base model (ID test)")
    count_ticks(axes[0], counts)
    legend(axes[0], fontsize=7)
    return Section("Token-level KL vs sample count", f"Mean over answer tokens, then over test items; 95% intervals: "
                   f"{interval_kind(kl)}.", save(fig, out, "k_kl"), rows)


def restoration_figure(results: Results, out: Path) -> Section | None:
    restored = _acc(results, method="restore", domain="id", slice="all")
    if not restored:
        return None
    fig, axes = panels(1, width=4.2)
    rows = []
    by_variant: dict[tuple[str, float], list] = {}
    for c in restored:  # the variant's settings, as the cell recorded them
        by_variant.setdefault((c.params["strategy"], float(c.params["k_percent"])), []).append(c)
    strategies, ks = sorted({s for s, _ in by_variant}), sorted({k for _, k in by_variant})
    for i, s in enumerate(strategies):
        vals = []
        for k in ks:
            conds = by_variant.get((s, k), [])
            pooled = list(results.pooled(conds).values())
            lo, hi = bootstrap_mean(pooled) if pooled else (None, None)
            vals.append((k, _pct(sum(pooled) / len(pooled)) if pooled else None, lo and _pct(lo), hi and _pct(hi)))
            if pooled:
                rows.append({"strategy": s, "k %": k, "accuracy %": vals[-1][1], "95% low": vals[-1][2],
                             "95% high": vals[-1][3], "cells": len(conds)})
        line(axes[0], [v[0] for v in vals], [v[1] for v in vals], [v[2] for v in vals], [v[3] for v in vals],
             f"restore {s}", COLORS[i % 10])
    for method, color in (("sft", "0.2"), ("lora", "tab:purple")):
        ref = list(results.pooled(_acc(results, method=method, domain="id", slice="all")).values())
        if ref:
            lo, hi = bootstrap_mean(ref)
            reference(axes[0], _pct(sum(ref) / len(ref)), _pct(lo), _pct(hi), method.upper(), color)
            rows.append({"strategy": method.upper(), "k %": None, "accuracy %": _pct(sum(ref) / len(ref)),
                         "95% low": _pct(lo), "95% high": _pct(hi), "cells": None})
    axes[0].set(xlabel="parameters restored (%)", ylabel="ID accuracy (%)", xscale="log",
                title="restoration (mean over the SFT cells it edits)")
    legend(axes[0], fontsize=7)
    return Section("Restoring the most-changed parameters",
                   "Each point pools every restore cell of that strategy and k (same test items); lines: SFT and "
                   "LoRA cells over the same grid; 95% intervals: a bootstrap over the pooled test items.",
                   save(fig, out, "k_restoration"), rows)


def params_figure(results: Results, out: Path) -> Section | None:
    region = [r for r in results.params if results.cells[r["cell_id"]]["method"] == "sft" and r["scope"] == "region"]
    if not region:
        return None
    table = []
    for r in sorted(region, key=lambda r: (results.cells[r["cell_id"]]["axes"]["level"],
                                          results.cells[r["cell_id"]]["axes"]["n"])):
        c = results.cells[r["cell_id"]]
        table.append({"train level": c["axes"]["level"], "n": c["axes"]["n"], "seed": c["seed"],
                      "top 1% share %": _pct(r["top1_share"]), "top 5% %": _pct(r["top5_share"]),
                      "top 10% %": _pct(r["top10_share"]), "zero base weights": r["n_zero_base"],
                      "elements": r["n_elements"]})
    per = results.matrix_rows("sft")
    layers = sorted({r["layer"] for r in per})
    total = [[0.0] * len(MATRICES) for _ in layers]
    counts = [[0] * len(MATRICES) for _ in layers]
    for r in per:
        if r["matrix"] in MATRICES:
            i, j = layers.index(r["layer"]), MATRICES.index(r["matrix"])
            total[i][j] += r["mean_change"]
            counts[i][j] += 1
    grid = [[g / c if c else float("nan") for g, c in zip(gr, cr)] for gr, cr in zip(total, counts)]
    fig, axes = panels(2, width=4.2)
    axes[0].hist([_pct(r["top1_share"]) for r in region], bins=12, color="tab:blue")
    axes[0].set(xlabel="share of the total change held by the top 1% (%)", ylabel="SFT cells",
                title="concentration of the change")
    im = axes[1].imshow(grid, aspect="auto", cmap="viridis")
    axes[1].set_xticks(range(len(MATRICES)), MATRICES)
    axes[1].set_yticks(range(len(layers)), [str(layer) for layer in layers])
    axes[1].set(xlabel="matrix", ylabel="layer", title=f"mean {region[0]['measure']} change (SFT cells)")
    fig.colorbar(im, ax=axes[1])
    return Section("Parameter change", "Per SFT cell: how much of the total change the most-changed elements hold, "
                   "and the mean change per matrix and layer; exact-zero base weights are counted because they "
                   "dominate a relative measure.", save(fig, out, "k_params"), table)


def undone_table(results: Results, out: Path) -> Section | None:
    if not [r for r in results.params if results.cells[r["cell_id"]]["method"] == "sft"]:
        return None
    undone: dict[tuple, list[float]] = {}
    for r in results.restoration:
        if r["strategy"] == "top":
            undone.setdefault((r["k_percent"], r["matrix"]), []).append(r["undone_share"])
    rows = [{"k %": k, "matrix": m, "share of its change undone %": _pct(sum(v) / len(v)), "cells": len(v)}
            for (k, m), v in sorted(undone.items())]
    return Section("Restoration: how much of each matrix type's change the top-k% undoes", "", None, rows)


FIGURES = [accuracy_figure, accuracy_by_test_level_figure, kl_figure, restoration_figure, params_figure, undone_table]


# -- the paper's findings -------------------------------------------------------------------------------

def comparisons(results: Results):
    """Study K's findings (PAPERS.md), each as a difference on the same ID test items."""
    out = []
    sft = _acc(results, method="sft", domain="id", slice="all")
    if not sft:
        return out
    counts = sorted({c.axes["n"] for c in sft})
    n_max, n_mid = counts[-1], counts[(len(counts) - 1) // 2]  # two counts: the smaller; the paper's six: 240
    base = _acc(results, method="base", domain="id", slice="all")
    at = lambda conds, **a: [c for c in conds if all(c.axes.get(k) == v for k, v in a.items())]  # noqa: E731
    if base and at(sft, level="0", n=n_max):
        out.append(compare(results, "fine-tuning on facts the model does not know (level 0) lowers accuracy below "
                           "the base model", (f"SFT level 0, n={n_max}", at(sft, level="0", n=n_max)),
                           ("base model", base), expected=-1))
    known = [c for c in at(sft, n=n_max) if c.axes["level"] not in ("0", "mixed")]
    if known and at(sft, level="0", n=n_max):
        out.append(compare(results, "low-mastery training data hurts most: training on known facts (levels >= 1) "
                           "beats level 0", (f"SFT levels >= 1, n={n_max}", known),
                           (f"SFT level 0, n={n_max}", at(sft, level="0", n=n_max))))
    if len(counts) >= 2:
        out.append(compare(results, f"more data does not always help: accuracy at n={n_mid} beats n={n_max} "
                           "(paper: a peak near 240 samples, lower at 1920)", (f"SFT n={n_mid}", at(sft, n=n_mid)),
                           (f"SFT n={n_max}", at(sft, n=n_max))))
        kl = results.select(method="sft", metric=KL, domain="id", slice="all")
        out.append(compare(results, f"KL to the base model rises with the data: n={n_max} above n={n_mid}",
                           (f"SFT n={n_max}", at(kl, n=n_max)), (f"SFT n={n_mid}", at(kl, n=n_mid))))
    restored = [c for c in _acc(results, method="restore", domain="id", slice="all") if c.params["strategy"] == "top"]
    for variant in sorted({c.variant for c in restored},
                          key=lambda v: next(float(c.params["k_percent"]) for c in restored if c.variant == v)):
        arm = [c for c in restored if c.variant == variant]
        parents = [c for c in sft if any(c.axes["level"] == a.axes["level"] and c.axes["n"] == a.axes["n"]
                                         for a in arm)]
        out.append(compare(results, f"restoring the most-changed parameters ({variant.split('-', 1)[1]}) beats "
                           "plain SFT", (variant, arm), ("SFT (its parents)", parents)))
    lora = _acc(results, method="lora", domain="id", slice="all")
    if lora and restored:
        out.append(compare(results, "restoration beats LoRA", ("restore-top (all k)", restored), ("LoRA", lora)))
    for task, (metric, higher) in general.headlines(results).items():  # eval.general: what else level 0 costs
        base_model, by_arm = general.arms(results, task, metric)
        level0 = [c for cs in by_arm.values() for c in cs if c.method == "sft" and c.axes.get("level") == "0"
                  and c.axes.get("n") == n_max]
        if base_model and level0:
            out.append(compare(results, f"fine-tuning on facts the model does not know (level 0) costs general "
                               f"capability ({task}, {metric})", (f"SFT level 0, n={n_max}", level0),
                               ("base model", base_model), expected=-1 if higher else 1, unit=general.unit(metric)))
    return out


REPORT = StudyReport(tables=TABLES, headline=headline, figures=FIGURES, comparisons=comparisons)
