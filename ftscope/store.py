"""The results store: one Parquet dataset per table under the study's results directory.

Every writer puts its rows in its own immutable file, written under a hidden temporary name and
renamed into place, so any number of workers can write at once and a crash leaves no half file.
The root may be a local path or any URL pyarrow understands (s3://, gs://, hdfs://).
"""

import uuid

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

SCHEMA_VERSION = 1

_s, _i, _f, _b = pa.string(), pa.int64(), pa.float64(), pa.bool_()
SCHEMAS: dict[str, pa.Schema] = {
    "mastery": pa.schema([("model", _s), ("model_fp", _s), ("data_fp", _s), ("item_id", _s), ("relation", _s),
                          ("split", _s), ("domain", _s), ("exposure", _i), ("hits", _i), ("r", _f),
                          ("level", _i), ("n_map", _i), ("n_sample", _i), ("temperature", _f)]),
    "cells": pa.schema([("cell_id", _s), ("study", _s), ("model", _s), ("level", _s), ("n_samples", _i),
                        ("method", _s), ("variant", _s), ("seed", _i), ("parent_cell", _s), ("status", _s),
                        ("error", _s), ("config", _s), ("started_at", pa.timestamp("us", tz="UTC")),
                        ("finished_at", pa.timestamp("us", tz="UTC")), ("duration_s", _f), ("train_s", _f),
                        ("eval_s", _f), ("versions", _s)]),
    "plan": pa.schema([("cell_id", _s), ("study", _s), ("label", _s), ("model", _s), ("level", _s),
                       ("n_samples", _i), ("method", _s), ("seed", _i)]),
    "metrics": pa.schema([("cell_id", _s), ("split", _s), ("test_level", _i), ("n_items", _i),
                          ("n_correct", _i), ("accuracy", _f)]),
    "kl": pa.schema([("cell_id", _s), ("split", _s), ("test_level", _i), ("n_items", _i), ("n_positions", _i),
                     ("kl_mean", _f), ("direction", _s), ("positions", _s)]),
    "params": pa.schema([("cell_id", _s), ("scope", _s), ("matrix", _s), ("layer", _i), ("n_elements", _i),
                         ("mean_change", _f), ("sum_change", _f), ("top1_share", _f), ("top5_share", _f),
                         ("top10_share", _f), ("measure", _s), ("region", _s)]),
    "restoration": pa.schema([("cell_id", _s), ("parent_cell", _s), ("k_percent", _f), ("strategy", _s),
                              ("matrix", _s), ("n_elements", _i), ("n_restored", _i), ("fraction_restored", _f),
                              ("threshold", _f), ("undone_share", _f)]),
}
SCHEMAS = {name: s.append(pa.field("schema_version", _i)) for name, s in SCHEMAS.items()}


class Store:
    def __init__(self, root: str):
        if "://" in root:
            self.fs, self.root = pafs.FileSystem.from_uri(root)
        else:
            import os
            self.fs, self.root = pafs.LocalFileSystem(), os.path.abspath(root)
        self.uri = root

    def _dir(self, table: str) -> str:
        if table not in SCHEMAS:
            raise KeyError(f"unknown table {table!r}; tables: {sorted(SCHEMAS)}")
        return f"{self.root}/{table}"

    def write(self, table: str, key: str, rows: list[dict]) -> str:
        """Write rows as `<table>/<key>.parquet`, atomically; returns the path."""
        folder = self._dir(table)
        rows = [{**r, "schema_version": SCHEMA_VERSION} for r in rows]
        data = pa.Table.from_pylist(rows, schema=SCHEMAS[table])
        self.fs.create_dir(folder, recursive=True)
        final, tmp = f"{folder}/{key}.parquet", f"{folder}/.{key}.{uuid.uuid4().hex[:8]}.parquet.tmp"
        with self.fs.open_output_stream(tmp) as out:
            pq.write_table(data, out)
        self.fs.move(tmp, final)
        return final

    def exists(self, table: str, key: str) -> bool:
        return self.fs.get_file_info(f"{self._dir(table)}/{key}.parquet").type == pafs.FileType.File

    def files(self, table: str) -> list[str]:
        info = self.fs.get_file_info(pafs.FileSelector(self._dir(table), allow_not_found=True))
        return sorted(i.path for i in info if i.path.endswith(".parquet") and not i.base_name.startswith("."))

    def keys(self, table: str) -> list[str]:
        return [f.rsplit("/", 1)[1][: -len(".parquet")] for f in self.files(table)]

    def read(self, table: str, filter=None) -> pa.Table:
        """The whole table (empty, with its schema, if nothing was written yet)."""
        files = self.files(table)
        if not files:
            return SCHEMAS[table].empty_table()
        return ds.dataset(files, schema=SCHEMAS[table], filesystem=self.fs, format="parquet").to_table(filter=filter)

    def read_key(self, table: str, key: str) -> pa.Table:
        with self.fs.open_input_file(f"{self._dir(table)}/{key}.parquet") as f:
            return pq.read_table(f, schema=SCHEMAS[table])

    def sql(self, query: str):
        """Run DuckDB SQL with every table available as a view of the same name."""
        import duckdb

        con = duckdb.connect()
        for name in SCHEMAS:
            con.register(name, self.read(name))
        return con.sql(query)

    def latest_cells(self) -> dict[str, dict]:
        """The most recent attempt of every cell, by cell id."""
        latest: dict[str, dict] = {}
        for row in self.read("cells").to_pylist():
            prev = latest.get(row["cell_id"])
            if prev is None or row["finished_at"] > prev["finished_at"]:
                latest[row["cell_id"]] = row
        return latest
