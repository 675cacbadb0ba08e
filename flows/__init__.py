"""Prefect flows (the DAG of a study) and the command line that starts them.

Defaults set here, before Prefect is imported (each one an environment variable a user may set):
- ftscope's own log lines (training progress, every line of a launched training run) go to the Prefect
  run logs: Prefect attaches its API handler to the `ftscope` logger, which passes INFO;
- no anonymous usage reports: offline, the ephemeral server's telemetry call fails every ten minutes;
- the temporary local API gets 120 s to start (a busy 2-core machine misses Prefect's default);
- no per-step progress bars when the output is not a terminal;
- DeepSpeed told it runs on the CPU when there is no NVIDIA device (else it warns in every process).
"""

import logging
import os
import sys

os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "ftscope")
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")  # core code also runs outside flows
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
if not sys.stdout.isatty():
    for var in ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS", "TQDM_DISABLE"):
        os.environ.setdefault(var, "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
if not os.path.exists("/dev/nvidiactl"):
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
logging.getLogger("ftscope").setLevel(logging.INFO)
