from ftscope.data.normalize import contains_answer, normalize


def test_normalize_drops_case_punctuation_articles():
    assert normalize("The  City of Paris!") == "city of paris"
    assert normalize("an Apple, a day") == "apple day"


def test_containment_is_on_normalised_text():
    assert contains_answer("It is the Varo Tower.", ["varo tower"])
    assert contains_answer("Varo", ["Nope", "VARO"])
    assert not contains_answer("Vara", ["Varo"])
    assert not contains_answer("", ["Varo"])
    assert not contains_answer("anything", [""])
