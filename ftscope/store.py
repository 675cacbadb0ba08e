"""The results store: one Parquet dataset per table under the study's results directory.

Every writer puts its rows in its own immutable file, `<table>/<key>.parquet` (a cell's id, a cell attempt, a
model's mastery). On a filesystem the file is written in a staging folder (`.staging/`, outside every table's
glob) and renamed into place, so a crash leaves no half file in a table; on an object store (s3://, gs://) a
single-object upload is atomic by itself. Readers see only rows of cells whose latest attempt is done: rows a
killed cell wrote before its `cells` row are never shown.

At paper scale (4,145 cells) one file per cell and table is tens of thousands of files: `compact` merges the small
files of finished cells into one file per table, `~compacted-<time>-<id>.parquet`, its rows sorted by key, each
with its key (`_key`; the keys also in the file's metadata and in a `.keys.json` beside it, so a damaged one still
says which cells it held). A key's rows come from its own small file when there is one (written after the
compaction, or left by a compaction killed before it deleted them), else from the newest compacted file that
holds it: a crash anywhere in a compaction changes nothing any reader sees. Readers take only the columns and the
cells they ask for (row groups of a compacted file are skipped by their statistics).

A Store lists a table's files each time it reads it (one listing; a compacted file's key list is read once, as a
compacted file is never rewritten under its name), so a long-lived Store sees what other processes write. A
`snapshot` Store lists each table once and reads that state throughout: one consistent view, and on an object
store one listing per table for a whole report.
"""

import bisect
import hashlib
import json
import os
import socket
import threading
import time
import uuid
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ftscope.faults import kill_point
from ftscope.locks import exclusive, pid_alive
from ftscope.records import TABLES, schema

SCHEMA_VERSION = 3  # 3: the generation engine of mastery and cells rows, the machine of cells rows
STAGING = ".staging"
QUARANTINE = ".quarantine"
COMPACTED = "~compacted-"  # no key starts with "~": study, model and run names cannot, cell ids are hex
KEY = "_key"
ROW_GROUP = 32_768  # rows per row group of a compacted file: a cell's rows are read without its neighbours'



class DamagedStore(Exception):
    """Files of the store that cannot be read, by path, with what is wrong."""

    def __init__(self, store, files: dict[str, str]):
        self.files = files
        listing = "; ".join(f"{p} ({why})" for p, why in sorted(files.items())[:5])
        more = f" and {len(files) - 5} more" if len(files) > 5 else ""
        super().__init__(f"damaged files in the store: {listing}{more}. Run `ftscope repair {store.uri}`: it moves them "
                         f"to {QUARANTINE}/ and marks the work they held missing, so the next run redoes exactly that")

# each table's columns: its record type (ftscope/records.py), then the schema version its file was written under
SCHEMAS: dict[str, pa.Schema] = {name: schema(record).append(pa.field("schema_version", pa.int64()))
                                 for name, record in TABLES.items()}
CELL_TABLES = ("metrics", "scores", "kl", "params", "restoration", "general")  # rows that belong to one cell attempt


class Store:
    def __init__(self, root: str, snapshot: bool = False):
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
        self.snapshot = snapshot
        self._layout: dict[str, "Layout"] = {}  # the last listing of each table (reused as is by a snapshot)
        self._footers: dict[str, tuple[str, ...]] = {}  # compacted file -> the keys it holds
        self._latest: tuple[str, dict[str, dict]] | None = None  # (the cells listing's stamp, latest attempts)
        self._lock = threading.Lock()

    def _dir(self, table: str) -> str:
        if table not in SCHEMAS:
            raise KeyError(f"unknown table {table!r}; tables: {sorted(SCHEMAS)}")
        return f"{self.root}/{table}"

    def _changed(self, table: str) -> None:
        with self._lock:
            self._layout.pop(table, None)

    def write(self, table: str, key: str, rows: "list[dict] | pa.Table") -> str:
        """Write rows (dicts, or a table of the columns without `schema_version`) as `<table>/<key>.parquet`,
        atomically; returns the path."""
        folder = self._dir(table)
        if isinstance(rows, pa.Table):
            data = rows.append_column("schema_version", pa.array([SCHEMA_VERSION] * len(rows), pa.int64()))
            data = data.select(SCHEMAS[table].names).cast(SCHEMAS[table])
        else:
            data = pa.Table.from_pylist([{**r, "schema_version": SCHEMA_VERSION} for r in rows], schema=SCHEMAS[table])
        final = self._put(folder, f"{key}.parquet", lambda out: pq.write_table(data, out), f"store:{table}")
        self._changed(table)
        return final

    def _put(self, folder: str, name: str, write, point: str) -> str:
        """Write one file atomically: staged and renamed on a filesystem, one upload on an object store."""
        self.fs.create_dir(folder, recursive=True)
        final = f"{folder}/{name}"
        if not self.local:  # an object store: one upload, visible only once complete
            with self.fs.open_output_stream(final) as out:
                write(out)
            return final
        staging = f"{self.root}/{STAGING}"
        self.fs.create_dir(staging, recursive=True)
        tmp = f"{staging}/{folder.rsplit('/', 1)[-1]}.{name}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        with self.fs.open_output_stream(tmp) as out:
            write(out)
        kill_point(point)
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

    # -- what a table's files hold -------------------------------------------------------------------

    def layout(self, table: str) -> "Layout":
        """The table's small files by key and its compacted files with the keys each holds: one listing (a
        snapshot's first listing, until it writes to the table), and the footer of each compacted file once."""
        with self._lock:
            if self.snapshot and table in self._layout:
                return self._layout[table]
        info = self.fs.get_file_info(pafs.FileSelector(self._dir(table), allow_not_found=True))
        small, compacted, stamp, sizes = {}, [], hashlib.sha256(), {}
        for i in sorted(info, key=lambda i: i.base_name):
            if not i.base_name.endswith(".parquet") or i.base_name.startswith("."):
                continue
            stamp.update(f"{i.base_name}:{i.size}:{i.mtime_ns}\n".encode())
            sizes[i.path] = i.size
            if i.base_name.startswith(COMPACTED):
                if i.path not in self._footers:
                    self._footers[i.path] = self._compacted_keys(i.path)
                compacted.append((i.path, self._footers[i.path]))
            else:
                small[i.base_name[:-len(".parquet")]] = i.path
        layout = Layout(small, compacted, stamp.hexdigest(), sizes)
        with self._lock:
            self._layout[table] = layout
        return layout

    def _compacted_keys(self, path: str) -> tuple[str, ...]:
        """The keys a compacted file holds: from its footer, else (a damaged file) from the list beside it."""
        try:
            with self.fs.open_input_file(path) as f:
                meta = pq.read_schema(f).metadata or {}
            return tuple(json.loads(meta[b"ftscope_keys"]))
        except (pa.ArrowInvalid, OSError, KeyError, ValueError):
            try:
                with self.fs.open_input_stream(path[:-len(".parquet")] + ".keys.json") as f:
                    return tuple(json.loads(f.read()))
            except (OSError, ValueError):
                return ()

    def _dataset(self, paths: list[str], schema: pa.Schema, sizes: dict[str, int]) -> ds.Dataset:
        """Parquet files as one dataset, their sizes taken from the listing: on an object store each file then
        costs its reads (the footer, the columns), not also a request for its size."""
        fmt = ds.ParquetFileFormat()
        return ds.FileSystemDataset([fmt.make_fragment(p, self.fs, file_size=sizes.get(p)) for p in paths], schema,
                                    fmt, self.fs)

    def files(self, table: str) -> list[str]:
        layout = self.layout(table)
        return sorted(list(layout.small.values()) + [p for p, _ in layout.compacted])

    def exists(self, table: str, key: str) -> bool:
        return key in self.layout(table).small or self.layout(table).holder(key) is not None

    def keys(self, table: str) -> list[str]:
        layout = self.layout(table)
        return sorted(set(layout.small) | {k for _, keys in layout.compacted for k in keys})

    def state(self) -> str:
        """A fingerprint of the results the store holds (every file's name within the store, size and time, from
        a listing; the `runs` records aside): it changes whenever a writer adds or replaces one, so a saved report
        knows when it is stale, and stays when the whole store is moved or copied with its times."""
        blob = []
        for table in (t for t in SCHEMAS if t != "runs"):
            info = self.fs.get_file_info(pafs.FileSelector(self._dir(table), allow_not_found=True))
            blob += sorted(f"{table}/{i.base_name}:{i.size}:{i.mtime_ns}" for i in info if i.path.endswith(".parquet"))
        return hashlib.sha256("\n".join(blob).encode()).hexdigest()[:16]

    # -- reading ---------------------------------------------------------------------------------------

    def read(self, table: str, done_only: bool = False, columns: list[str] | None = None,
             cells: list[str] | set[str] | None = None) -> pa.Table:
        """The table (empty, with its schema, if nothing was written yet): only `columns` when given, and for tables
        keyed by cell only the rows of `cells` when given. `done_only`: for tables keyed by cell, only rows of cells
        whose latest attempt is done. A damaged file raises DamagedStore, which names it (`ftscope repair` moves it
        aside)."""
        schema = SCHEMAS[table]
        cols = list(columns) if columns is not None else schema.names
        wanted = None if cells is None else set(cells)
        if done_only and table in CELL_TABLES:
            done = self.done_cells()
            wanted = done if wanted is None else wanted & done
        keyed = table in CELL_TABLES  # keys are cell ids
        for listing in (1, 2):
            layout = self.layout(table)
            small = [p for k, p in layout.small.items() if not keyed or wanted is None or k in wanted]
            try:
                parts = self._parts(layout, schema, cols, small, wanted if keyed else None)
                break
            except FileNotFoundError:  # a compaction merged files since the listing: list again, once
                if listing == 2:
                    raise
                self._changed(table)
            except (pa.ArrowInvalid, OSError):
                if listing == 1:  # a file rewritten since it was listed (another size): list again, once
                    self._changed(table)
                    continue
                raise DamagedStore(self, self.damaged([table]) or {(small or self.files(table) or ["?"])[0]: "unreadable"}) \
                    from None
        t = pa.concat_tables(parts) if parts else schema.empty_table().select(cols)
        if wanted is not None and table in CELL_TABLES and not keyed:
            t = t.filter(pc.is_in(t["cell_id"], pa.array(sorted(wanted), pa.string())))
        return t

    def _parts(self, layout: "Layout", schema: pa.Schema, cols: list[str], small: list[str], wanted) -> list[pa.Table]:
        """The rows of the listed small files, and of the keys each compacted file holds for `wanted` (all: None)."""
        parts = []
        if small:
            parts.append(self._dataset(small, schema, layout.sizes).to_table(columns=cols))
        for path, keys in layout.compacted:
            mine = layout.owned(path, keys)
            if wanted is not None:
                mine = [k for k in mine if k in wanted]
            if not mine:
                continue
            if len(mine) == len(keys):
                parts.append(self._dataset([path], schema.append(pa.field(KEY, pa.string())), layout.sizes)
                             .to_table(columns=cols))
            else:
                parts.append(self._read_keys(path, schema, cols, mine, layout.sizes))
        return parts

    def _read_keys(self, path: str, schema: pa.Schema, cols: list[str], keys: list[str],
                   sizes: dict[str, int]) -> pa.Table:
        """The rows of `keys` in a compacted file, reading only the row groups whose key range holds one of them
        (the file is sorted by key): a few cells' rows cost their own row groups, not the file."""
        keys, full = sorted(keys), schema.append(pa.field(KEY, pa.string()))
        (whole,) = self._dataset([path], full, sizes).get_fragments()
        if not set(cols) <= set(whole.physical_schema.names):  # an older schema: let the dataset fill the gaps
            return self._dataset([path], full, sizes).to_table(columns=cols, filter=pc.field(KEY).isin(keys))
        groups = key_row_groups(whole, keys)
        if not groups:
            return schema.empty_table().select(cols)
        t = whole.subset(row_group_ids=groups).to_table(schema=full, columns=[*cols, KEY])
        t = t.filter(pc.is_in(t[KEY], pa.array(keys, pa.string()))).select(cols)
        return t.cast(pa.schema([schema.field(c) for c in cols]))

    def done_cells(self) -> set[str]:
        return {cid for cid, r in self.latest_cells().items() if r["status"] == "done"}

    def read_key(self, table: str, key: str) -> pa.Table:
        """The rows written under one key: its small file, or its rows in the compacted file that holds it."""
        for listing in (1, 2):
            layout = self.layout(table)
            path = layout.small.get(key)
            try:
                if path is not None:
                    return self._dataset([path], SCHEMAS[table], layout.sizes).to_table()
                if (holder := layout.holder(key)) is None:
                    raise FileNotFoundError(f"{self._dir(table)}/{key}.parquet")
                path = holder
                return self._read_keys(holder, SCHEMAS[table], SCHEMAS[table].names, [key], layout.sizes)
            except FileNotFoundError:  # merged by a compaction since the listing: list again, once
                if listing == 2:
                    raise
                self._changed(table)
            except pa.ArrowInvalid as e:
                raise DamagedStore(self, {path: str(e)[:200]}) from None

    def attempts(self, cid: str) -> list[dict]:
        """Every `cells` row of one cell, oldest first (reads only that cell's files, or rows)."""
        keys = [k for k in self.keys("cells") if k.startswith(f"{cid}-")]
        rows = [r for k in keys for r in self.read_key("cells", k).to_pylist()]
        return sorted(rows, key=lambda r: r["finished_at"])

    def latest_cells(self) -> dict[str, dict]:
        """The most recent attempt of every cell, by cell id (computed again only when the `cells` files change)."""
        stamp = self.layout("cells").stamp
        with self._lock:
            if self._latest is not None and self._latest[0] == stamp:
                return self._latest[1]
        latest: dict[str, dict] = {}
        for row in self.read("cells").to_pylist():
            prev = latest.get(row["cell_id"])
            if prev is None or row["finished_at"] > prev["finished_at"]:
                latest[row["cell_id"]] = row
        with self._lock:
            self._latest = (stamp, latest)
        return latest

    # -- compaction ------------------------------------------------------------------------------------

    def compact(self, tables=None, min_files: int = 2) -> list[str]:
        """Merge the small files of finished work into one file per table: every `cells`, `mastery` and `runs`
        file, and the result files of cells whose latest attempt is done or not run (a cell that runs, or may run
        again, keeps its files small). The merged file is written whole before any small file is deleted, a small
        file changed since it was read is left in place, and a small file always wins over a compacted copy of its
        key: a compaction killed anywhere loses nothing and doubles nothing, and writers may go on meanwhile. One
        compaction at a time per store (a lock beside it on a filesystem). A table with fewer than `min_files` such
        files is left as it is. Returns one line per table merged."""
        lines = []
        lock = f"{self.root}/.compact.lock"
        if self.local:
            os.makedirs(self.root, exist_ok=True)
        with exclusive(Path(lock)) if self.local else nullcontext():
            finished = {cid for cid, r in self.latest_cells().items() if r["status"] in ("done", "not_run")}
            for table in tables or [t for t in SCHEMAS if t != "plan"]:
                layout = self.layout(table)
                keys = sorted(k for k in layout.small if table not in CELL_TABLES or k in finished)
                if len(keys) < max(min_files, 2):
                    continue
                lines.append(self._compact(table, keys, layout))
        return lines

    def _compact(self, table: str, keys: list[str], layout: "Layout") -> str:
        schema = SCHEMAS[table]
        seen = {i.path: (i.size, i.mtime_ns) for i in self.fs.get_file_info([layout.small[k] for k in keys])}
        parts = []
        for k in keys:
            with self.fs.open_input_file(layout.small[k]) as f:
                t = pq.read_table(f, schema=schema)
            parts.append(t.append_column(KEY, pa.array([k] * len(t), pa.string())))
        merged = pa.concat_tables(parts)
        merged = merged.replace_schema_metadata({**(schema.metadata or {}), b"ftscope_keys": json.dumps(keys).encode()})
        name = f"{COMPACTED}{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}"
        folder = self._dir(table)
        self._put(folder, f"{name}.keys.json", lambda out: out.write(json.dumps(keys).encode()), f"compact:{table}:keys")
        self._put(folder, f"{name}.parquet", lambda out: pq.write_table(merged, out, row_group_size=ROW_GROUP),
                  f"compact:{table}")
        kill_point(f"compact:{table}:written")
        now = {i.path: (i.size, i.mtime_ns) for i in self.fs.get_file_info([layout.small[k] for k in keys])}
        for k in keys:
            if now[layout.small[k]] == seen[layout.small[k]]:  # rewritten meanwhile: the new small file wins
                self.fs.delete_file(layout.small[k])
        self._changed(table)
        return f"{table}: {len(keys):,} files -> {name}.parquet ({len(merged):,} rows)"

    # -- damage: found, named, moved aside, redone ---------------------------------------------------

    def damaged(self, tables=None) -> dict[str, str]:
        """{file: what is wrong} for every Parquet file of the tables (all by default) that cannot be read:
        a truncated file (no footer), another schema, a file that is not Parquet."""
        out = {}
        for table in tables or SCHEMAS:
            self._changed(table)  # the files as they are now, with their sizes: each costs one read of its footer
            sizes = self.layout(table).sizes
            for path in self.files(table):
                try:
                    (fragment,) = self._dataset([path], SCHEMAS[table], sizes).get_fragments()
                    schema = fragment.physical_schema
                    missing = {n for n in SCHEMAS[table].names if n != "schema_version"} - set(schema.names)
                    if missing:
                        out[path] = f"not a {table} file (no column {sorted(missing)[0]!r})"
                except (pa.ArrowInvalid, OSError) as e:
                    out[path] = str(e).splitlines()[0][:200]
        return out

    def repair(self) -> list[str]:
        """Move every damaged file into `.quarantine/<table>/` and make the work it held missing again: a
        cell whose result file was damaged gets a `damaged` attempt, so the next run redoes exactly that
        cell (every cell a damaged compacted file held); a damaged mastery file is scored again; a damaged cells
        file leaves its attempts out. Returns one line per file moved."""
        lines = []
        for path, problem in sorted(self.damaged().items()):
            table, name = path.rsplit("/", 2)[-2:]
            keys = self._compacted_keys(path) if name.startswith(COMPACTED) else (name[:-len(".parquet")],)
            folder = f"{self.root}/{QUARANTINE}/{table}"
            self.fs.create_dir(folder, recursive=True)
            dest = f"{folder}/{name}.{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}"
            self.fs.move(path, dest)
            self._changed(table)
            line = f"{path}: {problem}; moved to {dest}"
            marked = []
            for cid in keys if table in CELL_TABLES else ():
                attempts = self.attempts(cid)
                if attempts:
                    self.write("cells", f"{cid}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}", [{
                        **attempts[-1], "status": "damaged", "finished_at": datetime.now(timezone.utc),
                        "error": f"its {table} file was damaged ({problem[:120]}) and moved to {dest}; the next run "
                                 f"redoes the cell"}])
                    marked.append(cid)
            if len(marked) == 1:
                line += f"; cell {marked[0]} is marked damaged: the next run redoes it"
            elif marked:
                line += f"; {len(marked)} cells are marked damaged: the next run redoes them"
            lines.append(line)
        return lines

    # -- SQL -------------------------------------------------------------------------------------------

    def sql(self, query: str, params: list | None = None):
        """DuckDB SQL over the store, with `?` placeholders bound to `params` (never paste a value into the
        query). Views: every table by name, where tables keyed by cell hold only rows of cells whose latest
        attempt is done; `cells`: the latest attempt of every cell, with its axes and variant settings as
        columns (level, n, train, size, strategy, k_percent, shots...); `attempts`: every `cells` row. Each view
        scans the table's files when a query reads it, taking only the columns and rows the query asks for."""
        import duckdb  # deferred: only SQL over the store needs it (a GPU check carries no wheel of it)

        con = duckdb.connect()
        attempts = self.read("cells")
        con.register("attempts", attempts)
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
        con.register("done_ids", pa.table({"cell_id": pa.array(sorted(self.done_cells()), pa.string())}))
        for name in (t for t in SCHEMAS if t != "cells"):
            self._view(con, name)
        return con.sql(query, params=params)

    def _view(self, con, table: str) -> None:
        """`table` as a DuckDB view over its files: small ones, and the rows of compacted ones no small file
        shadows; for tables keyed by cell, only rows of done cells."""
        layout, schema = self.layout(table), SCHEMAS[table]
        selects = []
        if layout.small:
            con.register(f"_{table}_small", self._dataset(list(layout.small.values()), schema, layout.sizes))
            selects.append(f"SELECT * FROM _{table}_small")
        for i, (path, keys) in enumerate(layout.compacted):
            mine = layout.owned(path, keys)
            if not mine:
                continue
            con.register(f"_{table}_c{i}", self._dataset([path], schema.append(pa.field(KEY, pa.string())),
                                                         layout.sizes))
            if len(mine) == len(keys):
                selects.append(f"SELECT * EXCLUDE ({KEY}) FROM _{table}_c{i}")
            else:
                con.register(f"_{table}_k{i}", pa.table({"k": pa.array(mine, pa.string())}))
                selects.append(f"SELECT * EXCLUDE ({KEY}) FROM _{table}_c{i} WHERE {KEY} IN (SELECT k FROM _{table}_k{i})")
        if not selects:
            con.register(f"_{table}_empty", schema.empty_table())
            selects.append(f"SELECT * FROM _{table}_empty")
        body = " UNION ALL ".join(selects)
        if table in CELL_TABLES:
            body = f"SELECT * FROM ({body}) WHERE cell_id IN (SELECT cell_id FROM done_ids)"
        con.sql(f"CREATE VIEW {table} AS {body}")


def key_row_groups(fragment: ds.ParquetFileFragment, keys: list[str]) -> list[int]:
    """The row groups of a compacted file whose key range (min and max of `_key`) holds one of `keys` (sorted)."""
    groups = []
    for g in fragment.row_groups:
        stats = g.statistics.get(KEY)  # {"min": ..., "max": ...} when the writer kept them
        first = bisect.bisect_left(keys, stats["min"]) if stats else 0
        if not stats or (first < len(keys) and keys[first] <= stats["max"]):
            groups.append(g.id)
    return groups


class Layout:
    """A table's files: `small` (key -> its own file) and `compacted` ((file, the keys it holds), oldest first)."""

    def __init__(self, small: dict[str, str], compacted: list[tuple[str, tuple[str, ...]]], stamp: str = "",
                 sizes: dict[str, int] | None = None):
        self.small, self.compacted, self.stamp = small, compacted, stamp  # stamp: names, sizes and times listed
        self.sizes = sizes or {}  # file -> its size when listed: a reader need not ask for it (on S3, a HEAD)
        self._holder: dict[str, str] = {}
        for path, keys in compacted:  # the newest compacted file that holds a key is its holder
            for k in keys:
                self._holder[k] = path

    def holder(self, key: str) -> str | None:
        """The compacted file whose rows of `key` count (none when the key has a small file)."""
        return None if key in self.small else self._holder.get(key)

    def owned(self, path: str, keys) -> list[str]:
        """The keys of compacted file `path` whose rows count there."""
        return [k for k in keys if k not in self.small and self._holder.get(k) == path]

