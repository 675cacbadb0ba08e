"""The offline suite of Study G (filled in with the generalization study)."""
