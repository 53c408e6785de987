"""Run the benchmarks and write benchmarks/results.json.

    .venv/bin/python benchmarks/run.py [--quick] [--only load,backfill] [--reps N]

Each figure is a ratio against a baseline measured in the same run (median of
the repetitions), with the absolute numbers. SQLite file + fakeredis by
default; DATABASE_URL (PostgreSQL) and REDIS_URL select real services.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Run as a script, the benchmarks folder itself must not shadow top-level modules.
if sys.path and Path(sys.path[0]).resolve() == HERE:
    sys.path.pop(0)
sys.path.insert(0, str(HERE.parent))

from benchmarks.harness import Config, run_database, setup_django  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="Smaller sizes (under a minute).")
    parser.add_argument("--only", default="", help="Comma-separated benchmark names.")
    parser.add_argument("--reps", type=int, default=None, help="Repetitions (median taken).")
    parser.add_argument("--backfill-reps", type=int, default=None, help="Backfill repetitions.")
    parser.add_argument(
        "--backfill-args",
        default="",
        help="Extra ai_regenerate arguments for the backfill, e.g. a future chunk option.",
    )
    parser.add_argument(
        "--ai-setting",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="An AI_FIELDS override for the whole run (repeatable), e.g. CONCURRENCY=32.",
    )
    parser.add_argument("--output", type=Path, default=HERE / "results.json")
    return parser.parse_args(argv)


def apply_ai_settings(pairs: list[str]) -> None:
    """KEY=JSON pairs into AI_FIELDS (worker processes receive them too)."""
    from django.conf import settings

    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            settings.AI_FIELDS[key] = json.loads(value)
        except json.JSONDecodeError:
            settings.AI_FIELDS[key] = value


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_django()
    from benchmarks import report
    from benchmarks.scenarios import SCENARIOS

    names = [n for n in args.only.split(",") if n] or list(SCENARIOS)
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        sys.exit(
            f"Unknown benchmark(s): {', '.join(sorted(unknown))}; known: {', '.join(SCENARIOS)}"
        )
    cfg = Config.make(args.quick, args.reps, args.backfill_reps)
    cfg.backfill_args = shlex.split(args.backfill_args)
    apply_ai_settings(args.ai_setting)
    started = time.perf_counter()
    figures = []
    with run_database():
        print(f"{'benchmark':<52} {'ratio':>8}  goal", flush=True)
        for name in names:
            began = time.perf_counter()
            figure = SCENARIOS[name](cfg)
            figure.absolute["benchmark_seconds"] = round(time.perf_counter() - began, 1)
            figures.append(figure)
            print(report.line(figure), flush=True)
            if name == "queries_per_job":
                print(report.breakdown(figure), flush=True)
    elapsed = time.perf_counter() - started
    report.write(args.output, cfg, figures, elapsed)
    print(f"\n{len(figures)} benchmark(s) in {elapsed:.0f} s; written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
