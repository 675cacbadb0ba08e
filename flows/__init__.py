"""Prefect flows (the DAG of a study) and the command line that starts them."""

import os

# ftscope's own log lines (training progress, launcher output) appear in the Prefect run logs.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "ftscope")
