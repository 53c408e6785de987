"""Services the fault suite starts for itself and may break at will: a redis-server on
a free port, a throwaway PostgreSQL cluster, and supervised rqworker processes.

Nothing here touches the machine's shared Redis or PostgreSQL services.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():  # type: ignore[operator]
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up within {seconds} s")


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


# --------------------------------------------------------------------------- Redis


class RedisServer:
    """A private redis-server without persistence: a restart loses everything."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def unavailable() -> str | None:
        return None if shutil.which("redis-server") else "redis-server is not installed"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            "redis-server",
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        wait_until(lambda: port_open(self.port), 10, "redis-server")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def stop(self) -> None:
        self.kill()


# --------------------------------------------------------------------------- PostgreSQL


def postgres_bin() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for folder in candidates:
        if Path(folder, "initdb").exists() and Path(folder, "pg_ctl").exists():
            return Path(folder)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


class PostgresCluster:
    """A throwaway cluster in a temp dir (run as the ``postgres`` user when we are root)."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.data = workdir / "pgdata"
        self.port = free_port()
        self.bin = postgres_bin()

    @staticmethod
    def unavailable() -> str | None:
        if postgres_bin() is None:
            return "no initdb/pg_ctl found (install postgresql)"
        if os.geteuid() == 0 and not shutil.which("runuser"):
            return "running as root without runuser: initdb refuses root"
        if os.geteuid() == 0:
            try:
                import pwd

                pwd.getpwnam("postgres")
            except KeyError:
                return "running as root and there is no postgres user for initdb"
        return None

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(
            [*prefix, *command], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def init(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres", "postgres")
        assert self.bin is not None
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
            "--no-sync", "-E", "UTF8",
        )  # fmt: skip

    def start(self) -> None:
        assert self.bin is not None
        options = (
            f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=100"
        )
        log = self.workdir / "postgres.log"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(log),
                  "-w", "-t", "30", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        assert self.bin is not None
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        """What an operator's restart does: every connection is cut."""
        self.stop("fast")
        self.start()

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(sql)  # type: ignore[arg-type]


@contextlib.contextmanager
def postgres_cluster() -> Iterator[PostgresCluster | None]:
    """A running throwaway cluster, or None (with the reason printed) if impossible."""
    reason = PostgresCluster.unavailable()
    if reason:
        print(f"fault suite: no private PostgreSQL ({reason}); SQLite instead", file=sys.stderr)
        yield None
        return
    workdir = Path(tempfile.mkdtemp(prefix="ai-fields-faults-pg-"))
    os.chmod(workdir, 0o755)
    cluster = PostgresCluster(workdir)
    try:
        cluster.init()
        cluster.start()
    except (subprocess.CalledProcessError, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        print(f"fault suite: PostgreSQL did not start ({exc} {detail!r})", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)
        yield None
        return
    try:
        yield cluster
    finally:
        cluster.stop("immediate")
        shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------- workers


# rq.SimpleWorker runs jobs in the worker process: a SIGKILL is a worker dying mid-job.
# The forking worker (rq.Worker, as ``manage.py rqworker`` starts it by default, in
# the subclass the quick start names: django_ai_fields.rq_worker, stopping at once) runs each
# RQ job (a drain of many AI jobs, a chunk) in a work horse of its own process group;
# the scenarios' ``_forking`` variants run with it (FAULTS_WORKER_CLASS overrides both).
WORKER_CLASS = "rq.SimpleWorker"
FORKING_WORKER_CLASS = "django_ai_fields.rq_worker.Worker"


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc): a forking worker's work horse."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


class Workers:
    """N ``manage.py rqworker --with-scheduler`` processes, restarted when they die
    (as systemd or supervisord would), each in its own process group."""

    def __init__(
        self, env: dict[str, str], count: int, log_dir: Path, worker_class: str = WORKER_CLASS
    ):
        self.env = env
        self.worker_class = env.get("FAULTS_WORKER_CLASS", worker_class)
        self.count = count
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen[bytes]] = []
        self.restarts = 0
        self.kills = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"worker-{index}.log", "ab")  # noqa: SIM115
        command = [sys.executable, "-m", "django", "rqworker", "default", "--with-scheduler"]
        command += ["--worker-class", self.worker_class]
        return subprocess.Popen(
            command, env=self.env, cwd=ROOT, stdout=log, stderr=log, start_new_session=True
        )

    def start(self) -> None:
        self.processes = [self._spawn(i) for i in range(self.count)]
        self._thread = threading.Thread(target=self._supervise, daemon=True)
        self._thread.start()

    def _supervise(self) -> None:
        while not self._stop.wait(0.25):
            with self._lock:
                for index, process in enumerate(self.processes):
                    if process.poll() is not None:
                        self.processes[index] = self._spawn(index)
                        self.restarts += 1

    def busy(self) -> list[int]:
        """The workers running a work horse (forking workers in the middle of a job)."""
        with self._lock:
            return [i for i, process in enumerate(self.processes) if children(process.pid)]

    def kill(self, index: int) -> None:
        """SIGKILL the worker and its work horse (the worker's process group, and the
        forking worker's horse, which RQ puts in a group of its own)."""
        with self._lock:
            process = self.processes[index]
            signal_tree(process, signal.SIGKILL)
            process.wait(timeout=10)
            self.kills += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                signal_tree(process, signal.SIGKILL)
                process.wait(timeout=5)


def signal_tree(process: subprocess.Popen[bytes], signum: int) -> None:
    """Signal the worker's work horses (their own process groups), then its group."""
    for horse in children(process.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(horse, signum)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


class CeleryWorkers(Workers):
    """The same supervision for ``celery -A proj worker`` (prefork, one pool process
    each): a kill takes the worker and its pool process."""

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"worker-{index}.log", "ab")  # noqa: SIM115
        command = [sys.executable, "-m", "celery", "-A", "tests.backends.celeryproj", "worker"]
        command += ["-P", "prefork", "-c", "1", "-n", f"faults-{index}-{os.getpid()}@localhost"]
        command += ["-l", "WARNING"]
        return subprocess.Popen(
            command, env=self.env, cwd=ROOT, stdout=log, stderr=log, start_new_session=True
        )
