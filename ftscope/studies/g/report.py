"""Study G's report, rendered from the study's Results alone: the mean score of each method by training
task and test relation, the parameter difference of each fine-tuned model, one function per figure, and
the paper's findings as comparisons. Whether a cell changed the model comes from its method's recipe and
whether a test set is a generation task from its metric: no method or metric is known here by name,
except where a finding of the paper names one (FT, ICL, FTICL)."""

from pathlib import Path

import numpy as np

from ftscope.methods import changes_model
from ftscope.report import numbers
from ftscope.report.figures import COLORS, legend, line, panels, save
from ftscope.report.page import Section, columns
from ftscope.report.results import Results, compare, interval_kind, is_generated
from ftscope.studies.study import StudyReport

LABELS = {"sft": "FT", "icl": "ICL", "fticl": "FTICL", "base": "base", "lora": "FT (LoRA)"}  # the paper's names
RELATIONS = ("in_domain", "out_of_domain", "cross_task")


def method_label(method: str, variant: str, shots: int) -> str:
    name = LABELS.get(method, method)
    if not changes_model(method):
        return f"{name}-{shots}"
    return f"{name}-{variant.split('-', 1)[1]}" if variant != method else name


def generalization_table(results: Results) -> str:
    """Rows: train task x method (x size); columns: in-domain, out-of-domain, cross-task. Each value is
    the mean over test sets and prompt maps (accuracy or ROUGE-L F, %); fine-tuned models at 0 shots,
    the base model (ICL) at each test set's largest shots."""
    conds = results.select(slice="all")
    if not conds:
        return "Study G: no finished cells yet"
    arm = lambda c: (c.model, c.method, c.variant, tuple(sorted(c.axes.items())))  # noqa: E731
    max_shots: dict[tuple, int] = {}
    train_task: dict[tuple, str] = {}
    for c in conds:
        key = arm(c) + (c.dataset,)
        max_shots[key] = max(max_shots.get(key, 0), c.shots)
        if changes_model(c.method) and c.domain != "cross_task":
            train_task.setdefault(arm(c), c.task)
    groups: dict[tuple, list[float]] = {}
    for c in conds:
        trained = changes_model(c.method)
        k = 0 if trained else max_shots[arm(c) + (c.dataset,)]
        if c.shots != k:
            continue
        task = train_task.get(arm(c)) if trained else c.task
        key = (task, method_label(c.method, c.variant, k), c.axes.get("size", 0) if trained else 0)
        groups.setdefault(key, {}).setdefault(c.domain, []).extend([c.value])
    rows = []
    for (task, label, size), vals in sorted(groups.items(), key=lambda kv: (str(kv[0][0]), kv[0][1] != "ICL" and
                                                                            not kv[0][1].startswith("ICL"),
                                                                            str(kv[0][0]), kv[0][1], kv[0][2])):
        rows.append([str(task), label, numbers.count(size) if size else numbers.DASH] + [
            numbers.points(float(np.mean(vals[r]))) if r in vals else numbers.DASH for r in RELATIONS])
    return ("Study G: mean score (%) by training task and test relation (accuracy or ROUGE-L F; over test sets and "
            "prompt maps;\n  fine-tuned models at 0 shots, ICL at each test set's largest shots)\n"
            + columns(["train task", "method", "size", *RELATIONS], rows, left=2))


def param_table(results: Results) -> str:
    rows = sorted((results.cells[r["cell_id"]]["axes"].get("train"), results.cells[r["cell_id"]]["variant"],
                   results.cells[r["cell_id"]]["axes"].get("size"), r["mean_change"]) for r in results.params
                  if r["scope"] == "region" and r["measure"] == "absolute")
    if not rows:
        return "parameter difference: no fine-tuned cells yet"
    return "mean |theta_ft - theta_base| over all parameters\n" + columns(
        ["train", "method", "size", "mean"], [[t, v, numbers.count(s), numbers.sig3(m)] for t, v, s, m in rows], left=2)


TABLES = [generalization_table, param_table]


# -- figures: one function each; (Results, out dir) -> Section, or None when there is nothing to draw ----

def _train_tasks(results) -> dict[str, str]:
    """Training dataset -> its task (the task of the sets it is tested on in-domain)."""
    return {c.axes["train"]: c.task for c in results.conditions if "train" in c.axes and c.domain == "in_domain"}


def _max_shots(results) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in results.select(method="icl"):
        out[c.dataset] = max(out.get(c.dataset, 0), c.shots)
    return out


def _arm(results, method: str, shots: str = "zero", **where):
    """Conditions of a method: at 0 shots, or ('max') at each test set's largest shots."""
    top = _max_shots(results)
    conds = results.select(method=method, **where)
    return [c for c in conds if c.shots == (top.get(c.dataset, 0) if shots == "max" else 0)]


def _tests(results: Results) -> list[str]:
    return sorted({c.dataset for c in results.conditions}, key=lambda d: (
        next(c.task for c in results.conditions if c.dataset == d), d))


def matrix_figure(results: Results, out: Path) -> Section | None:
    tasks, tests = _train_tasks(results), _tests(results)
    rows_of = {"FT": [(t, _arm(results, "sft", train=t)) for t in tasks],
               "FTICL": [(t, _arm(results, "fticl", train=t)) for t in tasks],
               "ICL (k-shot)": [("base model", _arm(results, "icl", shots="max"))]}
    if not any(conds for rows in rows_of.values() for _, conds in rows):
        return None
    fig, axes = panels(3, width=5.2, height=2.9, cols=1)
    table = []
    for ax, (name, rows) in zip(axes, rows_of.items()):
        grid = []
        for train, conds in rows:
            vals = []
            for d in tests:
                cs = [c for c in conds if c.dataset == d]
                vals.append(100 * sum(c.value for c in cs) / len(cs) if cs else float("nan"))
                if cs:
                    table.append({"method": name, "train": train, "test": d, "relation": cs[0].domain,
                                  "score %": vals[-1], "95% low": 100 * min(c.lo for c in cs),
                                  "95% high": 100 * max(c.hi for c in cs), "items": cs[0].n})
            grid.append(vals)
        if grid:
            ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=100)
        ax.set_yticks(range(len(rows)), [r[0] for r in rows])
        ax.set_xticks(range(len(tests)), tests, rotation=35, ha="right", fontsize=7)
        for i, vals in enumerate(grid):
            for j, v in enumerate(vals):
                if v == v:
                    ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=6,
                            color="white" if v < 60 else "black")
        ax.set_title(f"{name}: score (%), training set (rows) x test set", fontsize=8)
    return Section("Train x test: in-domain, out-of-domain and cross-task",
                   "Accuracy (classification) or ROUGE-L F (generation), mean of both prompt maps; fine-tuned models "
                   "at 0 shots, ICL at each test set's largest shots. The table gives each cell's relation and the "
                   f"widest 95% interval of its prompt maps ({interval_kind(results.conditions)}).",
                   save(fig, out, "g_matrix"), table)


def shots_figure(results: Results, out: Path) -> Section | None:
    tasks, tests = _train_tasks(results), _tests(results)
    if not tests:
        return None
    fig, axes = panels(len(tests), width=2.7, height=2.3, cols=5)
    table = []
    for ax, d in zip(axes, tests):
        task = next(c.task for c in results.conditions if c.dataset == d)
        trained = [t for t, tt in tasks.items() if tt == task]
        arms = [("ICL", results.select(method="icl", dataset=d))]
        arms += [(f"FT ({t})", results.select(method="sft", dataset=d, train=t)) for t in trained]
        arms += [(v.replace("fticl-", "FTICL-"), results.select(method="fticl", dataset=d, train=t, variant=v))
                 for t in trained for v in sorted({c.variant for c in results.select(method="fticl", train=t)})]
        for i, (name, conds) in enumerate(arms):
            shots = sorted({c.shots for c in conds})
            mean = [[c for c in conds if c.shots == k] for k in shots]
            line(ax, shots, [100 * sum(c.value for c in m) / len(m) for m in mean],
                 [100 * min(c.lo for c in m) for m in mean], [100 * max(c.hi for c in m) for m in mean], name,
                 COLORS[i % 10])
            table += [{"test": d, "method": name, "shots": k, "score %": 100 * sum(c.value for c in m) / len(m)}
                      for k, m in zip(shots, mean)]
        ax.set(title=d, xlabel="shots")
    axes[0].set_ylabel("score (%)")
    legend(axes[0], fontsize=6)
    return Section("Score vs shots", "Each test set at the shots tested (mean of both prompt maps); FT and FTICL are "
                   "the models trained on that set's task.", save(fig, out, "g_shots"), table)


def params_figure(results: Results, out: Path) -> Section | None:
    params = [r for r in results.params if r["scope"] == "region" and r["measure"] == "absolute"]
    if not params:
        return None
    fig, axes = panels(1, width=5)
    table = [{"train": results.cells[r["cell_id"]]["axes"].get("train"), "method": results.cells[r["cell_id"]]["variant"],
              "size": results.cells[r["cell_id"]]["axes"].get("size"), "mean |theta_ft - theta_base|": r["mean_change"]}
             for r in params]
    table.sort(key=lambda r: (str(r["train"]), r["method"]))
    variants = sorted({r["method"] for r in table})
    trains = sorted({r["train"] for r in table}, key=str)
    for i, v in enumerate(variants):
        xs = [j + i / (len(variants) + 1) for j in range(len(trains))]
        ys = [next((r["mean |theta_ft - theta_base|"] for r in table if r["train"] == t and r["method"] == v), 0)
              for t in trains]
        axes[0].bar(xs, ys, width=1 / (len(variants) + 1), label=v, color=COLORS[i % 10])
    axes[0].set_xticks(range(len(trains)), [str(t) for t in trains], rotation=20, ha="right", fontsize=7)
    axes[0].set(ylabel="mean absolute difference", title="parameter difference to the base model")
    legend(axes[0], fontsize=7)
    return Section("Parameter difference", "Mean absolute element-wise difference over all parameters (paper: FTICL "
                   "changes the model less than FT).", save(fig, out, "g_params"), table)


FIGURES = [matrix_figure, shots_figure, params_figure]


# -- the paper's findings -------------------------------------------------------------------------------

def comparisons(results: Results):
    """Study G's findings (PAPERS.md), each a difference on the same test items (both prompt maps)."""
    out = []
    tasks = _train_tasks(results)
    gen = {c.task for c in results.conditions if is_generated(c.metric)}
    for train, task in sorted(tasks.items(), key=lambda kv: kv[1]):
        ft = _arm(results, "sft", train=train, domain="in_domain")
        out.append(compare(results, f"[{task}] in-domain FT beats the zero-shot base model (is the testbed real?)",
                           (f"FT on {train}", ft), ("base, 0 shots", _arm(results, "icl", task=task,
                                                                          domain="in_domain"))))
        out.append(compare(results, f"[{task}] in-domain, FT beats ICL", (f"FT on {train}", ft),
                           ("ICL, k shots", _arm(results, "icl", "max", task=task, domain="in_domain"))))
    in_gen = lambda c: c in gen  # noqa: E731
    in_cls = lambda c: c not in gen  # noqa: E731
    out.append(compare(results, "out of domain, ICL beats FT on generation tasks",
                       ("ICL, k shots", _arm(results, "icl", "max", task=in_gen, domain="out_of_domain")),
                       ("FT", _arm(results, "sft", task=in_gen, domain="out_of_domain"))))
    out.append(compare(results, "out of domain, FT beats ICL on classification tasks",
                       ("FT", _arm(results, "sft", task=in_cls, domain="out_of_domain")),
                       ("ICL, k shots", _arm(results, "icl", "max", task=in_cls, domain="out_of_domain"))))
    cls_trained = [t for t, task in tasks.items() if task not in gen]
    out.append(compare(results, "classification-trained models collapse on generation tasks (below the zero-shot "
                       "base)", ("FT on classification", _arm(results, "sft", task=in_gen,
                                                              train=lambda t: t in cls_trained)),
                       ("base, 0 shots", _arm(results, "icl", task=in_gen)), expected=-1))
    out.append(compare(results, "FTICL beats FT out of domain on generation tasks",
                       ("FTICL (each k)", _arm(results, "fticl", task=in_gen, domain="out_of_domain")),
                       ("FT", _arm(results, "sft", task=in_gen, domain="out_of_domain"))))
    gen_trained = [t for t, task in tasks.items() if task in gen]
    out.append(compare(results, "FTICL beats FT cross-task on generation tasks",
                       ("FTICL (each k)", _arm(results, "fticl", task=in_gen, domain="cross_task",
                                               train=lambda t: t in gen_trained)),
                       ("FT", _arm(results, "sft", task=in_gen, domain="cross_task", train=lambda t: t in gen_trained))))
    return out


REPORT = StudyReport(tables=TABLES, headline=generalization_table, figures=FIGURES, comparisons=comparisons)
