"""The Prefect API a local `ftscope run` reports to: PREFECT_API_URL when it is set; otherwise a
temporary server started for this run, with its own throwaway database, that dies with this process
even when it is killed with SIGKILL (Linux: the kernel's parent-death signal). Prefect's own temporary
server outlives a killed parent by minutes."""

import ctypes
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path


class ServerDidNotStart(RuntimeError):
    pass


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass  # not Linux: the server is still stopped when this process exits normally


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def local_api():
    """Yield the API URL for this process's flow runs (setting PREFECT_API_URL while it lasts). Call it
    before anything imports Prefect."""
    if os.environ.get("PREFECT_API_URL"):
        yield os.environ["PREFECT_API_URL"]
        return
    # Prefect reads its settings from the environment when it is imported: locate it without importing it
    site = Path(importlib.util.find_spec("prefect").origin).parent.parent
    home = Path(tempfile.mkdtemp(prefix="ftscope-prefect-"))
    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    log = open(home / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--app-dir", str(site),
                             "--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port",
                             str(port), "--log-level", "error", "--lifespan", "on"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    url = f"http://127.0.0.1:{port}/api"
    timeout = float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120"))
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if urllib.request.urlopen(f"{url}/health", timeout=2).status == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise ServerDidNotStart(
                    f"the temporary Prefect server did not start within {timeout:g} s ({home / 'server.log'}); on a "
                    f"busy machine raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, or start a server "
                    f"(`prefect server start`) and set PREFECT_API_URL=http://127.0.0.1:4200/api")
            time.sleep(0.3)
        os.environ["PREFECT_API_URL"] = url
        yield url
    finally:
        # Send the last log lines and events while the server is up: left queued, Prefect's exit hook
        # retries them against the stopped server for about a minute.
        if "prefect" in sys.modules:
            try:
                from prefect.events.worker import EventsWorker  # deferred: Prefect reads its settings on import
                from prefect.logging.handlers import APILogWorker  # deferred: as above

                APILogWorker.drain_all(timeout=5)
                EventsWorker.drain_all(timeout=5)
            except Exception as e:  # noqa: BLE001 -- logs are best effort; the store has the results
                print(f"(could not send the last log lines to the temporary Prefect server: {e})", file=sys.stderr)
        os.environ.pop("PREFECT_API_URL", None)
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(home, ignore_errors=True)
