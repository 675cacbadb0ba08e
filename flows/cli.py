"""The `ftscope` command: run, validate, status, report."""

import argparse
import os
import sys


def _validate_or_exit(config: str, results: str | None, calibrate: bool = False):
    from ftscope.validate import validate

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
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "ftscope")
    from flows.study import study
    from ftscope.report import study_report
    from ftscope.store import Store

    state = study(config_path=args.config, results_dir=args.results, validated=True, return_state=True)
    print("\n" + study_report(Store(cfg.results_dir), cfg.study))
    print(f"\nresults: {cfg.results_dir}  (ftscope status {cfg.results_dir})")
    if not state.is_completed():
        print(f"\nstudy {state.name}: {state.message}", file=sys.stderr)
        return 1
    return 0


def cmd_status(args) -> int:
    from ftscope.report import status_table
    from ftscope.store import Store

    text, counts = status_table(Store(args.results))
    print(text)
    return 1 if counts.get("failed") else 0


def cmd_report(args) -> int:
    from ftscope.report import study_report
    from ftscope.store import Store

    print(study_report(Store(args.results)))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ftscope", description="What fine-tuning does to a language model.")
    sub = p.add_subparsers(dest="command", required=True)
    for name, fn, help_ in [("run", cmd_run, "run a study (skips cells already done)"),
                            ("validate", cmd_validate, "check a config and print the grid size")]:
        s = sub.add_parser(name, help=help_)
        s.add_argument("config")
        s.add_argument("--results", help="override results_dir")
        if name == "validate":
            s.add_argument("--calibrate", action="store_true",
                           help="measure the generator's samples/s on this machine for the time estimate")
        s.set_defaults(fn=fn)
    for name, fn, help_ in [("status", cmd_status, "cells done, failed (with reason) and missing"),
                            ("report", cmd_report, "accuracy tables from a results directory")]:
        s = sub.add_parser(name, help=help_)
        s.add_argument("results")
        s.set_defaults(fn=fn)
    args = p.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
