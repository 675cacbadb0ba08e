"""Real services for the cluster tests: PostgreSQL (Debian's packages) in a throwaway data directory,
and `prefect server start` on loopback backed by it (SQLite, with the reason, when PostgreSQL cannot
start). Not a test module: conftest.py builds fixtures from these."""

import glob
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent


def gone(pid: int, timeout_s: float = 30) -> bool:
    """Wait (blocking on a pidfd, no sleep) until process `pid`, ours or not, has exited."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout_s)[0])
    finally:
        os.close(fd)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_postgres() -> tuple[str | None, str, callable]:
    """(SQLAlchemy URL or None, why not, stop function)."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        return None, "PostgreSQL is not installed (.ci/run installs Debian's postgresql)", lambda: None
    bindir = Path(bins[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="ftscope-pg-"))
    root.chmod(0o755)
    as_postgres = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: as its own system user
        shutil.chown(root, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()

    def pg(*cmd, **kw):
        return subprocess.run(as_postgres + list(cmd), capture_output=True, text=True, timeout=120, **kw)

    steps = [pg(str(bindir / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres", "-E", "UTF8")]
    if steps[-1].returncode == 0:
        steps.append(pg(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-t", "60", "-o",
                        f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"))
    if steps[-1].returncode == 0:
        steps.append(pg(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "prefect"))

    def stop():
        pg(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop")
        shutil.rmtree(root, ignore_errors=True)

    if steps[-1].returncode != 0:
        stop()
        return None, f"PostgreSQL did not start: {(steps[-1].stderr or steps[-1].stdout).strip()[-300:]}", lambda: None
    return f"postgresql+asyncpg://postgres@127.0.0.1:{port}/prefect", "", stop


@contextmanager
def server_client(server: dict):
    """A sync Prefect client of `server` (as start_prefect_server returns it), whatever PREFECT_API_URL says."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: server["url"]}), get_client(sync_client=True) as client:
        yield client


def start_prefect_server(home: Path, ui: bool = False, log_level: str = "WARNING") -> dict:
    """A Prefect server on loopback; returns {url, env, backend, why, stop, pid}. `ui`: serve the UI too;
    `log_level` INFO also logs every API request (the benchmarks count them)."""
    db, why, stop_db = start_postgres()
    if db is None:
        db, backend = f"sqlite+aiosqlite:///{home}/prefect.db", "sqlite"
    else:
        backend = "postgresql"
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_DATABASE_CONNECTION_URL": db,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "PREFECT_UI_ENABLED": str(ui).lower(),
           "PREFECT_SERVER_LOGGING_LEVEL": log_level}
    env.pop("PREFECT_API_URL", None)
    if ui:  # the UI's pages call the API at this address (default: port 4200)
        env["PREFECT_UI_API_URL"] = f"http://127.0.0.1:{port}/api"
    log = open(home / "server.log", "w")
    proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"
    for _ in range(240):
        try:
            if urllib.request.urlopen(f"{url}/health", timeout=2).status == 200:
                break
        except OSError:
            time.sleep(0.5)
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited: {(home / 'server.log').read_text()[-2000:]}")
    else:
        raise RuntimeError(f"prefect server did not answer within 120 s: {(home / 'server.log').read_text()[-2000:]}")

    def stop():
        try:
            os.killpg(proc.pid, 15)
            proc.wait(30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, 9)
        stop_db()

    client_env = {**os.environ, "PREFECT_API_URL": url, "DO_NOT_TRACK": "1", "PREFECT_HOME": str(home),
                  "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    return {"url": url, "env": client_env, "backend": backend, "why": why, "stop": stop, "home": home,
            "pid": proc.pid}
