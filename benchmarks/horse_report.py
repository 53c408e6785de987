"""The report of benchmarks/horse_profile.py: a run directory's records, profiles and
samples summed up per AI job.

    .venv/bin/python benchmarks/horse_profile.py --report DIR [--top 25]

Per mode: the CPU per AI job as live.py measures it, split by process, and the
worker's records; per horse, a line through CPU against AI jobs run (what a horse
pays once, what an AI job adds); then the cProfile and py-spy breakdowns.

The profiles are timed by each thread's CPU clock (``time.thread_time``), a system
call per profiler event here, so cProfile adds about a microsecond to every call.
That overhead is measured in this process on empty calls (``calibrate``) and taken
off each function's own time, per call of it and per call it makes ("calibrated");
a last column scales it so the total matches the horses' CPU measured without a
profiler (the ``account`` runs), when there are some ("fit").

Own time goes to a package by the function's file. A builtin goes to its C module
when that names a package (``_socket`` to ssl/socket, ``_json`` to json,
``pydantic_core`` to pydantic, ...), otherwise (``isinstance``, ``os``, ``time``...)
to its callers, in proportion to the time it spent for each.
"""

from __future__ import annotations

import cProfile
import json
import pstats
import re
import statistics
import sysconfig
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
Func = tuple[str, int, str]
Stats = dict[Func, Any]  # pstats: (primitive calls, calls, own s, cumulative s, callers)
LIB = sysconfig.get_paths()["purelib"] + "/"
STDLIB = sysconfig.get_paths()["stdlib"] + "/"
HTTP = ("httpx", "httpcore", "httpx2", "httpcore2", "h11", "h2", "anyio", "sniffio", "certifi")
GROUPS = {
    "django_ai_fields": "django_ai_fields",
    **dict.fromkeys(("psycopg", "psycopg_binary", "sqlite3", "_sqlite3"), "psycopg/sqlite3"),
    "openai": "openai SDK",
    **dict.fromkeys(HTTP, "httpx/httpcore"),
    **dict.fromkeys(("pydantic", "pydantic_core"), "pydantic"),
    **dict.fromkeys(("rq", "django_rq"), "rq"),
    "redis": "redis",
    **dict.fromkeys(("json", "_json"), "json"),
    **dict.fromkeys(("ssl", "socket", "_ssl", "_socket"), "ssl/socket"),
    **dict.fromkeys(("asyncio", "_asyncio", "selectors"), "asyncio"),
    "logging": "logging",
    **dict.fromkeys(("threading", "concurrent", "queue", "_thread"), "threading/futures"),
    "importlib": "imports",
}
BUILTIN_NAME = re.compile(r"<built-in method ([\w.]+)>|<method '\w+' of '([\w.]+)' objects>")
COUNTS = (
    ("SQL statements (CursorWrapper._execute)", "django/db/backends/utils.py", "_execute"),
    ("commits (BaseDatabaseWrapper.commit)", "django/db/backends/base/base.py", "commit"),
    (
        "DB connections opened (BaseDatabaseWrapper.connect)",
        "django/db/backends/base/base.py",
        "connect",
    ),
    ("Redis commands (execute_command, pipelined too)", "redis/client.py", "execute_command"),
    ("Redis pipelines executed", "redis/client.py", "execute"),
    ("provider requests built (openai _build_request)", "openai/_base_client.py", "_build_request"),
    ("json.dumps", "json/__init__.py", "dumps"),
    ("json.loads", "json/__init__.py", "loads"),
    ("log records made (Logger._log)", "logging/__init__.py", "_log"),
)


# --- The worker's records -------------------------------------------------------------


def record_summary(directory: Path, saves: int, split: dict[str, float]) -> dict[str, Any]:
    """The worker's records of one run: per RQ job kind, and in ms per AI job. A
    part's AI jobs are those of the horses that have it: a worker stopped while its
    horse runs (RQ's warm shutdown of a worker it thinks idle) writes no line for it."""
    lines = {
        line["horse_pid"]: line
        for path in sorted(directory.glob("parent-*.jsonl"))
        for line in map(json.loads, path.read_text().splitlines())
    }
    rows = [
        rq_job(json.loads(path.read_text()), lines.get(int(path.stem.split("-")[1])))
        for path in sorted(directory.glob("horse-*.json"))
    ]
    per_kind: dict[str, Counter[str]] = defaultdict(Counter)
    for job, row in rows:
        per_kind[job].update(row | {"count": 1})
    per_ai_job = {}
    for part in ("parent ms", "fork ms", *HORSE_PARTS):
        having = [row for _, row in rows if part in row]
        ran = sum(row["ai jobs"] for row in having) or saves  # records before "returned"
        per_ai_job[part] = round(sum(row[part] for row in having) / ran, 2)
    per_ai_job["parent outside execute_job (/proc less the lines)"] = round(
        split.get("parent", 0)
        - sum(line["parent_cpu_s"] for line in lines.values()) * 1000 / saves,
        2,
    )
    return {"rq_jobs": {k: dict(v) for k, v in per_kind.items()}, "ms_per_ai_job": per_ai_job}


HORSE_PARTS = ("the job", "before the job", "gc in the job", "total (wait4)", "after the job")


def rq_job(horse: dict[str, Any], line: dict[str, Any] | None) -> tuple[str, dict[str, float]]:
    """One RQ job's figures (ms, counts): the horse's own record, and the parent's
    line when there is one."""
    returned = horse.get("returned")
    entry, end = horse["entry"]["cpu"], horse["end"]["cpu"]
    row = {
        "ai jobs": sum(returned.values()) if isinstance(returned, dict) else 0,
        "before the job": entry * 1000,
        "the job": (end - entry) * 1000,
        "gc in the job": sum((horse.get("gc") or {}).get("ms", {}).values()),
    }
    total = (line or {}).get("horse")
    if line is not None:
        row |= {"parent ms": line["parent_cpu_s"] * 1000, "fork ms": line["fork_cpu_s"] * 1000}
    if total:
        row |= {"total (wait4)": total["cpu"] * 1000, "after the job": (total["cpu"] - end) * 1000}
        row |= {f"horse {k}": total[k] for k in ("minflt", "nvcsw", "nivcsw")}
    return horse["job"].rsplit(".", 1)[-1], row


# --- Packages -------------------------------------------------------------------------


def module_of(func: Func) -> str:
    """The dotted module of a profiled function ("~" for a builtin of no module)."""
    path, _, name = func
    if path == "~":
        found = BUILTIN_NAME.fullmatch(name)
        return (found.group(1) or found.group(2)).rsplit(".", 1)[0] if found else "~"
    if path.startswith("<frozen "):
        return path[len("<frozen ") : -1]
    for root in (LIB, STDLIB, f"{ROOT}/"):
        if path.startswith(root):
            return path[len(root) :].removesuffix(".py").replace("/", ".")
    return path


def group_of(func: Func) -> str | None:
    """The package group of a function; None: a builtin charged to its callers."""
    module = module_of(func)
    top = module.split(".", 1)[0]
    if func[2] == "<module>":
        return "imports"  # a module's body, run by an import in the horse
    if top == "django":
        return "django ORM/db" if module.startswith("django.db") else "django (other)"
    if top in GROUPS:
        return GROUPS[top]
    return None if func[0] == "~" else "other"


def charged(stats: Stats, func: Func, seconds: float, depth: int = 0) -> list[Any]:
    """(group, module, seconds): a function's own time where it belongs, a builtin's
    split over its callers by the time it spent for each."""
    group = group_of(func)
    if group is not None:
        return [(group, module_of(func), seconds)]
    callers = stats[func][4]
    spent = sum(edge[2] for edge in callers.values())
    if depth > 3 or not spent:
        return [("other", "~ (C builtins)", seconds)]
    found = []
    for caller, edge in callers.items():
        found += charged(stats, caller, seconds * edge[2] / spent, depth + 1)
    return found


def breakdown(stats: Stats, own: dict[Func, float]) -> dict[str, Counter[str]]:
    """Own time by group, django_ai_fields by module, "other" by top-level module."""
    found: dict[str, Counter[str]] = defaultdict(Counter)
    for func, seconds in own.items():
        for group, module, share in charged(stats, func, seconds):
            found["groups"][group] += share
            if group == "django_ai_fields":
                found["modules"][module.removeprefix("django_ai_fields.")] += share
            elif group == "other":
                found["others"][module.split(".", 1)[0]] += share
    return found


# --- The profiler's own cost ----------------------------------------------------------


@dataclass(frozen=True)
class Overhead:
    """Seconds cProfile timed by ``thread_time`` adds to a function's own time, per
    call of it and per call it makes, Python functions and builtins apart."""

    python_call: float
    builtin_call: float
    python_callee: float
    builtin_callee: float

    def __str__(self) -> str:
        return (
            f"{self.python_call * 1e6:.2f} us per Python call, "
            f"{self.python_callee * 1e6:.2f} to its caller; "
            f"{self.builtin_call * 1e6:.2f} per builtin call, "
            f"{self.builtin_callee * 1e6:.2f} to its caller"
        )

    def scaled(self, factor: float) -> Overhead:
        return Overhead(
            self.python_call * factor,
            self.builtin_call * factor,
            self.python_callee * factor,
            self.builtin_callee * factor,
        )

    def own_times(self, stats: Stats) -> dict[Func, float]:
        """Each function's own time less the overhead (never below 0)."""
        made: dict[Func, list[int]] = defaultdict(lambda: [0, 0])  # to Python, to builtins
        for func, row in stats.items():
            for caller, edge in row[4].items():
                made[caller][func[0] == "~"] += edge[0]
        own = {}
        for func, (_, calls, seconds, _, _) in stats.items():
            per_call = self.builtin_call if func[0] == "~" else self.python_call
            python, builtin = made.get(func, (0, 0))
            added = per_call * calls + self.python_callee * python + self.builtin_callee * builtin
            own[func] = max(0.0, seconds - added)
        return own


def calibrate(calls: int = 100_000) -> Overhead:
    """The overhead on empty calls in this process: a loop's own time with and without
    the profiler, and the callee's."""
    items: list[int] = []

    def empty() -> None:
        pass

    def no_calls() -> None:
        for _ in range(calls):
            pass

    def python_calls() -> None:
        for _ in range(calls):
            empty()

    def builtin_calls() -> None:
        for _ in range(calls):
            len(items)

    loops = (no_calls, python_calls, builtin_calls)
    plain = {loop.__name__: min(cpu_of(loop) for _ in range(5)) for loop in loops}
    own = min_own_times(lambda: (python_calls(), builtin_calls()), 5)
    loop = plain["no_calls"]
    return Overhead(
        python_call=(own["empty"] - (plain["python_calls"] - loop)) / calls,
        builtin_call=(own["len"] - (plain["builtin_calls"] - loop)) / calls,
        python_callee=(own["python_calls"] - loop) / calls,
        builtin_callee=(own["builtin_calls"] - loop) / calls,
    )


def cpu_of(call: Callable[[], object]) -> float:
    started = time.thread_time()
    call()
    return time.thread_time() - started


def min_own_times(call: Callable[[], object], reps: int) -> dict[str, float]:
    """Own time by function name ("len" for the builtin), the least of ``reps`` runs."""
    least: dict[str, float] = {}
    for _ in range(reps):
        profiler = cProfile.Profile(time.thread_time)
        profiler.runcall(call)
        profiler.snapshot_stats()
        for (_, _, name), row in profiler.stats.items():  # type: ignore[attr-defined]
            key = "len" if name == "<built-in method builtins.len>" else name
            least[key] = min(least.get(key, row[2]), row[2])
    return least


# --- The report -----------------------------------------------------------------------


def load_run(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) | {"directory": str(path.parent)}


def load(files: list[Path]) -> Stats:
    return pstats.Stats(*map(str, files)).stats if files else {}  # type: ignore[attr-defined]


def report(base: Path, top: int) -> None:
    """Print the profile runs of ``base`` (its profile-*/ directories) per AI job."""
    directories = sorted(p.parent for p in base.glob("profile-*/run.json"))
    jobs = sum(json.loads((d / "run.json").read_text())["saves"] for d in directories)
    files = sorted(f for d in directories for f in d.glob("horse-*.prof"))
    horses = sum(1 for d in directories for _ in d.glob("horse-*.json"))
    stats = load(files)
    if not stats:
        print("no profile runs in", base)
        return
    overhead = calibrate()
    calls = sum(row[1] for row in stats.values())
    print(f"\n{len(directories)} profile runs: {jobs} AI jobs, {horses} work horses")
    print(f"function calls per AI job: {calls / jobs:,.0f}")
    print(f"profiler overhead measured on empty calls here: {overhead}")
    columns = {"profiled": {func: row[2] for func, row in stats.items()}}
    columns["calibrated"] = overhead.own_times(stats)
    target = account_job_cpu(base)
    if target is not None:
        factor = fit(overhead, stats, target * jobs / 1000)
        columns[f"fit x{factor:.2f}"] = overhead.scaled(factor).own_times(stats)
        print(f"horses' CPU inside the job without a profiler (account runs): {target:.2f} ms")
    for name, own in columns.items():
        print(f"horses' CPU per AI job in the profiles, {name}: {total_ms(own, jobs):.2f} ms")
    print_by_thread(files, overhead, jobs)
    parts = {name: breakdown(stats, own) for name, own in columns.items()}
    table("by package (own time; builtins charged to their callers)", parts, "groups", jobs)
    table("django_ai_fields by module", parts, "modules", jobs)
    table("other, by top-level module", parts, "others", jobs, limit=12)
    print_top(stats, list(columns.values())[-1], jobs, top)
    print_once_per_horse(stats, horses, jobs)
    print("\ncounts per AI job:")
    for label, value in counts(stats, jobs):
        print(f"  {value:8.2f}  {label}")
    print_statements(directories, jobs)
    print_parents(directories, overhead, jobs)


def print_statements(directories: list[Path], jobs: int) -> None:
    """The horses' SQL (the main thread's connection) per AI job, by verb and table."""
    counted: Counter[str] = Counter()
    for path in (p for d in directories for p in d.glob("horse-*.json")):
        counted.update(json.loads(path.read_text()).get("sql") or {})
    if counted:
        print(f"\nSQL statements per AI job, by verb and first table ({sum(counted.values())}):")
        for name, count in counted.most_common():
            print(f"  {count / jobs:8.3f}  {name}")


def total_ms(own: dict[Func, float], jobs: int) -> float:
    return sum(own.values()) * 1000 / jobs


def records(run: dict[str, Any]) -> dict[str, float]:
    """A run's worker records per AI job (run.json), recounted from its files."""
    directory = Path(run["directory"])
    return record_summary(directory, run["saves"], run["split_ms_per_job"])["ms_per_ai_job"]


def account_job_cpu(base: Path) -> float | None:
    """The horses' CPU per AI job inside the job, measured without a profiler (the
    median of the account runs), or None."""
    runs = [load_run(p) for p in sorted(base.glob("account-*/run.json"))]
    measured = [records(r)["the job"] for r in runs]
    return statistics.median(measured) if measured else None


def fit(overhead: Overhead, stats: Stats, target: float) -> float:
    """The factor on the calibrated overhead that brings the corrected total to
    ``target`` seconds (bisection: the total falls as the factor grows)."""
    low, high = 0.0, 10.0
    for _ in range(30):
        middle = (low + high) / 2
        if sum(overhead.scaled(middle).own_times(stats).values()) > target:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def print_by_thread(files: list[Path], overhead: Overhead, jobs: int) -> None:
    threads: Counter[str] = Counter()
    for path in files:
        name = re.sub(r"_\d+$", "_N", path.stem.split("-", 3)[3])
        threads[name] += sum(overhead.own_times(load([path])).values())
    listed = ", ".join(f"{k} {v * 1000 / jobs:.2f} ms" for k, v in threads.most_common())
    print(f"by thread (calibrated, per AI job): {listed}")


def table(
    title: str,
    columns: dict[str, dict[str, Counter[str]]],
    part: str,
    jobs: int,
    limit: int | None = None,
) -> None:
    """ms per AI job of each column; rows in the order of the last, with its shares."""
    last = list(columns.values())[-1]
    total = sum(last["groups"].values())
    print(f"\n{title}, ms per AI job:")
    print("  " + " ".join(f"{name:>9}" for name in columns) + f" {'share':>6}")
    for name, seconds in last[part].most_common(limit):
        figures = " ".join(f"{c[part][name] * 1000 / jobs:9.3f}" for c in columns.values())
        print(f"  {figures} {seconds / total:6.1%}  {name}")


def short(func: Func) -> str:
    path, line, name = func
    return name if path == "~" else f"{module_of(func)}:{line}({name})"


def print_top(stats: Stats, own: dict[Func, float], jobs: int, top: int, title: str = "") -> None:
    print(f"\n{title or f'top {top} functions by own time (the last correction)'}, per AI job:")
    print(f"  {'own ms':>8} {'profiled':>8} {'cum ms':>8} {'calls':>8}  function")
    for func in sorted(own, key=own.__getitem__, reverse=True)[:top]:
        _, calls, seconds, cumulative, _ = stats[func]
        print(
            f"  {own[func] * 1000 / jobs:8.3f} {seconds * 1000 / jobs:8.3f} "
            f"{cumulative * 1000 / jobs:8.3f} {calls / jobs:8.2f}  {short(func)}"
        )


def print_once_per_horse(stats: Stats, horses: int, jobs: int, top: int = 15) -> None:
    """What every horse pays once (imports, clients): functions called at most once
    per horse, by cumulative time (as profiled: the overhead included)."""
    below = 0.3 * sum(row[2] for row in stats.values())  # not the drain's loop and above
    once = [
        (func, row)
        for func, row in stats.items()
        if row[1] <= horses and func[0] != "~" and row[3] < below
    ]
    once.sort(key=lambda item: item[1][3], reverse=True)
    print("\ncalled at most once per work horse, under the drain's loop, by cumulative time")
    print(f"(as profiled), top {top}:")
    print(f"  {'ms/call':>8} {'ms/job':>8} {'calls':>6}  function")
    for func, row in once[:top]:
        print(
            f"  {row[3] * 1000 / row[1]:8.2f} {row[3] * 1000 / jobs:8.3f} {row[1]:6d}  "
            f"{short(func)}"
        )


def counts(stats: Stats, jobs: int) -> list[tuple[str, float]]:
    found = []
    for label, suffix, name in COUNTS:
        calls = sum(
            row[1] for func, row in stats.items() if func[0].endswith(suffix) and func[2] == name
        )
        found.append((label, calls / jobs))
    return found


def print_parents(directories: list[Path], overhead: Overhead, jobs: int) -> None:
    files = sorted(f for d in directories for f in d.glob("parent-*.prof"))
    if not files:
        return
    stats = load(files)
    own = overhead.own_times(stats)
    raw = {func: row[2] for func, row in stats.items()}
    print(
        f"\nparent processes, whole life (work() to the stop, idle time included): "
        f"{sum(raw.values()) * 1000 / jobs:.2f} ms per AI job as profiled, "
        f"{sum(own.values()) * 1000 / jobs:.2f} corrected"
    )
    columns = {"profiled": breakdown(stats, raw), "corrected": breakdown(stats, own)}
    table("parents by package", columns, "groups", jobs)
    print_top(stats, own, jobs, 12, "parents: top 12 functions by own time, corrected")


# --- py-spy samples ------------------------------------------------------------------

PROCESS = re.compile(r'process (\d+):".*"')
FRAME = re.compile(r"(.*) \((.*):(\d+)\)")


def read_samples(directory: Path) -> dict[str, Counter[Func]]:
    """Samples by leaf function (line numbers dropped), of the work horses, of the
    parents and of their other children (RQ's scheduler); and "inclusive": the
    horses' samples by every function on the stack, once per sample."""
    horses = {int(path.stem.split("-")[1]) for path in directory.glob("horse-*.json")}
    found: dict[str, Counter[Func]] = defaultdict(Counter)
    for path in directory.glob("py-spy-*.txt"):
        for line in path.read_text(errors="replace").splitlines():  # torn reads
            stack, _, count = line.rpartition(" ")
            frames = stack.split(";")
            pids = [int(m.group(1)) for frame in frames if (m := PROCESS.fullmatch(frame))]
            leaf = FRAME.fullmatch(frames[-1])
            if not leaf or not count.isdigit() or not pids:
                continue
            kind = "parents" if len(pids) == 1 else "horses" if pids[-1] in horses else "other"
            found[kind][(leaf.group(2), 0, leaf.group(1))] += int(count)
            if kind == "horses":
                on_stack = {(m[2], 0, m[1]) for f in frames if (m := FRAME.fullmatch(f))}
                found["inclusive"].update(dict.fromkeys(on_stack, int(count)))
    return found


def sample_report(base: Path, top: int) -> None:
    """The py-spy samples of the ``sample`` runs of ``base``, per AI job."""
    directories = sorted(p.parent for p in base.glob("sample-*/run.json"))
    runs = [load_run(d / "run.json") for d in directories]
    if not runs:
        return
    jobs, rate = sum(run["saves"] for run in runs), runs[0]["rate"]
    samples: dict[str, Counter[Func]] = defaultdict(Counter)
    for directory in directories:
        for kind, leaves in read_samples(directory).items():
            samples[kind].update(leaves)
    seconds = {kind: {f: n / rate for f, n in leaves.items()} for kind, leaves in samples.items()}
    measured = [records(run)["total (wait4)"] for run in runs]
    gil = " GIL holders only," if runs[0].get("gil") else ""
    print(f"\n{len(runs)} sample runs (py-spy,{gil} {rate} per second): {jobs} AI jobs")
    for kind, found in seconds.items():
        if kind == "inclusive":
            continue
        print(f"  {kind}: {sum(found.values()) * 1000 / jobs:.2f} ms per AI job in samples")
    print(f"  horses, wait4 (same runs): {statistics.median(measured):.2f} ms ({measured})")
    columns = {"sampled": breakdown({}, seconds.get("horses", {}))}
    title = "horses by package (leaf Python function; C calls go to their caller)"
    table(title, columns, "groups", jobs)
    table("horses: django_ai_fields by module", columns, "modules", jobs)
    table("horses: other, by top-level module", columns, "others", jobs, limit=12)
    print(f"\nhorses: top {top} leaf functions in samples, ms per AI job:")
    for func, count in samples["horses"].most_common(top):
        print(f"  {count / rate * 1000 / jobs:8.3f}  {module_of(func)}({func[2]})")
    inclusive = samples["inclusive"]
    ours = [(f, n) for f, n in inclusive.items() if group_of(f) == "django_ai_fields"]
    print_inclusive("django_ai_fields functions", ours, rate, jobs, 30)
    # Below the drain's loop: what one step of a job costs, whoever's code it is.
    below = sum(samples["horses"].values()) * 0.3
    others = [
        (f, n) for f, n in inclusive.items() if n < below and group_of(f) != "django_ai_fields"
    ]
    print_inclusive("other functions under 30% of the samples", others, rate, jobs, top)


def print_inclusive(title: str, found: list[Any], rate: int, jobs: int, top: int) -> None:
    print(f"\nhorses: {title}, by inclusive samples, ms per AI job:")
    for func, count in sorted(found, key=lambda item: item[1], reverse=True)[:top]:
        print(f"  {count / rate * 1000 / jobs:8.3f}  {module_of(func)}({func[2]})")


# --- Fixed and per-job CPU of a work horse, without a profiler -----------------------


def horse_costs(base: Path, mode: str = "account") -> None:
    """A least-squares line through the work horses of the ``mode`` runs (in ``base``
    or directories below it) that ran AIJobs: CPU inside the job, and the garbage
    collector's part of it, against the AIJobs its drain ran (what a drain returns):
    what a horse pays once, and what each AI job adds. Horses that ran none apart."""
    points = []
    for path in sorted(base.glob(f"**/{mode}-*/horse-*.json")):
        record = json.loads(path.read_text())
        returned = record.get("returned")
        if isinstance(returned, dict):
            cpu = (record["end"]["cpu"] - record["entry"]["cpu"]) * 1000
            collected = sum((record.get("gc") or {}).get("ms", {}).values())
            points.append((sum(returned.values()), cpu, collected))
    working = [point for point in points if point[0]]
    idle = [point for point in points if not point[0]]
    print(f"\nwork horses of the {mode} runs, CPU inside the job (no profiler), ms:")
    if idle:
        cpu, collected = (statistics.median(p[i] for p in idle) for i in (1, 2))
        print(f"  {len(idle)} ran no AIJob: {cpu:.1f} each (median), gc {collected:.1f}")
    if not working:
        return
    listed = ", ".join(f"{n}: {ms:.0f} ({gc:.0f})" for n, ms, gc in sorted(working))
    print(f"  {len(working)} ran AIJobs; AIJobs: ms (gc ms): {listed}")
    ran = [p[0] for p in working]
    if len(working) < 3 or max(ran) - min(ran) < 20:
        print("  (too few horses, or their AIJobs too alike, for a line: vary --saves)")
        return
    for label, index in (("CPU", 1), ("gc", 2)):
        line = statistics.linear_regression(ran, [p[index] for p in working])
        print(f"  {label}: {line.intercept:.1f} per horse + {line.slope:.2f} per AI job")


def run_modes(base: Path) -> list[str]:
    """The modes of the runs in ``base`` and below, fork runs and profiles aside."""
    names = {p.parent.name.rsplit("-", 1)[0] for p in base.glob("**/*-*/run.json")}
    return sorted(n for n in names if n != "fork" and not n.startswith("profile"))


# --- The runs ------------------------------------------------------------------------


def summarize(base: Path) -> None:
    """Per mode: CPU per AI job as live.py measures it, split by process, and the
    worker's records (recounted from the files); medians, every run in brackets."""
    runs = [load_run(p) for p in sorted(base.glob("**/*-*/run.json"))]
    print(f"\n{base}: per mode, medians (all runs in brackets, with the 1-minute load):")
    for mode in sorted({run["mode"] for run in runs}):
        chosen = [run for run in runs if run["mode"] == mode]
        cpu = [run["cpu_ms_per_job"] for run in chosen]
        load = [round(run["load_1min"], 1) for run in chosen]
        print(f"  {mode}: CPU {statistics.median(cpu):.2f} ms/job {cpu}, load {load}")
        parts = [run["split_ms_per_job"] for run in chosen]
        if not mode.startswith("fork"):
            parts = [
                p | {f"records: {k}": v for k, v in records(run).items()}
                for p, run in zip(parts, chosen, strict=True)
            ]
        for name in sorted({k for p in parts for k in p}):
            values = [p.get(name, 0.0) for p in parts]
            print(f"      {name}: {statistics.median(values):.2f} ms/job {values}")
