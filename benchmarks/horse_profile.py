"""Where a live AI job's CPU goes in forking ``rqworker`` processes (issue 20, point 5).

    REDIS_URL=redis://127.0.0.1:6379/7 [DATABASE_URL=postgres://...] \\
        .venv/bin/python benchmarks/horse_profile.py [--modes fork,account,profile,sample]
        [--reps 1] [--saves 120] [--latency 200] [--workers 2] [--linger 0]
        [--py-spy PATH] [--rate 500] [--gil] [--out DIR] [--top 25]
    .venv/bin/python benchmarks/horse_profile.py --report DIR [--top 25]
    .venv/bin/python benchmarks/horse_profile.py --cold 5

The scenario is benchmarks/live.py's throughput run, built from its functions: N
live saves (one AI field each, each its own transaction) drained by W real forking
``rqworker`` processes, the fake provider answering after the latency behind the
real openai SDK. Modes, run in turn in each rep:

- ``fork``: live.py's own worker class (``django_ai_fields.rq_worker.Worker``).
- ``account``: ``ProfilingWorker`` (below), the same class writing down per RQ job
  the parent's CPU (its ``fork()`` apart), the horse's CPU (``os.wait4``), and the
  horse's own CPU when it starts and ends the job. No profiler: the split at full speed.
- ``profile``: the same, plus cProfile timed by each thread's CPU clock
  (``time.thread_time``) in every thread of every work horse, and in the parent's
  main thread; one .prof file per thread.
- ``sample``: ``account``, with py-spy (``--py-spy``, not a dependency of the
  project) sampling the worker processes and their children, work horses included,
  from outside and without stopping them: samples of running threads only, so CPU
  shares without a profiler's overhead inside.

A mode takes changes to try with "+" (``account+freeze+prewarm``), made by
``ProfilingWorker`` only, the library untouched: ``freeze``, ``gc.freeze()`` in the
parent before each fork, so the horse's garbage collections skip (and do not write
to, copying it) the inherited heap; ``prewarm``, the parent builds at start the
price data and imports anyio's asyncio backend, which each horse builds otherwise;
``sslshare``, the horses' async SDK clients share one TLS context built in the parent.
Account records include the horse's garbage-collection time (``gc.callbacks``).

Every run measures the CPU per job as live.py does (worker processes and their work
horses, from /proc) and splits it by process. ``--cold N`` times, without a profiler,
what the profiles show each work horse building for itself (price data, the async
SDK client, its TLS context). Then benchmarks/horse_report.py sums
the profiles up (``--report DIR`` again later): CPU per AI job by package,
django_ai_fields by module, the top functions, what each horse pays once, and
counts per AI job (SQL statements, commits, Redis commands).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import marshal
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from types import FrameType
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if sys.path and Path(sys.path[0]).resolve() == HERE:
    sys.path.pop(0)  # benchmarks/settings.py and others would shadow modules
sys.path.insert(0, str(ROOT))

from django_ai_fields.rq_worker import Worker  # noqa: E402

WORKER_CLASS = "benchmarks.horse_profile.ProfilingWorker"
ENV_DIR = "HORSE_PROFILE_DIR"  # where the worker writes its records; none: a plain Worker
ENV_CPROFILE = "HORSE_PROFILE_CPROFILE"  # "1": cProfile the horses and the parent
ENV_TRY = "HORSE_PROFILE_TRY"  # changes to try, comma-separated: freeze, prewarm, sslshare

# --- In the worker processes -----------------------------------------------------


def usage_of(usage: resource.struct_rusage) -> dict[str, float]:
    return {
        "cpu": usage.ru_utime + usage.ru_stime,
        "utime": usage.ru_utime,
        "stime": usage.ru_stime,
        "minflt": usage.ru_minflt,
        "nvcsw": usage.ru_nvcsw,
        "nivcsw": usage.ru_nivcsw,
    }


def own_usage() -> dict[str, float]:
    """This process's CPU (all its threads) and its page faults and context switches."""
    return usage_of(resource.getrusage(resource.RUSAGE_SELF))


def record_dir() -> Path | None:
    value = os.environ.get(ENV_DIR)
    return Path(value) if value else None


def profiling() -> bool:
    return os.environ.get(ENV_CPROFILE) == "1"


def trying(change: str) -> bool:
    return change in os.environ.get(ENV_TRY, "").split(",")


def share_tls_context() -> None:
    """The ``sslshare`` change: one TLS context (httpcore2's default, CA bundle loaded)
    built in the parent and handed to every async client the horses build. Here by
    replacing ``httpcore2.default_ssl_context``, which httpx2 calls per client; the
    library would pass ``verify=`` a shared context instead."""
    import httpcore2

    context = httpcore2.default_ssl_context()
    httpcore2.default_ssl_context = lambda **_: context


def prewarm() -> None:
    """The ``prewarm`` change: what each horse otherwise builds for itself that a
    fork can share, built once in the parent (see ``cold_steps``)."""
    import anyio._backends._asyncio  # noqa: F401
    from genai_prices import data_snapshot

    data_snapshot.get_snapshot()


TABLE = re.compile(r'(?:FROM|INTO|UPDATE)\s+"(\w+)"')


class Statements:
    """A Django ``execute_wrapper``: the SQL the horse runs, counted by verb and first
    table (``SELECT aijob``, ``SAVEPOINT``...)."""

    def __init__(self) -> None:
        self.counted: Counter[str] = Counter()

    def __call__(self, execute: Callable[..., Any], sql: str, *args: Any) -> Any:
        table = TABLE.search(sql)
        name = sql.split(None, 1)[0].upper() + (f" {table.group(1)}" if table else "")
        self.counted[name] += 1
        return execute(sql, *args)


class GcClock:
    """A ``gc.callbacks`` entry: CPU seconds and collections by generation."""

    def __init__(self) -> None:
        self.seconds: Counter[int] = Counter()
        self.collections: Counter[int] = Counter()
        self.started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.thread_time()
            return
        self.seconds[info["generation"]] += time.thread_time() - self.started
        self.collections[info["generation"]] += 1

    def as_dict(self) -> dict[str, Any]:
        return {"ms": {g: s * 1000 for g, s in self.seconds.items()}, "count": self.collections}


class ThreadProfiles:
    """cProfile in this thread and in every thread started after ``start()``, each
    timed by its own thread's CPU clock, so blocking (a provider's 200 ms, a query's
    round trip) costs nothing and only CPU shows."""

    def __init__(self) -> None:
        self.profiles: list[tuple[str, cProfile.Profile]] = []
        self.lock = threading.Lock()

    def start(self) -> None:
        threading.setprofile(self._first_call)
        self._add().enable()

    def _first_call(self, frame: FrameType, event: str, arg: object) -> None:
        self._add().enable()  # replaces this hook in the new thread

    def _add(self) -> cProfile.Profile:
        profiler = cProfile.Profile(time.thread_time)
        with self.lock:
            self.profiles.append((threading.current_thread().name, profiler))
        return profiler

    def dump(self, directory: Path, prefix: str) -> list[dict[str, Any]]:
        """One .prof file per thread. This thread's profiler stops; the others (threads
        idle by now: the call loop, its executor) are read where they are."""
        threading.setprofile(None)  # type: ignore[arg-type]  (typeshed wants a function)
        written = []
        for number, (name, profiler) in enumerate(self.profiles):
            if number == 0:
                profiler.disable()
            profiler.snapshot_stats()
            path = directory / f"{prefix}-{number}-{safe(name)}.prof"
            path.write_bytes(marshal.dumps(profiler.stats))  # what dump_stats() writes
            written.append({"thread": name, "file": path.name})
        return written


def safe(name: str) -> str:
    return re.sub(r"[^\w.-]", "_", name)


def thread_cpu() -> dict[str, float]:
    """CPU seconds of each thread of this process still alive."""
    found: dict[str, float] = {}
    for thread in threading.enumerate():
        if thread.ident is None:
            continue
        try:
            clock = time.pthread_getcpuclockid(thread.ident)
            found[f"{thread.name} ({thread.native_id})"] = time.clock_gettime(clock)
        except OSError:
            continue
    return found


class ProfilingWorker(Worker):
    """django_ai_fields.rq_worker.Worker writing down where each RQ job's CPU goes,
    into ``$HORSE_PROFILE_DIR`` (without it, nothing differs). Per RQ job the parent
    appends a line to parent-<pid>.jsonl; the work horse writes horse-<pid>.json
    and, with ``HORSE_PROFILE_CPROFILE=1``, horse-<pid>-<n>-<thread>.prof."""

    parent_profiler: cProfile.Profile | None = None
    fork_cpu = 0.0
    horse_usage: dict[str, float] | None = None
    horse_entry: dict[str, float] | None = None
    horse_profiles: ThreadProfiles | None = None
    horse_gc: GcClock | None = None
    horse_sql: Statements | None = None
    last_horse_pid: int | None = None

    def work(self, *args: Any, **kwargs: Any) -> bool:
        directory = record_dir()
        if trying("prewarm"):
            prewarm()
        if trying("sslshare"):
            share_tls_context()
        if directory is not None and profiling():
            self.parent_profiler = cProfile.Profile(time.thread_time)
            self.parent_profiler.enable()
        try:
            return bool(super().work(*args, **kwargs))
        finally:
            if directory is not None and self.parent_profiler is not None:
                self.parent_profiler.disable()
                self.parent_profiler.dump_stats(str(directory / f"parent-{os.getpid()}.prof"))

    def execute_job(self, job: Any, queue: Any) -> None:
        directory = record_dir()
        if directory is None:
            super().execute_job(job, queue)
            return
        self.fork_cpu, self.horse_usage = 0.0, None
        before, started = own_usage(), time.perf_counter()
        try:
            super().execute_job(job, queue)
        finally:  # StopRequested: RQ's warm shutdown of a worker that thinks itself idle
            self.write_parent_line(directory, job, before, started)

    def write_parent_line(
        self, directory: Path, job: Any, before: dict[str, float], started: float
    ) -> None:
        after = own_usage()
        line = {
            "job": job.func_name,
            "horse_pid": self.last_horse_pid,
            "wall_s": time.perf_counter() - started,
            "parent_cpu_s": after["cpu"] - before["cpu"],
            "parent_minflt": after["minflt"] - before["minflt"],
            "fork_cpu_s": self.fork_cpu,
            "horse": self.horse_usage,
        }
        with open(directory / f"parent-{os.getpid()}.jsonl", "a") as out:
            out.write(json.dumps(line) + "\n")

    def fork_work_horse(self, job: Any, queue: Any) -> None:
        if trying("freeze"):
            gc.freeze()  # the heap so far: no collection in the horse walks (and copies) it
        before = own_usage()["cpu"]
        super().fork_work_horse(job, queue)  # the horse never comes back from it
        self.fork_cpu = own_usage()["cpu"] - before
        self.last_horse_pid = self.horse_pid

    def wait_for_horse(self) -> tuple[int | None, int | None, Any]:
        pid, status, usage = super().wait_for_horse()
        if usage is not None:
            self.horse_usage = usage_of(usage)
        return pid, status, usage

    def main_work_horse(self, job: Any, queue: Any) -> None:
        if self.parent_profiler is not None:
            self.parent_profiler.disable()  # the parent's, copied by fork()
        if record_dir() is not None:
            self.horse_entry = own_usage()
            self.horse_gc = GcClock()
            gc.callbacks.append(self.horse_gc)
            if profiling():
                self.horse_profiles = ThreadProfiles()
                self.horse_profiles.start()
        super().main_work_horse(job, queue)

    def perform_job(self, job: Any, queue: Any, execution: Any) -> bool:
        try:
            if self.horse_profiles is None:
                return bool(super().perform_job(job, queue, execution))
            from django.db import connection

            self.horse_sql = Statements()
            with connection.execute_wrapper(self.horse_sql):
                return bool(super().perform_job(job, queue, execution))
        finally:
            self.write_horse_record(job)

    def write_horse_record(self, job: Any) -> None:
        directory = record_dir()
        if directory is None or self.horse_entry is None:
            return
        end, threads, prefix = own_usage(), thread_cpu(), f"horse-{os.getpid()}"
        if self.horse_gc is not None:
            gc.callbacks.remove(self.horse_gc)
        profiles = self.horse_profiles.dump(directory, prefix) if self.horse_profiles else []
        record = {"job": job.func_name, "entry": self.horse_entry, "end": end}
        # The job's return value (a drain's AIJobs by outcome), where rq 3.0's
        # Job.perform() keeps it: read after the measurement, no Redis round trip.
        record["returned"] = getattr(job, "_result", None)
        record |= {"threads": threads, "profiles": profiles}
        record["gc"] = self.horse_gc.as_dict() if self.horse_gc else None
        record["sql"] = self.horse_sql.counted if self.horse_sql else None
        (directory / f"{prefix}.json").write_text(json.dumps(record, default=repr))


# --- The run: live.py's throughput scenario -----------------------------------------


def proc_split(pool: Any) -> Counter[str]:
    """CPU seconds of the worker processes by kind: the parents themselves, their
    reaped children (work horses), live work horses (their own process group) and
    other live children (RQ's scheduler process)."""
    from benchmarks.live import children, proc_cpu

    ticks = os.sysconf("SC_CLK_TCK")
    parts: Counter[str] = Counter()
    for process in pool.processes:
        utime, stime, cutime, cstime = proc_cpu(process.pid)
        parts["parent"] += (utime + stime) / ticks
        parts["reaped horses"] += (cutime + cstime) / ticks
        for child in children(process.pid):
            kind = "live horses" if process_group(child) == child else "scheduler"
            parts[kind] += sum(proc_cpu(child)[:2]) / ticks
    return parts


def process_group(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return -1
    return int(stat.rsplit(")", 1)[1].split()[2])


Watch = Callable[[Any], AbstractContextManager[object]]


def scenario(
    saves: int, latency: float, workers: int, worker_key: str, watch: Watch = nullcontext
) -> dict[str, Any]:
    """live.throughput(), one saving thread, with the CPU split by process; ``watch(pool)``
    is around the saves and the wait for their jobs."""
    from benchmarks import live

    live.reset()
    with live.provider(latency) as (clock, overrides):
        pool = live.Workers(workers, worker_key, overrides)
        try:
            before = proc_split(pool)
            with watch(pool):
                started = time.time()
                live.save_all([f"row {i}" for i in range(saves)], 1)
                finished = live.wait_until_done(saves)
                cpu = pool.cpu_seconds() - pool.start_cpu
                after = proc_split(pool)
        finally:
            pool.stop()
    live.assert_all_answered(saves, clock)
    wall = finished - started
    split = {kind: round((after[kind] - before[kind]) * 1000 / saves, 2) for kind in after}
    return {
        "saves": saves,
        "wall_s": round(wall, 3),
        "jobs_per_s": round(saves / wall, 1),
        "cpu_ms_per_job": round(cpu * 1000 / saves, 2),
        "split_ms_per_job": split,
    }


def run_mode(full_mode: str, directory: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One run of ``mode`` (with its changes to try: ``account+freeze+prewarm``)."""
    from django.conf import settings
    from django.test import override_settings

    from benchmarks import live

    live.WORKER_CLASSES.setdefault("horse", WORKER_CLASS)
    directory.mkdir(parents=True, exist_ok=True)
    mode, *changes = full_mode.split("+")
    for name in (ENV_DIR, ENV_CPROFILE, ENV_TRY):
        os.environ.pop(name, None)
    if mode != "fork":
        os.environ[ENV_DIR] = str(directory)
        os.environ[ENV_TRY] = ",".join(changes)
    if mode == "profile":
        os.environ[ENV_CPROFILE] = "1"
    overrides = {**settings.AI_FIELDS, "DRAIN_LINGER": args.linger}
    watch: Watch = nullcontext
    if mode == "sample":
        watch = lambda pool: sampled(pool, directory, args.py_spy, args.rate, args.gil)  # noqa: E731
    with override_settings(AI_FIELDS=overrides):
        key = "fork" if mode == "fork" else "horse"
        result = scenario(args.saves, args.latency / 1000, args.workers, key, watch)
    result |= {"mode": full_mode, "load_1min": os.getloadavg()[0]}
    result |= {"rate": args.rate, "gil": args.gil}
    if mode != "fork":
        from benchmarks.horse_report import record_summary

        result["records"] = record_summary(directory, args.saves, result["split_ms_per_job"])
    (directory / "run.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


@contextmanager
def sampled(pool: Any, directory: Path, binary: str, rate: int, gil: bool) -> Iterator[None]:
    """py-spy on each worker process and its children, writing py-spy-<pid>.txt
    (collapsed stacks of running threads, full file names) when stopped. ``gil``:
    only threads holding the GIL (a thread runnable but waiting for a core counts
    as running otherwise)."""
    spies = [
        subprocess.Popen(
            [
                *(binary, "record", "--rate", str(rate), "--pid", str(process.pid)),
                *("--subprocesses", "--nonblocking", "--full-filenames", "--format", "raw"),
                *("--output", str(directory / f"py-spy-{process.pid}.txt")),
                *(["--gil"] if gil else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for process in pool.processes
    ]
    time.sleep(1.0)  # attached
    try:
        yield
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)
        for spy in spies:
            spy.wait(timeout=60)


# --- What a work horse builds for itself, without a profiler ------------------------


def cold_steps() -> dict[str, Callable[[], object]]:
    """What the profiles show each work horse that runs AI jobs doing once, after the
    parent process warmed the provider (``Provider.warm()``, as a worker does)."""
    import importlib

    import openai
    from genai_prices import data_snapshot
    from httpcore2._ssl import default_ssl_context

    from django_ai_fields.providers import build_provider

    provider = build_provider(
        "openai", {"API_KEY": "sk-bench", "BASE_URL": "http://127.0.0.1:9/v1"}
    )
    provider.warm()
    return {
        "genai_prices data_snapshot.get_snapshot() (money.pricing)": data_snapshot.get_snapshot,
        "httpcore2._ssl.default_ssl_context()": default_ssl_context,
        "openai.AsyncOpenAI(**client_options()) (its TLS context included)": lambda: (
            openai.AsyncOpenAI(**provider.client_options())  # type: ignore[attr-defined]
        ),
        "import anyio._backends._asyncio": lambda: importlib.import_module(
            "anyio._backends._asyncio"
        ),
    }


def cold_start(reps: int) -> None:
    """Each step's CPU in a fresh fork of this warmed process: the first time, and
    again in the same child (what a second horse-less call would cost)."""
    steps = cold_steps()
    print("\nonce per work horse, measured in forked children of a warmed process (ms):")
    print(f"  {'first':>7} {'again':>7}  (median of {reps})")
    for name, step in steps.items():
        runs = [in_child(step) for _ in range(reps)]
        first = statistics.median(r[0] for r in runs)
        again = statistics.median(r[1] for r in runs)
        print(f"  {first * 1000:7.2f} {again * 1000:7.2f}  {name}")


def in_child(step: Callable[[], object]) -> tuple[float, float]:
    """CPU seconds of ``step()`` in a forked child, the first time and the second."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        figures = []
        for _ in range(2):
            started = time.process_time()
            step()
            figures.append(time.process_time() - started)
        os.write(write, json.dumps(figures).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        first, again = json.loads(pipe.read())
    os.waitpid(pid, 0)
    return first, again


# --- Command line -----------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", default="fork,account,profile")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--saves", type=int, default=120)
    parser.add_argument("--latency", type=float, default=200, help="ms")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--linger", type=float, default=0, help="DRAIN_LINGER, seconds")
    parser.add_argument("--out", type=Path, default=Path(f"/tmp/horse-profile-{os.getpid()}"))
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--py-spy", default="py-spy", help="the py-spy binary (sample mode)")
    parser.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    parser.add_argument("--gil", action="store_true", help="py-spy: GIL holders only")
    parser.add_argument("--report", type=Path, default=None, help="only report this directory")
    parser.add_argument(
        "--cold", type=int, default=0, help="only time what a horse builds, N times"
    )
    args = parser.parse_args()
    from benchmarks.horse_report import horse_costs, report, run_modes, sample_report, summarize

    if args.cold:
        from benchmarks.harness import setup_django

        setup_django()
        cold_start(args.cold)
        return 0
    if args.report:
        summarize(args.report)
        for mode in run_modes(args.report):
            horse_costs(args.report, mode)
        report(args.report, args.top)
        sample_report(args.report, args.top)
        return 0
    if not os.environ.get("REDIS_URL"):
        sys.exit("horse_profile.py needs REDIS_URL (a real Redis): see its docstring")
    from benchmarks.harness import run_database, setup_django

    setup_django()
    results = []
    with run_database():
        for rep in range(args.reps):
            for mode in args.modes.split(","):
                result = run_mode(mode, args.out / f"{mode}-{rep}", args)
                print(json.dumps(result), flush=True)
                results.append(result)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    summarize(args.out)
    for mode in run_modes(args.out):
        horse_costs(args.out, mode)
    report(args.out, args.top)
    sample_report(args.out, args.top)
    print(f"\nrecords in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
