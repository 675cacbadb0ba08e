"""The embedded default: the Study K world and the Study G suite (each registers its data format on
import) and the small model pretrained on them."""

from ftscope.sandbox import suite, world  # noqa: F401  register sandbox-k and sandbox-g
