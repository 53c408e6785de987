"""The kill soak: live traffic drained by forking ``rqworker`` processes that a
killer SIGKILLs now and then, then a verifier of what the kills cost.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
    REDIS_URL=redis://127.0.0.1:6379/7 \\
        .venv/bin/python benchmarks/soak.py [--rows 5000] [--updates 1000]
        [--kills 20] [--workers 3] [--check] [--output FILE]

A fresh database of its own on PostgreSQL (``DATABASE_URL``) and a queue of its
own on Redis (``REDIS_URL``), ``CONN_MAX_AGE=60`` as docs/performance.md
recommends. W ``rqworker --with-scheduler`` processes (forking: each job runs in
a work horse). The provider is tests/fake_provider.py behind the real openai SDK,
answering in 50-400 ms; its answer is made from the prompt, so the verifier knows
which value each row should end with. Rows (benchmarks/soakapp) are created in a
steady stream, each save its own transaction, with ``--updates`` notes updates of
random rows among them; meanwhile a killer SIGKILLs a random worker or work horse
every 8-15 s (``--kills`` times), starts a new worker for a killed one, and
notes which rows the dead process held (its jobs still ``running`` right after).

The verifier prints:

- rows lost: a row whose value is not the answer to its latest notes;
- jobs left open;
- calls per (row, input): each call beyond the first for the same input is
  attributed to a kill when a killed process held that row's job, else not;
- requests cut by a kill: the provider could not read the body (a work horse died
  sending it; a real provider bills nothing for it), each within a second of a kill;
- calls without a usage row: calls the provider received that no ``AIUsage`` row
  of the row's jobs accounts for;
- values written twice: a row whose value was written by two jobs for one input.

``--check`` exits 1 on any row lost, job left open, extra call (or cut request) not
attributed to a kill, or call without a usage row (CI's real-service step runs it at 1,000 rows).
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0]).resolve() == HERE:
    sys.path.pop(0)
sys.path.insert(0, str(HERE.parent))

from benchmarks.harness import ROOT, run_database  # noqa: E402

SETTINGS = "benchmarks.soakapp.settings"
# The prompt benchmarks/soakapp renders, read back by the provider.
PROMPT = re.compile(
    r'Summarize lead (?:<data field="name">)?(?P<name>[^<\s]+)(?:</data>)?\. '
    r'Notes: (?:<data field="notes">)?(?P<notes>.*?)(?:</data>)?$',
    re.DOTALL,
)
OPEN = ("pending", "queued", "running", "in_review")


def answer_for(name: str, notes: str) -> str:
    """The provider's answer to a row's input: the verifier expects it on the row."""
    return f"Summary of {name}: {hashlib.sha256(notes.encode()).hexdigest()[:16]}"


@dataclass
class Call:
    name: str
    notes: str
    started: float


class Provider:
    """The fake provider's responder: logs each call's (row, notes) and answers
    after 50-400 ms with the answer made from them."""

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high
        self.calls: list[Call] = []
        self.lock = threading.Lock()

    def __call__(self, request: Any) -> str:
        messages = (request.body or {}).get("messages") or []
        prompt = str(messages[-1].get("content", "")) if messages else ""
        found = PROMPT.search(prompt)
        name, notes = (found["name"], found["notes"]) if found else (CUT, prompt)
        with self.lock:
            self.calls.append(Call(name, notes, time.time()))
        time.sleep(random.uniform(self.low, self.high))
        return answer_for(name, notes)


@dataclass
class Kill:
    at: float
    target: str  # "worker" or "horse"
    pid: int
    rows: set[str] = field(default_factory=set)


class Workers:
    """W ``rqworker --with-scheduler`` processes; a killed one is replaced."""

    def __init__(self, count: int, env: dict[str, str]) -> None:
        from django.conf import settings

        self.env = env
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115  (closed by stop())
        self.command = [sys.executable, "-m", "django", "rqworker", settings.QUEUE_NAME]
        self.command += ["--with-scheduler"]
        self.processes = [self.start() for _ in range(count)]

    def start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self.command, env=self.env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self.errors
        )

    def horse_of(self, process: subprocess.Popen[bytes]) -> int | None:
        """The work horse the worker forked, if one runs now."""
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == process.pid:  # its parent
                return int(stat.parent.name)
        return None

    def replace(self, process: subprocess.Popen[bytes]) -> None:
        process.wait()
        self.processes[self.processes.index(process)] = self.start()

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        self.errors.close()


def current_task(pid: int) -> str:
    """The RQ job the worker process ``pid`` is running ("" when idle)."""
    from rq import Worker

    from benchmarks.workers import get_queue

    queue = get_queue()
    for worker in Worker.all(connection=queue.connection):
        if worker.pid == pid:
            return worker.get_current_job_id() or ""
    return ""


def rows_held(task_id: str) -> set[str]:
    """The rows whose jobs the task ``task_id`` held (still running after its death)."""
    from django_ai_fields.models import AIJob

    if not task_id:
        return set()
    ids = AIJob.objects.filter(status="running", rq_job_id=task_id).values_list(
        "object_id", flat=True
    )
    return set(name_of_pks(list(ids)))


def name_of_pks(pks: list[str]) -> list[str]:
    from benchmarks.soakapp.models import SoakLead

    return list(SoakLead.objects.filter(pk__in=pks).values_list("name", flat=True))


def kill_one(pool: Workers, kills: list[Kill]) -> None:
    """SIGKILL a random worker or its work horse; note the rows it held."""
    from django.db import connection

    busy = [(p, h) for p in pool.processes if (h := pool.horse_of(p))]
    if busy and random.random() < 0.75:  # mostly a work horse: it holds the jobs
        process, horse = random.choice(busy)
        target, pid = "horse", horse
    else:
        process = random.choice(pool.processes)
        target, pid = "worker", process.pid
    task = current_task(process.pid)
    # A worker dies with its work horse, as a container stop or a cgroup's OOM killer
    # takes both: a horse left running alone loses its task's heartbeat, and the
    # sweep may run its jobs again while it still calls (an extra call of that kill).
    horse = pool.horse_of(process) if target == "worker" else None
    try:
        os.kill(pid, signal.SIGKILL)
        if horse:
            os.kill(horse, signal.SIGKILL)
    except ProcessLookupError:  # the horse ended meanwhile
        if target == "horse":
            return
    kill = Kill(time.time(), target, pid)
    time.sleep(0.2)  # the jobs the dead horse held are as it left them
    kill.rows = rows_held(task)
    connection.close()
    kills.append(kill)
    if target == "worker":
        pool.replace(process)


def killer(pool: Workers, count: int, stop: threading.Event, kills: list[Kill]) -> None:
    while len(kills) < count and not stop.wait(random.uniform(8, 15)):
        kill_one(pool, kills)


def load(rows: int, updates: int, seconds: float) -> None:
    """Create ``rows`` rows in a steady stream over ``seconds``, with ``updates``
    notes updates of random earlier rows among them; each save its own transaction."""
    from django.db import connection, transaction

    from benchmarks.soakapp.models import SoakLead

    steps = ["create"] * rows + ["update"] * updates
    random.shuffle(steps)
    while steps and steps[0] == "update":
        steps.append(steps.pop(0))
    created: list[int] = []
    started = time.time()
    for n, step in enumerate(steps):
        if step == "create":
            with transaction.atomic():
                lead = SoakLead.objects.create(name=f"lead-{len(created)}", notes="first notes")
            created.append(lead.pk)
        else:
            pk = random.choice(created)
            with transaction.atomic():
                lead = SoakLead.objects.get(pk=pk)
                lead.notes = f"notes updated {n}"
                lead.save()
        pause = started + (n + 1) * seconds / len(steps) - time.time()
        if pause > 0:
            time.sleep(pause)
    connection.close()


def wait_quiet(timeout: float, cron: float) -> float:
    """Wait until no job is open, running ``ai_requeue`` every ``cron`` seconds as
    docs/reliability.md's backstop cron job would; returns when the last job ended."""
    from django.core.management import call_command
    from django.db.models import Max

    from django_ai_fields.models import AIJob

    deadline = time.time() + timeout
    next_cron = time.time() + cron
    while time.time() < deadline:
        if not AIJob.objects.filter(status__in=OPEN).exists():
            break
        if cron and time.time() >= next_cron:
            call_command("ai_requeue", stdout=io.StringIO())
            next_cron = time.time() + cron
        time.sleep(0.5)
    last = AIJob.objects.aggregate(last=Max("finished_at"))["last"]
    return last.timestamp() if last else time.time()


def verify(provider: Provider, kills: list[Kill]) -> dict[str, Any]:
    """What the kills cost (see the module's docstring)."""
    from benchmarks.soakapp.models import SoakLead
    from django_ai_fields.models import AIJob

    rows = {lead.name: lead for lead in SoakLead.objects.all()}
    lost = sorted(n for n, lead in rows.items() if lead.summary != answer_for(n, lead.notes))
    whole = [call for call in provider.calls if call.name != CUT]
    return {
        "rows": len(rows),
        "rows_lost": len(lost),
        "lost_examples": lost[:5],
        "jobs_left_open": AIJob.objects.filter(status__in=OPEN).count(),
        **cut_requests(provider, kills),
        **extra_calls(whole, kills),
        **usage_rows(whole, {str(lead.pk): name for name, lead in rows.items()}),
        "values_written_twice": written_twice(),
        "kills": [{"target": k.target, "rows_held": len(k.rows)} for k in kills],
    }


def cut_requests(provider: Provider, kills: list[Kill]) -> dict[str, Any]:
    """Requests whose body the provider could not read (no prompt in it): a work
    horse killed while sending it. A real provider answers such a request with an
    error and bills nothing; each must come within a second of a kill."""
    cut = [call.started for call in provider.calls if call.name == CUT]
    by_kill = [t for t in cut if any(abs(t - kill.at) < CUT_WINDOW for kill in kills)]
    return {
        "requests_cut_by_a_kill": len(by_kill),
        "requests_cut_unattributed": len(cut) - len(by_kill),
    }


# A request the provider could not read; it counts as a kill's within this many seconds.
CUT = "?"
CUT_WINDOW = 1.0


def extra_calls(calls_made: list[Call], kills: list[Kill]) -> dict[str, Any]:
    """Calls per (row, input) beyond the first, attributed to a kill (a killed work
    horse held a job of that row) or not."""
    calls = collections.Counter((call.name, call.notes) for call in calls_made)
    killed_rows = set().union(*(kill.rows for kill in kills)) if kills else set()
    extra = {key: n - 1 for key, n in calls.items() if n > 1}
    unattributed = [key for key in extra if key[0] not in killed_rows]
    return {
        "calls": sum(calls.values()),
        "inputs": len(calls),
        "extra_calls": sum(extra.values()),
        "extra_calls_attributed_to_a_kill": sum(
            n for (name, _notes), n in extra.items() if name in killed_rows
        ),
        "extra_calls_unattributed": sum(extra[key] for key in unattributed),
        "unattributed_examples": [list(key) for key in unattributed[:5]],
    }


def usage_rows(calls_made: list[Call], pk_to_name: dict[str, str]) -> dict[str, Any]:
    """Calls the provider received per row against the row's AIUsage rows."""
    from django_ai_fields.models import AIUsage

    logged = AIUsage.objects.filter(cache_hit=False).values_list("job__object_id", flat=True)
    usage = collections.Counter(pk_to_name.get(object_id, "?") for object_id in logged)
    per_row = collections.Counter(call.name for call in calls_made)
    short = {name: (n, usage[name]) for name, n in per_row.items() if n > usage[name]}
    return {
        "calls_without_usage_row": sum(made - rows for made, rows in short.values()),
        "unlogged_examples": {name: list(counts) for name, counts in list(short.items())[:5]},
        # Logged "sent", then killed before the request left: counted, never sent.
        "usage_rows_of_a_call_that_never_left": sum(
            max(0, n - per_row[name]) for name, n in usage.items()
        ),
        "usage_rows": sum(usage.values()),
    }


def written_twice() -> int:
    """Rows whose value two succeeded jobs wrote for one input."""
    from django.db.models import Count

    from django_ai_fields.models import AIJob

    twice = (
        AIJob.objects.filter(status="succeeded")
        .values("object_id", "input_hash")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
    )
    return twice.count()


def fresh_redis(queue: Any) -> None:
    """The run's queue empty and no state of the app left by an earlier run (the
    sweep's schedule, drain marks, breakers): give the soak a Redis db of its own."""
    queue.empty()
    keys = list(queue.connection.scan_iter("django_ai_fields:*"))
    if keys:
        queue.connection.delete(*keys)


def failed(report: dict[str, Any]) -> list[str]:
    """What ``--check`` fails on."""
    keys = (
        "rows_lost",
        "jobs_left_open",
        "extra_calls_unattributed",
        "requests_cut_unattributed",
        "calls_without_usage_row",
    )
    return [key for key in keys if report[key]]


def ai_fields(args: argparse.Namespace, base_url: str) -> dict[str, Any]:
    """The run's AI_FIELDS: the fake provider, the sweep's pace, JOB_TIMEOUT."""
    from django.conf import settings

    return {
        **settings.AI_FIELDS,
        "DEFAULT_PROVIDER": "openai",
        "PROVIDERS": {"openai": {"API_KEY": "sk-soak", "BASE_URL": base_url}},
        "JOB_TIMEOUT": args.job_timeout,
        "SWEEP_INTERVAL": args.sweep_interval,
        "PENDING_GRACE": args.sweep_interval,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from django.test import override_settings

    from benchmarks.workers import get_queue, worker_env
    from tests.fake_provider import running_fake_provider

    seconds = args.seconds or args.kills * 11.5
    provider = Provider(0.05, 0.4)
    with running_fake_provider() as server:
        server.responder = provider
        overrides = ai_fields(args, server.openai_base_url)
        env = worker_env(overrides)
        env["DJANGO_SETTINGS_MODULE"] = SETTINGS
        with override_settings(AI_FIELDS=overrides):
            fresh_redis(get_queue())
            pool = Workers(args.workers, env)
            kills: list[Kill] = []
            stop = threading.Event()
            thread = threading.Thread(target=killer, args=(pool, args.kills, stop, kills))
            started = time.time()
            thread.start()
            try:
                load(args.rows, args.updates, seconds)
                load_end = time.time()
                stop.set()
                thread.join()
                last = wait_quiet(args.timeout, args.cron)
            finally:
                stop.set()
                pool.stop()
            report = verify(provider, kills)
    report.update(
        workers=args.workers,
        updates=args.updates,
        load_s=round(load_end - started, 1),
        last_job_after_load_s=round(last - load_end, 1),
    )
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--updates", type=int, default=None, help="default: rows / 5")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=None, help="default: kills x 11.5")
    parser.add_argument("--job-timeout", type=int, default=120)
    parser.add_argument("--sweep-interval", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=600, help="wait for the jobs to end")
    parser.add_argument("--cron", type=float, default=60, help="ai_requeue every N s (0: never)")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    if args.updates is None:
        args.updates = args.rows // 5
    if not (os.environ.get("REDIS_URL") and os.environ.get("DATABASE_URL")):
        sys.exit("benchmarks/soak.py needs DATABASE_URL (PostgreSQL) and REDIS_URL")
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    os.environ.setdefault("AI_FIELDS_BENCH_CONN_MAX_AGE", "60")
    import django

    django.setup()
    with run_database():
        report = run(args)
    print(json.dumps(report, indent=2))
    if args.output:
        args.output.write_text(json.dumps(report, indent=2) + "\n")
    problems = failed(report)
    if args.check and problems:
        print("soak check failed:", ", ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
