"""Run the fault scenarios and print the table of figures (docs/reliability.md).

python -m tests.faults.report               # every scenario
python -m tests.faults.report 429_storm ... # some of them
python -m tests.faults.report --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys

from tests.faults.harness import RedisServer, postgres_cluster
from tests.faults.runner import prepare_template, run_scenario, table
from tests.faults.scenario import SCENARIOS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", help=", ".join(SCENARIOS))
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    reason = RedisServer.unavailable()
    if reason:
        print(f"cannot run the fault suite: {reason}", file=sys.stderr)
        return 1
    results = []
    with postgres_cluster() as cluster:
        if cluster is not None:
            prepare_template(cluster)
        for name in args.scenarios or list(SCENARIOS):
            result = run_scenario(name, cluster)
            results.append(result)
            print(f"{name}: done in {result.get('seconds', '-')} s", file=sys.stderr, flush=True)
    print(table(results))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
