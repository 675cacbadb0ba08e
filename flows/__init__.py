"""Prefect flows (the DAG of a study) and the command line that starts them."""

import logging
import os

# ftscope's own log lines (training progress, every line of a launched training run) go to the
# Prefect run logs: Prefect attaches its API handler to these loggers, which must pass INFO.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "ftscope")
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")  # core code also runs outside flows
logging.getLogger("ftscope").setLevel(logging.INFO)
