"""One way to write a number, on the terminal, in the README block and in the HTML report:

- scores (accuracy, ROUGE-L F) and their differences in points (x 100) with one decimal, two when an interval
  around them is narrower than a point;
- KL and other magnitudes (parameter change) with three significant digits;
- counts with thousands separators;
- never scientific notation; a missing number is a dash.
"""

import math

DASH = "-"


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def decimals(lo=None, hi=None) -> int:
    """Decimals of points: one, two when the interval [lo, hi] (fractions) is narrower than a point."""
    return 2 if not _missing(lo) and not _missing(hi) and 100 * (hi - lo) < 1 else 1


def points(x, digits: int = 1, sign: bool = False) -> str:
    """A fraction as points: 0.6184 -> '61.8' (sign: '+61.8')."""
    if _missing(x):
        return DASH
    return f"{100 * x:{'+' if sign else ''}.{digits}f}"


def sig3(x, sign: bool = False) -> str:
    """Three significant digits without an exponent: 0.000324, 0.0000256, 7.27, 123."""
    if _missing(x):
        return DASH
    if x == 0:
        return "+0" if sign else "0"
    digits = max(0, 2 - math.floor(math.log10(abs(x))))
    return f"{x:{'+' if sign else ''}.{digits}f}"


def count(n) -> str:
    """1,030."""
    return DASH if _missing(n) else f"{int(n):,}"


def difference(d, lo, hi, scale: str = "points") -> tuple[str, str]:
    """('+4.8', '[+2.9, +6.3]'): a difference and its interval, in points (else, as for KL: three significant
    digits)."""
    if _missing(d):
        return DASH, DASH
    if scale != "points":
        return sig3(d, sign=True), f"[{sig3(lo, sign=True)}, {sig3(hi, sign=True)}]"
    n = decimals(lo, hi)
    return points(d, n, sign=True), f"[{points(lo, n, sign=True)}, {points(hi, n, sign=True)}]"


def cell(value, column: str) -> str:
    """A table cell, by its column: '%' columns are already points (one decimal), counts and settings are
    integers or plain, anything else a magnitude with three significant digits."""
    if _missing(value):
        return DASH
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return count(value)
    if "%" in column and not column.startswith("k "):
        return f"{value:.1f}"
    if float(value).is_integer() and abs(value) < 1e6:
        return f"{int(value):,}"
    return sig3(value)
