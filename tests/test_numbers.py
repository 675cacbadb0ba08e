"""One way to write a number on the terminal, in the README block and in the HTML report; text tables whose
entries are longer than any fixed column."""

import re

from ftscope.report import numbers
from ftscope.report.page import columns, table_html, table_text
from ftscope.report.render import comparison_rows, verdicts_text
from ftscope.report.results import Comparison


def test_points_kl_and_counts():
    assert numbers.points(0.6184) == "61.8" and numbers.points(-0.0165, sign=True) in ("-1.6", "-1.7")
    assert numbers.difference(0.0007, 0.0001, 0.0013) == ("+0.07", "[+0.01, +0.13]")  # narrower than a point
    assert numbers.difference(0.048, 0.029, 0.063) == ("+4.8", "[+2.9, +6.3]")
    assert numbers.difference(0.167, 0.139, 0.207, "kl") == ("+0.167", "[+0.139, +0.207]")
    assert [numbers.sig3(x) for x in (0.000324, 2.56e-05, 7.27, 9.663, 123.4, 0)] == \
        ["0.000324", "0.0000256", "7.27", "9.66", "123", "0"]
    assert numbers.count(1030) == "1,030" and numbers.points(None) == numbers.DASH
    for x in (1e-9, 3.3e-7, 12345678.9, 0.1):
        assert "e" not in numbers.sig3(x)
    assert [numbers.cell(v, c) for v, c in ((5.0, "k %"), (61.84, "accuracy %"), (0.000324, "KL"), (1030, "items"),
                                            (None, "seed sd %"))] == ["5", "61.8", "0.000324", "1,030", "-"]


def test_the_same_verdict_reads_alike_on_the_terminal_in_the_readme_and_in_html():
    comps = [Comparison("fine-tuning on facts the model does not know (level 0) lowers accuracy below the base model",
                        "SFT level 0, n=64", "base model", -0.0154, -0.0301, 0.0003, 1030, 1, -1, base_models=3),
             Comparison("KL to the base model rises with the data: n=64 above n=24", "SFT n=64", "SFT n=24", 0.167,
                        0.139, 0.207, 1030, 1, unit="kl")]
    rows = comparison_rows(comps)
    assert [(r["A - B"], r["95% interval"], r["items"]) for r in rows] == \
        [("-1.5", "[-3.0, +0.0]", "1,030"), ("+0.167", "[+0.139, +0.207]", "1,030")]
    terminal = verdicts_text({"demo": (_Kind(comps), None)})
    html = table_html(rows)
    for r in rows:
        for field in ("A - B", "95% interval", "items", "verdict"):
            assert r[field] in terminal and r[field] in html and r[field] in table_text(rows)
    assert max(map(len, terminal.splitlines())) <= 120
    assert not re.search(r"\d e[-+]?\d|\de-\d", terminal + html)


class _Kind:
    """A study kind whose report compares what it is given."""

    def __init__(self, comps):
        self.report = type("R", (), {"comparisons": staticmethod(lambda results: comps)})()


def test_text_tables_fit_names_longer_than_any_fixed_column():
    text = columns(["model", "method", "level", "n=16"],
                   [["smollm2-135m-instruct-dense", "restore-top5-bottom", "mixed", "34.7"],
                    ["m", "base", "-", "9.5"]], left=3)
    head, _, first, second = text.splitlines()
    assert "smollm2-135m-instruct-dense  restore-top5-bottom  mixed" in first
    assert first.index("34.7") + 4 == len(first) and second.endswith(" 9.5") and len(head) == len(first)
