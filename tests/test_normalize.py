from ftscope.data.normalize import contains_answer, first_line, normalize


def test_normalize_drops_case_punctuation_articles():
    assert normalize("The  City of Paris!") == "city of paris"
    assert normalize("an Apple, a day") == "apple day"


def test_containment_is_on_normalised_text():
    assert contains_answer("It is the Varo Tower.", ["varo tower"])
    assert contains_answer("Varo", ["Nope", "VARO"])
    assert not contains_answer("Vara", ["Varo"])
    assert not contains_answer("", ["Varo"])
    assert not contains_answer("anything", [""])


def test_first_line_skips_blank_lines():
    assert first_line("\n\n Paris\nLondon") == " Paris"
    assert first_line("") == ""
