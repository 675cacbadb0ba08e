"""Prefect tasks: retry, cache, concurrency and timeout policy around ftscope's core calls."""
