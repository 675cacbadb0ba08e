"""Fresh names for the sandbox's fictional entities, shared by the Study K world and the Study G suite."""

import numpy as np

_ONSETS = "b c d f g h j k l m n p r s t v w z br dr gr kr pl st tr th sh ch".split()
_VOWELS = "a e i o u ai ea ou io".split()
_CODAS = ["", "", "n", "r", "l", "s", "th", "x", "nd", "m"]


class Names:
    """Fresh, unique capitalised words from a seeded syllable generator."""

    def __init__(self, rng: np.random.Generator):
        self.rng, self.used = rng, set()

    def word(self) -> str:
        while True:
            n = self.rng.integers(2, 4)
            w = "".join(self.rng.choice(_ONSETS) + self.rng.choice(_VOWELS) for _ in range(n))
            w = (w + self.rng.choice(_CODAS)).capitalize()
            if w not in self.used:
                self.used.add(w)
                return w

    def pool(self, n: int) -> list[str]:
        return [self.word() for _ in range(n)]
