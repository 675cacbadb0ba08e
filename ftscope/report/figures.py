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
