"""Matplotlib helpers: every point with its 95% interval, every figure saved as PNG and SVG. Matplotlib is
imported by the first figure drawn, not by importing this module: the commands that draw none start faster."""

import math
from functools import cache
from pathlib import Path

COLORS = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:gray",
          "tab:olive", "tab:cyan"]  # matplotlib's default cycle


@cache
def _plt():
    import matplotlib  # deferred: about a second to import, and only figures need it

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt  # deferred: as above

    plt.rcParams.update({"figure.dpi": 110, "font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
                         "svg.hashsalt": "ftscope", "svg.fonttype": "none"})
    return plt


def panels(n: int, width: float = 3.6, height: float = 2.8, cols: int | None = None):
    cols = cols or min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = _plt().subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def line(ax, xs, ys, lo, hi, label: str, color=None, style: str = "-o"):
    """A line with 95% interval error bars; missing points (None) are left as gaps."""
    pts = [(x, y, a, b) for x, y, a, b in zip(xs, ys, lo, hi) if y is not None]
    if not pts:
        return
    x, y, a, b = zip(*pts)
    err = [[max(0.0, yy - aa) for yy, aa in zip(y, a)], [max(0.0, bb - yy) for yy, bb in zip(y, b)]]
    ax.errorbar(x, y, yerr=err, fmt=style, ms=3.5, lw=1.2, capsize=2.5, label=label, color=color)


def reference(ax, y: float, lo: float, hi: float, label: str, color: str = "0.4"):
    """A horizontal reference line (the base model, SFT) with its interval as a band."""
    ax.axhline(y, ls="--", lw=1, color=color, label=label)
    if not (math.isnan(lo) or math.isnan(hi)):
        ax.axhspan(lo, hi, color=color, alpha=0.12, lw=0)


def legend(ax, **kw):
    """A legend when something on the axes has a label."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kw)


def save(fig, out_dir: Path, name: str) -> Path:
    """Write `name`.png and `name`.svg under out_dir/figures; returns the PNG path."""
    folder = out_dir / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(folder / f"{name}.png")
    fig.savefig(folder / f"{name}.svg", metadata={"Date": None})
    _plt().close(fig)
    return folder / f"{name}.png"


def count_ticks(ax, counts) -> None:
    """x ticks at exactly the grid's sample counts on a log axis (matplotlib's minor labels would overlap them)."""
    from matplotlib.ticker import NullLocator  # deferred: as above

    ax.set_xticks(counts, [str(n) for n in counts])
    ax.xaxis.set_minor_locator(NullLocator())


VERDICT_COLORS = {"reproduced": "tab:green", "contradicted": "tab:red", "not distinguishable": "0.45",
                  "missing": "0.8"}


def forest(comparisons, out_dir: Path, name: str) -> Path | None:
    """The findings at a glance: each finding's A - B (points; KL findings on their own axis) with its 95%
    interval, a line at 0, and the verdict as the colour."""
    groups = [(unit, [c for c in comparisons if c.unit == unit and c.n]) for unit in ("points", "kl", "magnitude")]
    groups = [(unit, cs) for unit, cs in groups if cs]
    if not groups:
        return None
    plt = _plt()
    heights = [len(cs) for _, cs in groups]
    fig, axes = plt.subplots(len(groups), 1, figsize=(7.5, 0.9 + 0.32 * sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, (unit, cs) in zip(axes[:, 0], groups):
        scale = 100 if unit == "points" else 1
        ys = list(range(len(cs)))[::-1]
        for y, c in zip(ys, cs):
            color = VERDICT_COLORS.get(c.verdict, "0.45")
            ax.errorbar([scale * c.diff], [y], xerr=[[scale * (c.diff - c.lo)], [scale * (c.hi - c.diff)]], fmt="o",
                        color=color, ms=4, capsize=2.5, lw=1.3)
        ax.axvline(0, color="0.3", lw=0.8)
        ax.set_yticks(ys, [_short(c.claim) for c in cs], fontsize=7)
        ax.set_xlabel({"points": "A - B, points (accuracy or ROUGE-L F x 100)", "kl": "A - B, KL"}.get(
            unit, "A - B (bits per byte, perplexity)"), fontsize=8)
    handles = [plt.Line2D([], [], marker="o", ls="", color=col, label=v) for v, col in VERDICT_COLORS.items()
               if any(c.verdict == v for _, cs in groups for c in cs)]
    axes[0, 0].legend(handles=handles, fontsize=7, loc="lower right", frameon=False,
                      bbox_to_anchor=(1.0, 1.0), ncol=len(handles))
    return save(fig, out_dir, name)


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"
