"""The `ftscope` command: run, validate, status, report, results, submit, retry. Each command imports what it
uses when it runs (`ftscope --help` imports nothing heavy; `status` no model code), so every import below
sits in the command that needs it."""

import argparse
import os
import sys


def _validate_or_exit(config: str, results: str | None, calibrate: bool = False):
    from ftscope.validate import validate  # deferred: see the module docstring

    cfg, problems, notes = validate(config, results, calibrate)
    for n in notes:
        print(n)
    if problems:
        print(f"{config}: {len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        sys.exit(2)
    return cfg


def cmd_validate(args) -> int:
    _validate_or_exit(args.config, args.results, args.calibrate)
    print("config OK")
    return 0


def cmd_run(args) -> int:
    cfg = _validate_or_exit(args.config, args.results)
    from flows.server import ServerDidNotStart, local_api  # deferred: see the module docstring

    try:
        with local_api():
            from flows.study import study  # deferred: see the module docstring

            state = study(config_path=args.config, results_dir=args.results, validated=True, return_state=True)
    except ServerDidNotStart as e:
        print(e, file=sys.stderr)
        return 1
    from ftscope.report.render import build_report, report_text  # deferred: see the module docstring
    from ftscope.store import Store  # deferred: see the module docstring

    store = Store(cfg.results_dir)
    # a completed flow returns the text its report task wrote; after a failure, read it from the store
    text = state.result() if state.is_completed() else report_text(store, cfg.study)
    print("\n" + text)
    page = build_report(store, args.report, cfg.study) if args.report else (
        os.path.join(cfg.results_dir, "report", "report.html") if store.local else None)
    print(f"\nresults: {cfg.results_dir}  (ftscope status {cfg.results_dir})")
    if page:
        print(f"report:  {page}")
    if not state.is_completed():
        print(f"\nstudy {state.name}: {state.message}", file=sys.stderr)
        return 1
    return 0


def cmd_status(args) -> int:
    from pathlib import Path  # deferred: see the module docstring

    from ftscope.report.status import status_table  # deferred: see the module docstring
    from ftscope.runs import dead_runs, latest_config, latest_runs  # deferred: see the module docstring
    from ftscope.store import Store  # deferred: see the module docstring

    store = Store(args.results)
    claims, prefect = None, None
    try:
        cfg = latest_config(store, args.study)
        claims = Path(cfg["artifacts_dir"]) / "claims"
        if os.environ.get("PREFECT_API_URL"):
            from flows.cluster import cell_runs  # deferred: Prefect's client, only with a server to ask

            prefect = cell_runs([r["cell_id"] for r in store.read("plan").to_pylist()])
    except Exception as e:  # noqa: BLE001 -- the store alone still gives every cell's state
        print(f"(no live states: {e})", file=sys.stderr)
    text, counts = status_table(store, args.study, claims, prefect)
    print(text)
    runs, dead = latest_runs(store, args.study), {r["run_id"] for r in dead_runs(store, args.study)}
    if runs:
        r = runs[-1]
        state = "crashed (its process is gone)" if r["run_id"] in dead else r["status"]
        print(f"latest run: {state} ({r['study']}, started {str(r['started_at'])[:19]})"
              + (f"  {r['prefect_url']}" if r["prefect_url"] else ""))
    return 1 if counts.get("failed") else 0


def cmd_report(args) -> int:
    from ftscope.report.render import build_report, read_results, report_text  # deferred: see the module docstring
    from ftscope.store import Store  # deferred: see the module docstring

    store = Store(args.results)
    results = read_results(store, args.study)
    print(report_text(store, args.study, results))
    page = build_report(store, args.out or os.path.join(args.results, "report"), args.study, results)
    print(f"\nreport: {page}")
    if args.readme:
        from pathlib import Path  # deferred: see the module docstring

        from ftscope.report.render import findings_markdown, rewrite_readme  # deferred: see the module docstring

        for name, (kind, res) in results.items():
            ok = rewrite_readme(Path(args.readme), name, findings_markdown(kind, res))
            print(f"{args.readme}: findings of {name} {'rewritten' if ok else 'not rewritten (no markers)'}")
    return 0


def cmd_submit(args) -> int:
    cfg = _validate_or_exit(args.config, args.results)
    from flows.cluster import NoServer, submit  # deferred: see the module docstring
    from ftscope.config import resolved_raw  # deferred: see the module docstring

    try:
        link = submit(resolved_raw(args.config, {"results_dir": args.results}), args.deployment)
    except NoServer as e:
        print(e, file=sys.stderr)
        return 2
    print(f"submitted {cfg.study}: {link}")
    return 0


def cmd_retry(args) -> int:
    from flows.cluster import NoServer, retry  # deferred: see the module docstring

    try:
        todo, link = retry(args.results, args.study, args.deployment)
    except (NoServer, ValueError) as e:
        print(e, file=sys.stderr)
        return 2
    print(f"{len(todo)} cells missing or failed, re-submitted: {link}")
    for label in todo:
        print(f"  {label}")
    return 0


def cmd_results(args) -> int:
    from ftscope.store import SCHEMAS, Store  # deferred: see the module docstring

    if args.table not in SCHEMAS and args.table != "attempts":
        print(f"unknown table {args.table!r}; tables: {', '.join(sorted(SCHEMAS))}", file=sys.stderr)
        return 2
    query = f"SELECT * FROM {args.table}" + (f" WHERE {args.where}" if args.where else "")
    try:
        rel = Store(args.results).sql(query)
    except Exception as e:  # noqa: BLE001 -- DuckDB's own message says what is wrong with the SQL
        print(f"query failed: {e}", file=sys.stderr)
        return 2
    if args.format == "parquet":
        if not args.output:
            print("--format parquet needs --output FILE", file=sys.stderr)
            return 2
        rel.write_parquet(args.output)
        print(args.output)
    elif args.format == "csv":
        text = rel.df().to_csv(index=False)
        open(args.output, "w").write(text) if args.output else sys.stdout.write(text)
    else:
        from ftscope.report.page import table_text  # deferred: see the module docstring

        text = table_text(rel.df().to_dict("records"))
        open(args.output, "w").write(text + "\n") if args.output else print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    from ftscope import __version__  # deferred: see the module docstring

    p = argparse.ArgumentParser(prog="ftscope", description="What fine-tuning does to a language model: Study K "
                                "(knowledge) and Study G (generalization), from one YAML config, at any scale.")
    p.add_argument("--version", action="version", version=f"ftscope {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("run", help="run a study (cells already done are skipped, failed ones re-run)")
    s.add_argument("config", help="the study's YAML config")
    s.add_argument("--results", help="results directory (overrides the config's results_dir)")
    s.add_argument("--report", metavar="DIR", help="where to write the HTML report (default RESULTS/report)")
    s.set_defaults(fn=cmd_run)

    s = sub.add_parser("validate", help="check a config, print the grid and what it costs; nothing runs")
    s.add_argument("config", help="the study's YAML config")
    s.add_argument("--results", help="results directory (overrides the config's results_dir)")
    s.add_argument("--calibrate", action="store_true",
                   help="measure the generator's samples/s on this machine for the time estimate")
    s.set_defaults(fn=cmd_validate)

    s = sub.add_parser("status", help="every planned cell: done, failed (with its reason) or missing, with timings")
    s.add_argument("results", help="results directory of a study")
    s.add_argument("--study", help="only this study (a results directory may hold several)")
    s.set_defaults(fn=cmd_status)

    s = sub.add_parser("report", help="text tables, comparisons and the HTML report, from the store alone")
    s.add_argument("results", help="results directory of a study")
    s.add_argument("--out", help="where to write report.html and its figures (default RESULTS/report)")
    s.add_argument("--study", help="only this study")
    s.add_argument("--readme", help="rewrite the findings between <!-- findings:STUDY --> markers in this file")
    s.set_defaults(fn=cmd_report)

    s = sub.add_parser("submit", help="run a study on a cluster: a run of the study deployment (needs a Prefect "
                                      "server, PREFECT_API_URL); prints its UI link")
    s.add_argument("config", help="the study's YAML config")
    s.add_argument("--results", help="results directory (overrides the config's results_dir)")
    s.add_argument("--deployment", default="study/study", help="the study deployment (default study/study)")
    s.set_defaults(fn=cmd_submit)

    s = sub.add_parser("retry", help="re-submit a study's missing or failed cells (cells whose worker died are "
                                     "marked crashed first)")
    s.add_argument("results", help="results directory of a study")
    s.add_argument("--study", help="which study, when the directory holds several")
    s.add_argument("--deployment", default="study/study", help="the study deployment (default study/study)")
    s.set_defaults(fn=cmd_retry)

    s = sub.add_parser("results", help="the rows of one table, filtered with SQL (DuckDB over the store)")
    s.add_argument("results", help="results directory of a study")
    s.add_argument("--table", required=True, help="metrics, scores, kl, params, restoration, mastery, cells, plan, "
                                                  "runs, or attempts (every cells row)")
    s.add_argument("--where", help="an SQL condition, e.g. \"domain = 'id' AND slice = 'all'\"")
    s.add_argument("--format", choices=["markdown", "csv", "parquet"], default="markdown", help="output format")
    s.add_argument("--output", help="write to this file instead of standard output (required for parquet)")
    s.set_defaults(fn=cmd_results)

    args = p.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
