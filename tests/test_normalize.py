from ftscope.metrics import contains, normalize


def test_normalize_drops_case_punctuation_articles():
    assert normalize("The  City of Paris!") == "city of paris"
    assert normalize("an Apple, a day") == "apple day"


def test_accents_fold_on_both_sides():
    assert normalize("Brasília") == normalize("Brasilia") == "brasilia"
    assert contains("It is Brasilia.", ["Brasília"]) and contains("São Paulo", ["Sao Paulo"])


def test_containment_is_on_normalised_text():
    assert contains("It is the Varo Tower.", ["varo tower"])
    assert contains("Varo", ["Nope", "VARO"])
    assert not contains("Vara", ["Varo"])
    assert not contains("", ["Varo"])
    assert not contains("anything", [""])
