"""The results store: one Parquet dataset per table under the study's results directory.

Every writer puts its rows in its own immutable file. On a filesystem the file is written in a
staging folder (`.staging/`, outside every table's glob) and renamed into place, so a crash leaves no
half file in a table; on an object store (s3://, gs://) a single-object upload is atomic by itself.
Readers see only rows of cells whose latest attempt is done: rows a killed cell wrote before its
`cells` row are never shown.
"""

import hashlib
import json
import os
import socket
import time
import uuid
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ftscope.faults import kill_point
from ftscope.locks import pid_alive

SCHEMA_VERSION = 3  # 3: the generation engine of mastery and cells rows, the machine of cells rows
STAGING = ".staging"
QUARANTINE = ".quarantine"


class DamagedStore(Exception):
    """Files of the store that cannot be read, by path, with what is wrong."""

    def __init__(self, store, files: dict[str, str]):
        self.files = files
        listing = "; ".join(f"{p} ({why})" for p, why in sorted(files.items())[:5])
        more = f" and {len(files) - 5} more" if len(files) > 5 else ""
        super().__init__(f"damaged files in the store: {listing}{more}. Run `ftscope repair {store.uri}`: it moves them "
                         f"to {QUARANTINE}/ and marks the work they held missing, so the next run redoes exactly that")

_s, _i, _f = pa.string(), pa.int64(), pa.float64()
_ts = pa.timestamp("us", tz="UTC")
SCHEMAS: dict[str, pa.Schema] = {
    "mastery": pa.schema([("model", _s), ("model_fp", _s), ("data_fp", _s), ("item_id", _s), ("relation", _s),
                          ("split", _s), ("domain", _s), ("exposure", _i), ("hits", _i), ("r", _f),
                          ("level", _i), ("n_map", _i), ("n_sample", _i), ("temperature", _f), ("engine", _s)]),
    "plan": pa.schema([("cell_id", _s), ("study", _s), ("kind", _s), ("label", _s), ("model", _s), ("method", _s),
                       ("variant", _s), ("axes", _s), ("seed", _i), ("parent_cell", _s)]),
    "cells": pa.schema([("cell_id", _s), ("study", _s), ("kind", _s), ("model", _s), ("method", _s),
                        ("variant", _s), ("axes", _s), ("params", _s), ("seed", _i), ("parent_cell", _s),
                        ("status", _s), ("error", _s), ("config", _s), ("started_at", _ts), ("finished_at", _ts),
                        ("duration_s", _f), ("train_s", _f), ("eval_s", _f), ("versions", _s), ("host", _s),
                        ("device", _s), ("threads", _i), ("engine", _s), ("machine", _s)]),
    # one row per cell x test dataset x domain x slice x prompt map x shots x metric; `total` is the sum
    # of the per-item values (the number correct, for a proportion), so any interval can be recomputed
    "metrics": pa.schema([("cell_id", _s), ("task", _s), ("dataset", _s), ("domain", _s), ("slice", _s), ("prompt_map", _i),
                          ("shots", _i), ("metric", _s), ("n", _i), ("total", _f), ("value", _f)]),
    # the per-item values behind `metrics` and `kl`, for paired and bootstrap intervals
    "scores": pa.schema([("cell_id", _s), ("task", _s), ("dataset", _s), ("domain", _s), ("slice", _s), ("prompt_map", _i),
                         ("shots", _i), ("metric", _s), ("item_id", _s), ("value", _f), ("prediction", _s)]),
    "kl": pa.schema([("cell_id", _s), ("dataset", _s), ("domain", _s), ("slice", _s), ("n", _i),
                     ("n_positions", _i), ("value", _f), ("direction", _s), ("positions", _s)]),
    "params": pa.schema([("cell_id", _s), ("scope", _s), ("matrix", _s), ("layer", _i), ("n_elements", _i),
                         ("n_zero_base", _i), ("mean_change", _f), ("sum_change", _f), ("top1_share", _f),
                         ("top5_share", _f), ("top10_share", _f), ("measure", _s), ("region", _s)]),
    # one row per flow run of a study, when it starts and when it ends
    "runs": pa.schema([("run_id", _s), ("study", _s), ("kind", _s), ("status", _s), ("config", _s),
                       ("started_at", _ts), ("finished_at", _ts), ("prefect_url", _s), ("host", _s), ("pid", _i),
                       ("versions", _s), ("message", _s)]),
    "restoration": pa.schema([("cell_id", _s), ("parent_cell", _s), ("k_percent", _f), ("strategy", _s),
                              ("matrix", _s), ("n_elements", _i), ("n_restored", _i), ("fraction_restored", _f),
                              ("threshold", _f), ("undone_share", _f)]),
}
SCHEMAS = {name: s.append(pa.field("schema_version", _i)) for name, s in SCHEMAS.items()}
CELL_TABLES = ("metrics", "scores", "kl", "params", "restoration")  # rows that belong to one cell attempt


class Store:
    def __init__(self, root: str):
        if "://" in root:
            try:  # s3://, gs://, hdfs://, file:// natively
                self.fs, self.root = pafs.FileSystem.from_uri(root)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # any other fsspec filesystem
                import fsspec  # deferred: only object stores pyarrow does not know need it

                protocol, path = root.split("://", 1)
                self.fs, self.root = pafs.PyFileSystem(pafs.FSSpecHandler(fsspec.filesystem(protocol))), path
            self.local = isinstance(self.fs, pafs.LocalFileSystem)
        else:
            self.fs, self.root, self.local = pafs.LocalFileSystem(), os.path.abspath(root), True
        self.uri = root

    def _dir(self, table: str) -> str:
        if table not in SCHEMAS:
            raise KeyError(f"unknown table {table!r}; tables: {sorted(SCHEMAS)}")
        return f"{self.root}/{table}"

    def write(self, table: str, key: str, rows: list[dict]) -> str:
        """Write rows as `<table>/<key>.parquet`, atomically; returns the path."""
        folder = self._dir(table)
        data = pa.Table.from_pylist([{**r, "schema_version": SCHEMA_VERSION} for r in rows], schema=SCHEMAS[table])
        self.fs.create_dir(folder, recursive=True)
        final = f"{folder}/{key}.parquet"
        if not self.local:  # an object store: one upload, visible only once complete
            with self.fs.open_output_stream(final) as out:
                pq.write_table(data, out)
            return final
        staging = f"{self.root}/{STAGING}"
        self.fs.create_dir(staging, recursive=True)
        tmp = f"{staging}/{table}.{key}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        with self.fs.open_output_stream(tmp) as out:
            pq.write_table(data, out)
        kill_point(f"store:{table}")
        self.fs.move(tmp, final)
        return final

    def sweep(self, older_than_s: float = 86400) -> list[str]:
        """Remove temporaries of writers that are gone: a dead process on this host, or any writer more
        than `older_than_s` ago. Returns what was removed."""
        if not self.local:
            return []
        info = self.fs.get_file_info(pafs.FileSelector(f"{self.root}/{STAGING}", allow_not_found=True))
        gone, host = [], socket.gethostname()
        for i in info:
            parts = i.base_name.rsplit(".", 4)  # table.key . host . pid . uuid . tmp
            dead = len(parts) == 5 and parts[1] == host and parts[2].isdigit() and not pid_alive(int(parts[2]))
            if dead or (i.mtime is not None and time.time() - i.mtime.timestamp() > older_than_s):
                self.fs.delete_file(i.path)
                gone.append(i.path)
        return gone

    def exists(self, table: str, key: str) -> bool:
        return self.fs.get_file_info(f"{self._dir(table)}/{key}.parquet").type == pafs.FileType.File

    def files(self, table: str) -> list[str]:
        info = self.fs.get_file_info(pafs.FileSelector(self._dir(table), allow_not_found=True))
        return sorted(i.path for i in info if i.path.endswith(".parquet") and not i.base_name.startswith("."))

    def state(self) -> str:
        """A fingerprint of the results the store holds (every file's name within the store, size and time, from
        a listing; the `runs` records aside): it changes whenever a writer adds or replaces one, so a saved report
        knows when it is stale, and stays when the whole store is moved or copied with its times."""
        blob = []
        for table in (t for t in SCHEMAS if t != "runs"):
            info = self.fs.get_file_info(pafs.FileSelector(self._dir(table), allow_not_found=True))
            blob += sorted(f"{table}/{i.base_name}:{i.size}:{i.mtime_ns}" for i in info if i.path.endswith(".parquet"))
        return hashlib.sha256("\n".join(blob).encode()).hexdigest()[:16]

    def keys(self, table: str) -> list[str]:
        return [f.rsplit("/", 1)[1][: -len(".parquet")] for f in self.files(table)]

    def read(self, table: str, done_only: bool = False) -> pa.Table:
        """The whole table (empty, with its schema, if nothing was written yet). `done_only`: for tables
        keyed by cell, only rows of cells whose latest attempt is done. A damaged file raises DamagedStore,
        which names it (`ftscope repair` moves it aside)."""
        files = self.files(table)
        if not files:
            return SCHEMAS[table].empty_table()
        try:
            t = ds.dataset(files, schema=SCHEMAS[table], filesystem=self.fs, format="parquet").to_table()
        except (pa.ArrowInvalid, OSError):
            raise DamagedStore(self, self.damaged([table]) or {files[0]: "unreadable"}) from None
        if done_only and table in CELL_TABLES:
            t = t.filter(pa.compute.is_in(t["cell_id"], pa.array(sorted(self.done_cells()), pa.string())))
        return t

    def done_cells(self) -> set[str]:
        return {cid for cid, r in self.latest_cells().items() if r["status"] == "done"}

    def read_key(self, table: str, key: str) -> pa.Table:
        path = f"{self._dir(table)}/{key}.parquet"
        try:
            with self.fs.open_input_file(path) as f:
                return pq.read_table(f, schema=SCHEMAS[table])
        except pa.ArrowInvalid as e:
            raise DamagedStore(self, {path: str(e)[:200]}) from None

    # -- damage: found, named, moved aside, redone ---------------------------------------------------

    def damaged(self, tables=None) -> dict[str, str]:
        """{file: what is wrong} for every Parquet file of the tables (all by default) that cannot be read:
        a truncated file (no footer), another schema, a file that is not Parquet."""
        out = {}
        for table in tables or SCHEMAS:
            for path in self.files(table):
                try:
                    with self.fs.open_input_file(path) as f:
                        schema = pq.read_schema(f)
                    missing = {n for n in SCHEMAS[table].names if n != "schema_version"} - set(schema.names)
                    if missing:
                        out[path] = f"not a {table} file (no column {sorted(missing)[0]!r})"
                except (pa.ArrowInvalid, OSError) as e:
                    out[path] = str(e).splitlines()[0][:200]
        return out

    def repair(self) -> list[str]:
        """Move every damaged file into `.quarantine/<table>/` and make the work it held missing again: a
        cell whose result file was damaged gets a `damaged` attempt, so the next run redoes exactly that
        cell; a damaged mastery file is scored again; a damaged cells file leaves its attempt out.
        Returns one line per file moved."""
        lines = []
        for path, problem in sorted(self.damaged().items()):
            table, name = path.rsplit("/", 2)[-2:]
            folder = f"{self.root}/{QUARANTINE}/{table}"
            self.fs.create_dir(folder, recursive=True)
            dest = f"{folder}/{name}.{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}"
            self.fs.move(path, dest)
            line = f"{path}: {problem}; moved to {dest}"
            if table in CELL_TABLES:
                cid = name[:-len(".parquet")]
                attempts = self.attempts(cid)
                if attempts:
                    self.write("cells", f"{cid}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}", [{
                        **attempts[-1], "status": "damaged", "finished_at": datetime.now(timezone.utc),
                        "error": f"its {table} file was damaged ({problem[:120]}) and moved to {dest}; the next run "
                                 f"redoes the cell"}])
                    line += f"; cell {cid} is marked damaged: the next run redoes it"
            lines.append(line)
        return lines

    def attempts(self, cid: str) -> list[dict]:
        """Every `cells` row of one cell, oldest first (reads only that cell's files)."""
        files = [f for f in self.files("cells") if f.rsplit("/", 1)[1].startswith(f"{cid}-")]
        rows = [r for f in files for r in self.read_key("cells", f.rsplit("/", 1)[1][:-len(".parquet")]).to_pylist()]
        return sorted(rows, key=lambda r: r["finished_at"])

    def latest_cells(self) -> dict[str, dict]:
        """The most recent attempt of every cell, by cell id."""
        latest: dict[str, dict] = {}
        for row in self.read("cells").to_pylist():
            prev = latest.get(row["cell_id"])
            if prev is None or row["finished_at"] > prev["finished_at"]:
                latest[row["cell_id"]] = row
        return latest

    def sql(self, query: str, params: list | None = None):
        """DuckDB SQL over the store, with `?` placeholders bound to `params` (never paste a value into the
        query). Views: every table by name, where tables keyed by cell hold only rows of cells whose latest
        attempt is done; `cells`: the latest attempt of every cell, with its axes and variant settings as
        columns (level, n, train, size, strategy, k_percent, shots...); `attempts`: every `cells` row."""
        import duckdb  # deferred: only SQL over the store needs it (a GPU check carries no wheel of it)

        con = duckdb.connect()
        attempts = self.read("cells")
        done = pa.array(sorted(self.done_cells()), pa.string())
        for name in SCHEMAS:
            t = attempts if name == "cells" else self.read(name)
            if name in CELL_TABLES:
                t = t.filter(pa.compute.is_in(t["cell_id"], done))
            con.register("attempts" if name == "cells" else name, t)
        types: dict[str, set] = {}
        for r in attempts.select(["axes", "params"]).to_pylist():
            for k, v in {**json.loads(r["params"] or "{}"), **json.loads(r["axes"] or "{}")}.items():
                types.setdefault(k, set()).add(type(v))
        flat = ""
        for k, ts in sorted(types.items()):
            if ts <= {int, float}:
                typ = "BIGINT" if ts == {int} else "DOUBLE"
                flat += f", CAST(coalesce(json_extract(axes, '$.{k}'), json_extract(params, '$.{k}')) AS {typ}) AS \"{k}\""
            else:
                flat += f", coalesce(json_extract_string(axes, '$.{k}'), json_extract_string(params, '$.{k}')) AS \"{k}\""
        con.sql(f"CREATE VIEW cells AS SELECT *{flat} FROM attempts "
                "QUALIFY row_number() OVER (PARTITION BY cell_id ORDER BY finished_at DESC) = 1")
        return con.sql(query, params=params)
