"""ftscope: what fine-tuning does to a language model (core library; no Prefect in here)."""

__version__ = "0.1.0"
