"""The Prefect API a local `ftscope run` reports to, in this order:

1. PREFECT_API_URL when it is set (a server of your own, or a cluster's);
2. the ftscope server started by `ftscope server start`, when it answers: one server kept across runs, with
   its own database under FTSCOPE_HOME (default ~/.ftscope), so run history survives and start-up is paid once;
3. otherwise a temporary server for this run, with a throwaway database, that dies with this process even
   when it is killed with SIGKILL (Linux: the kernel's parent-death signal). It serves the Prefect UI too, so the
   run's "View at" link opens the run while it lasts (the UI's files are copied once, under FTSCOPE_HOME/ui).

Starting a server waits on its health endpoint for a time that scales with how busy the machine is, and says
what it is waiting for."""

import json
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

from ftscope.train.launcher import die_with_parent


class ServerDidNotStart(RuntimeError):
    pass


def home() -> Path:
    return Path(os.environ.get("FTSCOPE_HOME", Path.home() / ".ftscope"))


def _record() -> Path:
    return home() / "server.json"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        return urllib.request.urlopen(f"{url}/health", timeout=2).status == 200
    except OSError:
        return False


def startup_limit() -> float:
    """Seconds to wait for a server: 120 on an idle machine, more in proportion to its load (a 2-core
    machine running two trainings needs about twice as long); PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS
    sets it outright."""
    if "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" in os.environ:
        return float(os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"])
    load = os.getloadavg()[0] / max(1, os.cpu_count() or 1)
    return 120 * max(1.0, 1 + load)


def _spawn(prefect_home: Path, port: int, temporary: bool) -> subprocess.Popen:
    """A Prefect server process: `prefect server start` for the kept one; for a temporary one the server app under
    uvicorn, with its UI but only the services an ephemeral server runs (`prefect.server.api.server`'s own factory
    with `ephemeral=False` would start them all). Prefect reads its settings from the environment when it is
    imported: it is located without importing it."""
    env = {**os.environ, "PREFECT_HOME": str(prefect_home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "DO_NOT_TRACK": "1"}
    env.pop("PREFECT_API_URL", None)
    log = open(prefect_home / "server.log", "a")
    if not temporary:
        return subprocess.Popen([str(Path(sys.executable).parent / "prefect"), "server", "start", "--host",
                                 "127.0.0.1", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    here = Path(__file__).resolve().parent.parent
    return subprocess.Popen([sys.executable, "-m", "uvicorn", "--app-dir", str(here), "--factory",
                             "flows.server:temporary_app", "--host", "127.0.0.1", "--port", str(port),
                             "--log-level", "error", "--lifespan", "on"],
                            env={**env, "PREFECT_UI_ENABLED": "1", "PREFECT_UI_STATIC_DIRECTORY": str(home() / "ui"),
                                 "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api"}, stdout=log,
                            stderr=subprocess.STDOUT, preexec_fn=die_with_parent)


def temporary_app():
    """The temporary server's app (uvicorn calls this in the server process): Prefect's API with an ephemeral
    server's services, and the Prefect UI mounted over it, so the run's link opens its page."""
    from prefect.server.api.server import create_app, create_ui_app  # deferred: runs in the server process only

    app = create_app(ephemeral=True)
    app.router.routes = [r for r in app.router.routes if getattr(r, "name", None) != "ui"]
    app.mount("/", create_ui_app(ephemeral=False), name="ui")
    return app


def _wait(proc: subprocess.Popen, url: str, log: Path, what: str) -> None:
    limit = startup_limit()
    print(f"starting {what} at {url} (database migrations, then the API; waiting up to {limit:.0f} s)",
          file=sys.stderr)
    deadline = time.monotonic() + limit
    while not healthy(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
            raise ServerDidNotStart(
                f"{what} {'exited' if proc.poll() not in (None, -9) else f'did not answer within {limit:.0f} s'} "
                f"(log: {log}){': ' + tail if tail else ''}\nOn a busy machine raise "
                f"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, keep one server with `ftscope server start`, "
                f"or set PREFECT_API_URL to a server of your own")
        time.sleep(0.3)


def kept_server() -> str | None:
    """The URL of the server `ftscope server start` left running, when it answers."""
    try:
        url = json.loads(_record().read_text())["url"]
    except (OSError, ValueError, KeyError):
        return None
    return url if healthy(url) else None


def start_server(port: int = 4200) -> str:
    """Start the kept server (or say where it already runs); returns its URL."""
    if url := kept_server():
        return url
    prefect_home = home() / "prefect"
    prefect_home.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}/api"
    if healthy(url):
        raise ServerDidNotStart(f"something else answers at {url}; choose another --port")
    proc = _spawn(prefect_home, port, temporary=False)
    _wait(proc, url, prefect_home / "server.log", "the ftscope Prefect server")
    _record().write_text(json.dumps({"url": url, "pid": proc.pid, "home": str(prefect_home)}))
    return url


def stop_server() -> str | None:
    """Stop the kept server; returns its URL, or None when none was running."""
    try:
        record = json.loads(_record().read_text())
    except (OSError, ValueError):
        return None
    try:
        os.killpg(record["pid"], signal.SIGTERM)
    except ProcessLookupError:
        pass
    _record().unlink(missing_ok=True)
    return record["url"]


@contextmanager
def local_api():
    """Yield the API URL for this process's flow runs (setting PREFECT_API_URL while it lasts). Call it
    before anything imports Prefect."""
    if os.environ.get("PREFECT_API_URL"):
        yield os.environ["PREFECT_API_URL"]
        return
    if url := kept_server():
        _drain()  # as below
        os.environ["PREFECT_API_URL"] = url
        try:
            yield url
        finally:
            _drain()
            os.environ.pop("PREFECT_API_URL", None)
        return
    tmp = Path(tempfile.mkdtemp(prefix="ftscope-prefect-"))
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    proc = _spawn(tmp, port, temporary=True)
    try:
        _wait(proc, url, tmp / "server.log", "a temporary Prefect server (`ftscope server start` keeps one)")
        _drain()  # Prefect keeps one events sender per process, whatever the URL: one left from another server goes
        os.environ["PREFECT_API_URL"] = url  # on sending this run's task runs there
        yield url
    finally:
        _drain()
        os.environ.pop("PREFECT_API_URL", None)
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def _drain() -> None:
    """Send the last log lines and events while the server is up: left queued, Prefect's exit hook retries
    them against a stopped server for about a minute."""
    if "prefect" not in sys.modules:
        return
    try:
        from prefect.events.worker import EventsWorker  # deferred: Prefect reads its settings on import
        from prefect.logging.handlers import APILogWorker  # deferred: as above

        APILogWorker.drain_all(timeout=5)
        EventsWorker.drain_all(timeout=5)
    except Exception as e:  # noqa: BLE001 -- logs are best effort; the store has the results
        print(f"(could not send the last log lines to the Prefect server: {e})", file=sys.stderr)
