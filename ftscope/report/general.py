"""The general-capability part of every study's report (eval.general, ftscope/general.py): each arm that changed
the model against its own base model on every lm-eval task, as paired differences over the same documents (and
the same base models), in a text table, a figure and, for Study K, a finding."""

import json
from pathlib import Path

from ftscope.methods import changes_model
from ftscope.report import numbers
from ftscope.report.figures import COLORS, save
from ftscope.report.page import Section, columns
from ftscope.report.results import Comparison, Condition, Results, compare, interval_kind
from ftscope.runs import latest_config

PROPORTIONS = ("acc", "acc_norm", "exact_match")  # lm-eval metrics scored 0 or 1 a document: written in points


def unit(metric: str) -> str:
    """'points' for a proportion (x 100 when written), else 'magnitude' (perplexity, bits per byte: as is)."""
    return "points" if metric.split(",")[0] in PROPORTIONS else "magnitude"


def headlines(results: Results) -> dict[str, tuple[str, bool]]:
    """Per configured task: the metric its report compares (the config's, else the task's first) and whether
    higher is better."""
    try:
        specs = latest_config(results.store, results.study)["eval"]["general"]["tasks"]
    except (ValueError, KeyError, TypeError):
        specs = []
    chosen = {s["task"]: s.get("metric") for s in specs if isinstance(s, dict)}
    out: dict[str, tuple[str, bool]] = {}
    for r in results.general_rows:
        metric = chosen.get(r["task"]) or r["metric"]
        if r["task"] not in out and r["metric"] == metric:
            out[r["task"]] = (metric, r["higher_is_better"])
    return out


def _label(c: Condition) -> str:
    axes = " ".join(f"{k}={v}" for k, v in c.axes.items())
    return f"{c.variant} {axes}".strip()


def arms(results: Results, task: str, metric: str) -> tuple[list[Condition], dict[str, list[Condition]]]:
    """(the base model's conditions, {arm label: its conditions}) of one task and metric; a task of several lm-eval
    tasks (a group) has one condition per member in each list."""
    conds = [c for c in results.general if c.task == task and c.metric == metric]
    kept = sorted({c.method for c in conds if not changes_model(c.method)})
    base = [c for c in conds if kept and c.method == kept[0]]
    out: dict[str, list[Condition]] = {}
    for c in sorted(conds, key=lambda c: (c.model, c.variant, json.dumps(c.axes, sort_keys=True))):
        if changes_model(c.method):
            out.setdefault(_label(c), []).append(c)
    return base, out


def differences(results: Results) -> list[tuple[str, str, bool, list[Condition], Comparison]]:
    """(task, metric, higher is better, the arm's conditions, arm - base) for every task and arm."""
    out = []
    for task, (metric, higher) in headlines(results).items():
        base, by_arm = arms(results, task, metric)
        for label, conds in by_arm.items():
            d = compare(results, f"{task}: {label} - base", (label, conds), ("base model", base),
                        expected=1 if higher else -1, unit=unit(metric))
            out.append((task, metric, higher, conds, d))
    return out


def _value(conds: list[Condition], metric: str) -> str:
    v = sum(c.value for c in conds) / len(conds)
    return numbers.points(v) if unit(metric) == "points" else numbers.sig3(v)


def table(results: Results) -> str:
    if not results.general:
        return ""
    rows = []
    for task, (metric, higher) in headlines(results).items():
        base, _ = arms(results, task, metric)
        if base:
            rows.append([task, metric, "base model", _value(base, metric), numbers.DASH, numbers.DASH,
                         numbers.count(sum(c.n for c in base))])
    for task, metric, higher, conds, d in differences(results):
        diff, ci = numbers.difference(d.diff, d.lo, d.hi, d.unit)
        rows.append([task, metric, d.a, _value(conds, metric), diff, ci, numbers.count(d.n)])
    return ("general capability (lm-eval): each arm against its base model on the same documents (95% paired "
            "intervals;\n  points for accuracy, as is for bits per byte and perplexity, where lower is better)\n"
            + columns(["task", "metric", "arm", "value", "A - base", "95% CI", "docs"], rows, left=3))


def figure(results: Results, out: Path) -> Section | None:
    """One panel per task: every arm's difference from its base model with its interval, and a zero line."""
    found = differences(results)
    if not found:
        return None
    from ftscope.report.figures import _plt  # deferred: matplotlib only where a figure is drawn

    plt = _plt()
    tasks = list(dict.fromkeys(t for t, *_ in found))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 0.9 + 0.3 * max(
        sum(t == task for t, *_ in found) for task in tasks)), squeeze=False)
    rows = []
    for ax, task in zip(axes[0], tasks):
        mine = [(m, h, c, d) for t, m, h, c, d in found if t == task and d.n]
        scale = 100 if mine and mine[0][3].unit == "points" else 1
        ys = list(range(len(mine)))[::-1]
        for y, (metric, higher, conds, d) in zip(ys, mine):
            ax.errorbar([scale * d.diff], [y], xerr=[[scale * (d.diff - d.lo)], [scale * (d.hi - d.diff)]], fmt="o",
                        color=COLORS[0], ms=4, capsize=2.5, lw=1.3)
            rows.append({"task": task, "metric": metric, "arm": d.a, "A - base": scale * d.diff,
                         "95% lo": scale * d.lo, "95% hi": scale * d.hi, "docs": d.n})
        ax.axvline(0, color="0.3", lw=0.8)
        ax.set_yticks(ys, [d.a for *_, d in mine], fontsize=7)
        metric, higher = headlines(results)[task]
        ax.set_title(f"{task}: {metric} ({'higher' if higher else 'lower'} is better)", fontsize=9)
        ax.set_xlabel("arm - base model" + (", points" if scale == 100 else ""), fontsize=8)
    conds = [c for *_, cs, _ in found for c in cs]
    return Section("General capability against the base model (lm-eval)",
                   f"Each arm's score on the lm-eval tasks of eval.general minus its base model's, on the same "
                   f"documents; 95% intervals: paired, {interval_kind(conds)}.", save(fig, out, "general"), rows)
