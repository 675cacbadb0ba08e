"""Reports, from the Parquet store alone: `results` (the one model of a study's numbers), `render` (text
tables, verdicts, README block, HTML page), `status` (every planned cell's state), `figures` and `page`
(drawing and the self-contained HTML)."""
