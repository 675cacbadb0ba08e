"""Study K's report: text tables over the grid (rows: model / method variant / train level; columns:
sample count), mastery-level counts, and the HTML report's figures and comparisons."""

import re

from ftscope.store import Store


def grid_table(store: Store, table: str, value: str, domain: str, title: str, study: str | None = None) -> str:
    """Only cells of each study's latest plan count: cells of an earlier config stay in the store, unseen."""
    where = f"AND c.study = '{study}'" if study else ""
    try:
        rows = store.sql(f"""
            WITH grid AS (
                SELECT c.model, c.variant, coalesce(c.level, 'none') AS level, coalesce(c.n, 0) AS n, avg({value}) AS v
                FROM cells c JOIN {table} m USING (cell_id) SEMI JOIN plan p USING (cell_id)
                WHERE c.status = 'done' AND m.domain = '{domain}' AND m.slice = 'all' {where}
                GROUP BY ALL)
            SELECT * FROM grid  -- base first, then methods, restore variants by k
            ORDER BY model, variant != 'base', regexp_replace(variant, '[0-9.]+$', ''),
                     try_cast(regexp_extract(variant, '([0-9.]+)$', 1) AS DOUBLE) NULLS FIRST, level, n
            """).fetchall()
    except Exception:  # noqa: BLE001 -- no cell with these axes yet: the columns do not exist
        rows = []
    if not rows:
        return f"{title}: no finished cells yet"
    counts = sorted({r[3] for r in rows})
    grid: dict[tuple, dict[int, float]] = {}
    for model, variant, level, n, v in rows:
        grid.setdefault((model, variant, level), {})[n] = v
    head = f"{'model':<16}{'method':<20}{'level':<7}" + "".join(f"{'n=' + str(n):>9}" for n in counts)
    lines = [title, head, "-" * len(head)]
    for (model, variant, level), vals in grid.items():
        lines.append(f"{model:<16}{variant:<20}{level:<7}" + "".join(
            f"{vals[n]:>9.3g}" if n in vals else f"{'-':>9}" for n in counts))
    return "\n".join(lines)


def accuracy_table(store: Store, domain: str = "id", study: str | None = None) -> str:
    return grid_table(store, "metrics", "m.value * 100", domain,
                      f"accuracy (%) on {domain}_test, by train level x sample count", study)


def kl_table(store: Store, domain: str = "id", study: str | None = None) -> str:
    return grid_table(store, "kl", "m.value", domain, f"token-level KL to the base model on {domain}_test", study)


def mastery_summary(store: Store) -> str:
    """Mastery-level counts per model: how the scored items spread over the five levels."""
    rows = store.sql("SELECT model, domain, split, level, count(*) FROM mastery GROUP BY ALL ORDER BY ALL").fetchall()
    out: dict[tuple, dict[int, int]] = {}
    for model, domain, split, level, n in rows:
        out.setdefault((model, domain, split), {})[level] = n
    lines = ["items per mastery level (0..4)"]
    for (model, domain, split), c in out.items():
        lines.append(f"  {model} {domain}/{split}: " + " ".join(str(c.get(lvl, 0)) for lvl in range(5)))
    return "\n".join(lines)


def headline(results) -> str:
    """SFT, LoRA and the base model: accuracy in and out of domain over the grid (mean over seeds), and KL;
    then the parameter-level summary. `results`: the study's report.summary.Results."""
    sft = [c for c in results.select(metric="contains", slice="all", prompt_map=0, shots=0) if c.method in
           ("sft", "base", "lora")]
    kl = results.select(metric="kl", slice="all", domain="id", method="sft")
    counts = sorted({c.axes["n"] for c in sft if "n" in c.axes})
    head = f"{'method':<7}{'level':<7}" + "".join(f"{'ID n=' + str(n):>10}" for n in counts) + \
        "".join(f"{'OOD n=' + str(n):>11}" for n in counts) + "".join(f"{'KL n=' + str(n):>10}" for n in counts)
    lines = [head, "-" * len(head)]
    for method in ("base", "sft", "lora"):
        levels = sorted({c.axes.get("level", "none") for c in sft if c.method == method},
                        key=lambda v: (v == "mixed", v))
        for lvl in levels:
            def cell(conds, n, scale=100, fmt=".1f"):
                c = next((c for c in conds if c.axes.get("n", 0) in (n, 0) and c.axes.get("level", "none") == lvl),
                         None)
                return f"{scale * c.value:{fmt}}" if c else "-"
            row = [c for c in sft if c.method == method]
            lines.append(f"{method:<7}{lvl:<7}" + "".join(f"{cell([c for c in row if c.domain == 'id'], n):>10}"
                                                          for n in counts)
                         + "".join(f"{cell([c for c in row if c.domain == 'ood'], n):>11}" for n in counts)
                         + "".join(f"{cell(kl, n, 1, '.3f') if method == 'sft' else '-':>10}" for n in counts))
    seeds = max((c.seeds for c in sft), default=0)
    n_id = next((c.n for c in sft if c.domain == "id"), 0)
    n_ood = next((c.n for c in sft if c.domain == "ood"), 0)
    return (mastery_check(results.store) + f"\naccuracy (%) on {n_id} ID and {n_ood} OOD test facts, mean over "
            f"{seeds} seed(s); KL on the ID facts\n" + "\n".join(lines) + "\n\n"
            + change_summary(results.store, results.study))


def mastery_check(store: Store) -> str:
    """How the scored facts spread over the levels, and (sandbox) whether mastery tracks exposure."""
    from scipy.stats import spearmanr

    rows = store.read("mastery").to_pylist()
    if not rows:
        return ""
    train = [sum(r["level"] == lvl for r in rows if r["split"] == "train" and r["domain"] == "id") for lvl in range(5)]
    line = f"mastery of {len(rows)} facts; ID training facts per level 0..4: {' / '.join(map(str, train))}"
    known = [r for r in rows if r["exposure"] >= 0]
    if known:
        rho = spearmanr([r["exposure"] for r in known], [r["r"] for r in known]).statistic
        line += f"; Spearman(R, times stated in pretraining) = {rho:.2f}"
    return line


def change_summary(store: Store, study: str | None = None) -> str:
    """The parameter-level picture: how concentrated each SFT cell's change is, and how much of each
    matrix type's change restoring the top k% undoes."""
    where = f"AND c.study = '{study}'" if study else ""
    try:
        shares = store.sql(f"""SELECT count(*), min(top1_share), median(top1_share), max(top1_share),
                                      sum(n_zero_base), any_value(measure)
                               FROM params p JOIN cells c USING (cell_id) SEMI JOIN plan USING (cell_id)
                               WHERE p.scope = 'region' AND c.method = 'sft' {where}""").fetchall()[0]
        undone = store.sql(f"""SELECT r.k_percent, r.matrix, avg(r.undone_share), count(*)
                               FROM restoration r JOIN cells c USING (cell_id) SEMI JOIN plan USING (cell_id)
                               WHERE r.strategy = 'top' {where} GROUP BY ALL ORDER BY ALL""").fetchall()
    except Exception:  # noqa: BLE001 -- no SFT or restore cells yet
        return "parameter change: no SFT cells yet"
    n, lo, med, hi, zeros, measure = shares
    if not n:
        return "parameter change: no SFT cells yet"
    lines = [f"parameter change ({measure}): the top 1% of elements holds {100 * lo:.0f}-{100 * hi:.0f}% "
             f"(median {100 * med:.0f}%) of the total change over {n} SFT cells (paper: about 70%); "
             f"{zeros} base weights are exactly 0"]
    if undone:
        mats = sorted({m for _, m, _, _ in undone}, key=["q", "k", "v", "o", "gate", "up", "down", "other"].index)
        lines.append("share of each matrix type's change undone by restoring the top k% (mean over restore cells)")
        lines.append(f"{'k %':>6}" + "".join(f"{m:>8}" for m in mats))
        for k in sorted({k for k, *_ in undone}):
            vals = {m: v for kk, m, v, _ in undone if kk == k}
            lines.append(f"{k:>6g}" + "".join(f"{100 * vals[m]:>7.0f}%" if m in vals else f"{'-':>8}" for m in mats))
    return "\n".join(lines)


def study_report(store: Store, study: str | None = None) -> str:
    """Everything the CLI prints at the end of a Study K run."""
    parts = [mastery_summary(store)]
    parts += [accuracy_table(store, domain, study) for domain in ("id", "ood")]
    parts += [kl_table(store, "id", study), change_summary(store, study)]
    return "\n\n".join(parts)


# -- figures, tables and comparisons of the HTML report ----------------------------------------------

def _levels(conds) -> list[str]:
    return sorted({c.axes["level"] for c in conds}, key=lambda v: (v == "mixed", v))


def _pct(x: float) -> float:
    return 100 * x


def _over_counts(ax, counts, pts: dict, label: str, color, scale: float = 100) -> None:
    """One line over the sample counts from {n: condition}, with its 95% band; a gap where a count is missing."""
    from ftscope.report.figures import line

    at = lambda field: [scale * getattr(pts[n], field) if n in pts else None for n in counts]  # noqa: E731
    line(ax, counts, at("value"), at("lo"), at("hi"), label, color)


def _acc(results, **where):
    return results.select(metric="contains", prompt_map=0, shots=0, **where)


def sections(results, out):
    """Study K's figures, each with its table."""
    from ftscope.report.figures import COLORS, legend, line, panels, reference, save
    from ftscope.report.page import Section
    from ftscope.stats import bootstrap_mean

    out_sections = []
    sft = _acc(results, method="sft", slice="all")
    base = {c.domain: c for c in _acc(results, method="base", slice="all")}
    counts = sorted({c.axes["n"] for c in sft})
    if sft:
        fig, axes = panels(2)
        rows = []
        for ax, domain in zip(axes, ("id", "ood")):
            for i, lvl in enumerate(_levels(sft)):
                pts = {c.axes["n"]: c for c in sft if c.domain == domain and c.axes["level"] == lvl}
                _over_counts(ax, counts, pts, f"level {lvl}", COLORS[i % 10])
                rows += [{"domain": domain, "train level": lvl, "n": n, "accuracy %": _pct(c.value),
                          "95% low": _pct(c.lo), "95% high": _pct(c.hi), "items": c.n, "seeds": c.seeds,
                          "seed sd %": _pct(c.spread)} for n, c in sorted(pts.items())]
            if domain in base:
                b = base[domain]
                reference(ax, _pct(b.value), _pct(b.lo), _pct(b.hi), "base model")
                rows.append({"domain": domain, "train level": "base", "n": 0, "accuracy %": _pct(b.value),
                             "95% low": _pct(b.lo), "95% high": _pct(b.hi), "items": b.n, "seeds": b.seeds,
                             "seed sd %": 0.0})
            ax.set(title=f"{'in' if domain == 'id' else 'out of'} domain (test)", xlabel="training samples",
                   ylabel="accuracy (%)", xscale="log")
            ax.set_xticks(counts, [str(n) for n in counts])
        legend(axes[0], fontsize=7)
        out_sections.append(Section("Accuracy vs sample count, by mastery of the training data",
                                    "Full SFT; error bars and the base model's band are 95% intervals (Wilson, or a "
                                    "bootstrap over test items when several seeds are averaged).",
                                    save(fig, out, "k_accuracy"), rows))

        by_test = [c for c in _acc(results, method="sft", domain="id") if c.slice != "all"]
        test_levels = sorted({c.slice for c in by_test})
        if by_test:
            fig, axes = panels(len(test_levels), cols=5, width=2.6)
            rows = []
            for ax, tl in zip(axes, test_levels):
                for i, lvl in enumerate(_levels(by_test)):
                    pts = {c.axes["n"]: c for c in by_test if c.slice == tl and c.axes["level"] == lvl}
                    _over_counts(ax, counts, pts, f"train {lvl}", COLORS[i % 10])
                    rows += [{"test level": tl, "train level": lvl, "n": n, "accuracy %": _pct(c.value),
                              "95% low": _pct(c.lo), "95% high": _pct(c.hi), "items": c.n}
                             for n, c in sorted(pts.items())]
                b = next((c for c in _acc(results, method="base", domain="id", slice=tl)), None)
                if b:
                    reference(ax, _pct(b.value), _pct(b.lo), _pct(b.hi), "base")
                ax.set(title=f"test facts at {tl.replace('=', ' ')}", xlabel="n", xscale="log", ylim=(-5, 105))
                ax.set_xticks(counts, [str(n) for n in counts])
            axes[0].set_ylabel("ID accuracy (%)")
            legend(axes[0], fontsize=6)
            out_sections.append(Section("Accuracy by the test facts' mastery level",
                                        "In-domain test facts split by how well the base model knew them.",
                                        save(fig, out, "k_accuracy_by_test_level"), rows))

    kl = results.select(method="sft", metric="kl", domain="id", slice="all")
    if kl:
        fig, axes = panels(1, width=4.2)
        rows = []
        for i, lvl in enumerate(_levels(kl)):
            pts = {c.axes["n"]: c for c in kl if c.axes["level"] == lvl}
            _over_counts(axes[0], counts, pts, f"level {lvl}", COLORS[i % 10], scale=1)
            rows += [{"train level": lvl, "n": n, "KL": c.value, "95% low": c.lo, "95% high": c.hi, "items": c.n}
                     for n, c in sorted(pts.items())]
        axes[0].set(xlabel="training samples", ylabel="KL(p_ft || p_base) per answer token", xscale="log",
                    title="token-level KL to the base model (ID test)")
        axes[0].set_xticks(counts, [str(n) for n in counts])
        legend(axes[0], fontsize=7)
        out_sections.append(Section("Token-level KL vs sample count", "Mean over answer tokens, then over test "
                                    "items; 95% bootstrap intervals over items.", save(fig, out, "k_kl"), rows))

    restored = _acc(results, method="restore", domain="id", slice="all")
    if restored:
        fig, axes = panels(1, width=4.2)
        rows = []
        by_variant: dict[tuple[str, float], list] = {}
        for c in restored:
            strategy, k = _restore_variant(c.variant)
            by_variant.setdefault((strategy, k), []).append(c)
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
        out_sections.append(Section("Restoring the most-changed parameters",
                                    "Each point pools every restore cell of that strategy and k (same test items); "
                                    "lines: SFT and LoRA cells over the same grid.",
                                    save(fig, out, "k_restoration"), rows))
    params = _param_sections(results, out)
    return out_sections + params


def _restore_variant(variant: str) -> tuple[str, float]:
    """'restore-top5' -> ('top', 5.0)."""
    m = re.fullmatch(r"restore-([a-z]+)([0-9.]+)", variant)
    return m.group(1), float(m.group(2))


def _param_sections(results, out):
    from ftscope.report.figures import panels, save
    from ftscope.report.page import Section

    sft = {cid for cid, c in results.cells.items() if c["method"] == "sft"}
    rows = [r for r in results.store.read("params", done_only=True).to_pylist() if r["cell_id"] in sft]
    if not rows:
        return []
    region = [r for r in rows if r["scope"] == "region"]
    table = []
    for r in sorted(region, key=lambda r: (results.cells[r["cell_id"]]["axes"]["level"],
                                          results.cells[r["cell_id"]]["axes"]["n"])):
        c = results.cells[r["cell_id"]]
        table.append({"train level": c["axes"]["level"], "n": c["axes"]["n"], "seed": c["seed"],
                      "top 1% share %": _pct(r["top1_share"]), "top 5% %": _pct(r["top5_share"]),
                      "top 10% %": _pct(r["top10_share"]), "zero base weights": r["n_zero_base"],
                      "elements": r["n_elements"]})
    per = [r for r in rows if r["scope"] == "matrix"]
    mats = ["q", "k", "v", "o", "gate", "up", "down"]
    layers = sorted({r["layer"] for r in per})
    grid = [[0.0] * len(mats) for _ in layers]
    counts = [[0] * len(mats) for _ in layers]
    for r in per:
        if r["matrix"] in mats:
            i, j = layers.index(r["layer"]), mats.index(r["matrix"])
            grid[i][j] += r["mean_change"]
            counts[i][j] += 1
    grid = [[g / c if c else float("nan") for g, c in zip(gr, cr)] for gr, cr in zip(grid, counts)]
    fig, axes = panels(2, width=4.2)
    axes[0].hist([_pct(r["top1_share"]) for r in region], bins=12, color="tab:blue")
    axes[0].set(xlabel="share of the total change held by the top 1% (%)", ylabel="SFT cells",
                title="concentration of the change")
    im = axes[1].imshow(grid, aspect="auto", cmap="viridis")
    axes[1].set_xticks(range(len(mats)), mats)
    axes[1].set_yticks(range(len(layers)), [str(layer) for layer in layers])
    axes[1].set(xlabel="matrix", ylabel="layer", title=f"mean {region[0]['measure']} change (SFT cells)")
    fig.colorbar(im, ax=axes[1])
    restoration = results.store.read("restoration", done_only=True).to_pylist()
    undone = {}
    for r in restoration:
        if r["cell_id"] in results.cells and r["strategy"] == "top":
            undone.setdefault((r["k_percent"], r["matrix"]), []).append(r["undone_share"])
    rest_rows = [{"k %": k, "matrix": m, "share of its change undone %": _pct(sum(v) / len(v)), "cells": len(v)}
                 for (k, m), v in sorted(undone.items())]
    return [Section("Parameter change", "Per SFT cell: how much of the total change the most-changed elements "
                    "hold, and the mean change per matrix and layer; exact-zero base weights are counted because "
                    "they dominate a relative measure.", save(fig, out, "k_params"), table),
            Section("Restoration: how much of each matrix type's change the top-k% undoes", "", None, rest_rows)]


def comparisons(results):
    """Study K's findings (PAPERS.md), each as a difference on the same ID test items."""
    from ftscope.report.summary import compare

    out = []
    sft = _acc(results, method="sft", domain="id", slice="all")
    if not sft:
        return out
    counts = sorted({c.axes["n"] for c in sft})
    n_max, n_mid = counts[-1], counts[len(counts) // 2]
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
    if len(counts) >= 3:
        out.append(compare(results, f"more data does not always help: accuracy at n={n_mid} beats n={n_max} "
                           "(paper: a peak near 240 samples, lower at 1920)", (f"SFT n={n_mid}", at(sft, n=n_mid)),
                           (f"SFT n={n_max}", at(sft, n=n_max))))
        kl = results.select(method="sft", metric="kl", domain="id", slice="all")
        out.append(compare(results, f"KL to the base model rises with the data: n={n_max} above n={n_mid}",
                           (f"SFT n={n_max}", at(kl, n=n_max)), (f"SFT n={n_mid}", at(kl, n=n_mid))))
    restored = [c for c in _acc(results, method="restore", domain="id", slice="all") if "top" in c.variant]
    for k in sorted({c.variant for c in restored}, key=lambda v: _restore_variant(v)[1]):
        arm = [c for c in restored if c.variant == k]
        parents = [c for c in sft if any(c.axes["level"] == a.axes["level"] and c.axes["n"] == a.axes["n"]
                                         for a in arm)]
        out.append(compare(results, f"restoring the most-changed parameters ({k.split('-')[1]}) beats plain SFT",
                           (k, arm), ("SFT (its parents)", parents)))
    lora = _acc(results, method="lora", domain="id", slice="all")
    if lora and restored:
        out.append(compare(results, "restoration beats LoRA", ("restore-top (all k)", restored), ("LoRA", lora)))
    return out
