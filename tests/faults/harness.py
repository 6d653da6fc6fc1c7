"""The whole hub as real processes, for fault tests: a private PostgreSQL cluster, a private
Redis, gunicorn as in the Procfile (the sandbox platforms mounted), a Celery worker and Celery beat.

    with Hub(tmp_path) as hub:
        hub.seed_demo(days=3)          # or your own setup through hub.manage / hub.shell
        hub.start()                    # web, worker, beat
        requests.post(f"{hub.base_url}/api/v1/readings/", ...)
        hub.kill_worker(); hub.start_worker()
        hub.wait_for(lambda: ..., timeout=120, what="deliveries to catch up")

Nothing here touches the shared PostgreSQL (5432) or Redis (6379): every server is started on
a free port under `workdir` and stopped, with its files, when the block ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import requests
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path(os.environ.get("FAULTS_PG_BIN") or max(
    Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name),
    default=Path("/usr/lib/postgresql/15/bin")))
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
PYTHON = sys.executable
# Collected once per machine and reused: DEBUG is off, so static files come from a manifest.
STATIC_ROOT = Path(os.environ.get("FAULTS_STATIC_ROOT")
                   or Path(tempfile.gettempdir()) / f"hub-faults-static-{os.getuid()}")

# Periodic tasks run this often (seconds) instead of their production intervals, so a
# scenario sees several rounds of every schedule within a minute. None disables a task.
DEFAULT_SCHEDULES: dict[str, int | None] = {
    "dexma: deliver readings": 5,
    "dexma: apply consents": 30,
    "wattics: push streams": 5,
    "volue: registrations": 10,
    "volue: plan reports": 10,
    "volue: send reports": 5,
    "volue: events catch-up": 30,
    "pull: first sync of new connections": 30,
    # The simulated meters would keep adding readings and move every total under the test.
    "sandbox: demo meters": None,
}

# Settings for every process (see config/settings/); `Hub(env=...)` overrides any of them.
DEFAULT_ENV = {
    "DEBUG": "false",
    "SECURE_SSL_REDIRECT": "false",  # plain HTTP on loopback
    "SANDBOX_ENABLED": "true",
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "LOG_LEVEL": "INFO",
    "CONN_MAX_AGE": "60",
    # Short retries and leases: a batch whose worker died is sent again within seconds.
    "OUTBOX_RETRY_SCHEDULE": "2,5,10,20",
    "OUTBOX_LEASE_SECONDS": "30",
    "WATTICS_PUSH_EVERY_SECONDS": "5",
    "WATTICS_RETRY_BACKOFF": "0.2",
    "PARTNER_API_RATE_PER_MINUTE": "100000",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class HubError(RuntimeError):
    pass


class Hub:
    """The hub and its stores as processes; a context manager that tears everything down."""

    def __init__(self, workdir: Path, *, beat: bool = True, worker_concurrency: int = 2,
                 env: dict | None = None, web_workers: int = 2,
                 schedules: dict[str, int | None] | None = None):
        self.workdir = Path(workdir)
        self.beat_enabled = beat
        self.worker_concurrency = worker_concurrency
        self.web_workers = web_workers
        self.schedules = {**DEFAULT_SCHEDULES, **(schedules or {})}
        self.pg_port = free_port()
        self.redis_port = free_port()
        self.web_port = free_port()
        self.pg_dir = self.workdir / "pg"
        self.redis_dir = self.workdir / "redis"
        self.var_dir = self.workdir / "var"
        self.log_dir = self.workdir / "logs"
        self.base_url = f"http://127.0.0.1:{self.web_port}"
        self.database_url = f"postgresql://postgres@127.0.0.1:{self.pg_port}/hub"
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.env = {
            **{k: v for k, v in os.environ.items()
               if not k.startswith(("DJANGO_", "PYTEST", "TEST_DATABASE"))},
            **DEFAULT_ENV,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "SECRET_KEY": Fernet.generate_key().decode(),
            "SECRETS_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "HUB_BASE_URL": self.base_url,
            "PORT": str(self.web_port),
            "HUB_VAR_DIR": str(self.var_dir),
            "STATIC_ROOT": str(STATIC_ROOT),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.procs: dict[str, subprocess.Popen] = {}
        # Secrets a scenario sent or stored; none may appear in any log (`log_leaks`).
        self.planted: set[str] = {self.env["SECRET_KEY"], self.env["SECRETS_ENCRYPTION_KEY"]}
        self._logs: dict[str, object] = {}
        self._log_starts: dict[str, int] = {}
        self._conn: psycopg.Connection | None = None
        self._pg_started = False

    # --- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> Hub:
        try:
            for path in (self.redis_dir, self.var_dir, self.log_dir):
                path.mkdir(parents=True, exist_ok=True)
            self._start_postgres()
            self.start_redis()
            self.manage("migrate", "--noinput", "-v0")
            self._collectstatic()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> Hub:
        """Apply the test schedules, then start web, worker and (if asked) beat."""
        self.apply_schedules()
        self.start_web()
        self.start_worker()
        if self.beat_enabled:
            self.start_beat()
        return self

    def close(self) -> None:
        for name in list(self.procs):
            self._stop(name)
        self._drop_conn()
        if self._redis_running():
            self.stop_redis()
        if self._pg_started:
            self._pg_ctl("stop", "-m", "immediate", check=False)
            self._pg_started = False
        for handle in self._logs.values():
            handle.close()
        if os.environ.get("FAULTS_KEEP") != "1":
            shutil.rmtree(self.pg_dir, ignore_errors=True)
            shutil.rmtree(self.redis_dir, ignore_errors=True)
            shutil.rmtree(self.var_dir, ignore_errors=True)

    # --- PostgreSQL ---------------------------------------------------------------------

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self._as_postgres(
            [str(PG_BIN / "pg_ctl"), "-D", str(self.pg_dir), "-w", "-t", "60", *args],
            check=check)

    def _as_postgres(self, cmd: list[str], check: bool = True) -> subprocess.CompletedProcess:
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if check and done.returncode:
            raise HubError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def _start_postgres(self) -> None:
        self.pg_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.pg_dir, "postgres", "postgres")
            shutil.chown(self.log_dir, "postgres", "postgres")  # the server writes its log
            # postgres must be able to walk down to its data directory.
            for parent in [self.workdir, *self.workdir.parents]:
                if parent == Path("/"):
                    break
                parent.chmod(parent.stat().st_mode | 0o011)
        self._as_postgres([str(PG_BIN / "initdb"), "-D", str(self.pg_dir), "-A", "trust",
                           "-U", "postgres", "-E", "UTF8", "--no-sync"])
        self._pg_ctl("start", "-l", str(self.log_dir / "postgres.log"), "-o", self._pg_options())
        self._pg_started = True
        with psycopg.connect(self._dsn("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE hub")

    def _pg_options(self) -> str:
        return (f"-p {self.pg_port} -k {self.pg_dir} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=200")

    def _dsn(self, db: str = "hub") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.pg_port}/{db}"

    def restart_postgres(self) -> float:
        """`pg_ctl restart -m fast`: every open connection is cut. Returns the seconds taken."""
        began = time.monotonic()
        self._drop_conn()
        self._pg_ctl("restart", "-m", "fast", "-l", str(self.log_dir / "postgres.log"),
                     "-o", self._pg_options())
        return time.monotonic() - began

    def stop_postgres(self) -> None:
        self._drop_conn()
        self._pg_ctl("stop", "-m", "fast")

    def start_postgres(self) -> None:
        self._pg_ctl("start", "-l", str(self.log_dir / "postgres.log"), "-o", self._pg_options())

    def _drop_conn(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None

    def sql(self, query: str, params=()) -> list[tuple]:
        """Run one statement on the private cluster (autocommit); rows, or [] if none."""
        for attempt in range(2):
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self.database_url, autocommit=True)
            try:
                cur = self._conn.execute(query, params)
                return cur.fetchall() if cur.description else []
            except psycopg.OperationalError:
                self._drop_conn()
                if attempt:
                    raise
        return []

    # --- Redis --------------------------------------------------------------------------

    def start_redis(self) -> None:
        """Start (or start again, on the same port) the private Redis."""
        if self._redis_running():
            return
        self._spawn("redis", [REDIS_SERVER, "--port", str(self.redis_port), "--bind",
                              "127.0.0.1", "--save", "", "--appendonly", "no",
                              "--dir", str(self.redis_dir)], env=os.environ.copy())
        self.wait_for(lambda: _port_open(self.redis_port), 20, "redis to accept connections")

    def stop_redis(self) -> None:
        """Kill Redis (its data goes with it: nothing is persisted, as in a crash)."""
        self._stop("redis", sig=signal.SIGKILL)
        self.wait_for(lambda: not _port_open(self.redis_port), 10, "redis to stop")

    def _redis_running(self) -> bool:
        proc = self.procs.get("redis")
        return proc is not None and proc.poll() is None

    # --- the hub's processes ------------------------------------------------------------

    def manage(self, *args: str, check: bool = True, env: dict | None = None,
               timeout: float = 600) -> subprocess.CompletedProcess:
        """Run manage.py with the hub's environment (plus `env`)."""
        done = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT,
                              env={**self.env, **(env or {})}, capture_output=True, text=True,
                              timeout=timeout)
        if check and done.returncode:
            raise HubError(f"manage.py {' '.join(args)} exited {done.returncode}:\n"
                           f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
        return done

    def shell(self, code: str, *, env: dict | None = None, timeout: float = 600):
        """Run Python in the hub's Django (`manage.py shell -c`); returns what the code
        printed last as JSON (print(json.dumps(...))), or None."""
        done = self.manage("shell", "-c", code, env=env, timeout=timeout)
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        if not lines:
            return None
        try:
            return json.loads(lines[-1])
        except ValueError:
            return lines[-1]

    def popen_manage(self, name: str, *args: str) -> subprocess.Popen:
        """Start manage.py in the background (log in logs/<name>.log); stop it with
        `kill(name)` or wait on the returned process."""
        return self._spawn(name, [PYTHON, "manage.py", *args])

    def seed_demo(self, *, days: int = 2, keep_backfill: bool = False) -> dict:
        """`manage.py demo_setup` (it refuses without DEBUG, so only this command gets it):
        the demo deployment bound to the sandbox DEXMA, Wattics and Volue, a partner API key.

        The week's DEXMA backfill the demo queues is removed unless `keep_backfill`, so a
        scenario decides what is sent. Returns {"api_key": ..., "deployment": ...}.
        """
        done = self.manage("demo_setup", "--days", str(days), env={"DEBUG": "true"})
        # "  API key for demo-acme: <key> (kept in var/demo-api-key)"
        api_key = next((line.split(":", 1)[1].split()[0] for line in done.stdout.splitlines()
                        if "API key for" in line), None)
        if api_key:
            self.plant(api_key)
        if not keep_backfill:
            self.sql("DELETE FROM dexma_backfill")
        if self._redis_running():
            # Tasks demo_setup queued (the backfill) before any worker ran.
            subprocess.run([PYTHON, "-m", "celery", "-A", "config", "purge", "-f"], cwd=ROOT,
                           env=self.env, capture_output=True, timeout=60)
        return {"api_key": api_key, "deployment": "demo-acme", "stdout": done.stdout}

    def apply_schedules(self) -> None:
        """Write `self.schedules` to the periodic tasks (before beat starts)."""
        self.manage("setup_schedules")
        code = (
            "import json\n"
            "from django_celery_beat.models import IntervalSchedule, PeriodicTask\n"
            f"wanted = json.loads({json.dumps(json.dumps(self.schedules))})\n"
            "for name, every in wanted.items():\n"
            "    task = PeriodicTask.objects.filter(name=name).first()\n"
            "    if task is None:\n"
            "        continue\n"
            "    if every is None:\n"
            "        task.enabled = False\n"
            "    else:\n"
            "        task.enabled = True\n"
            "        task.interval, _ = IntervalSchedule.objects.get_or_create(\n"
            "            every=every, period=IntervalSchedule.SECONDS)\n"
            "        task.crontab = None\n"
            "    task.save()\n"
        )
        self.shell(code)

    def _collectstatic(self) -> None:
        """Collect once, and again whenever a static file of the project changed since."""
        manifest = STATIC_ROOT / "staticfiles.json"
        sources = [*ROOT.glob("static/**/*"), *ROOT.glob("apps/**/static/**/*")]
        newest = max((p.stat().st_mtime for p in sources if p.is_file()), default=0.0)
        if manifest.exists() and manifest.stat().st_mtime >= newest:
            return
        self.manage("collectstatic", "--noinput", "-v0")

    def start_web(self, name: str = "web", port: int | None = None) -> str:
        """gunicorn as the Procfile runs it (config/gunicorn.conf.py: gevent workers, access
        log), with `web_workers` workers, on this hub's port (or `port`: a second web
        process of the same hub); its base URL."""
        port = port or self.web_port
        self._spawn(name, [PYTHON, "-m", "gunicorn", "-c", "config/gunicorn.conf.py",
                           "-b", f"127.0.0.1:{port}",
                           "-w", str(self.web_workers), "--graceful-timeout", "5"])
        self.wait_for(lambda: self._web_up(name, port), 60, f"{name} to answer /healthz")
        return f"http://127.0.0.1:{port}"

    def _web_up(self, name: str = "web", port: int | None = None) -> bool:
        if self.procs[name].poll() is not None:
            raise HubError(f"gunicorn exited:\n{self.log_tail(name)}")
        try:
            return requests.get(f"http://127.0.0.1:{port or self.web_port}/healthz",
                                timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def start_worker(self, app: str = "config", *options: str, name: str = "worker") -> None:
        """Start a Celery worker of `app` (the hub's by default), with extra `options` (say
        `-Q dexma`); `name` tells several workers of one hub apart."""
        self._spawn(name, [PYTHON, "-m", "celery", "-A", app, "worker", "-l", "info",
                           "-c", str(self.worker_concurrency), "-n",
                           f"faults-{name}-{self.web_port}@%h", "--without-gossip",
                           "--without-mingle", *options])
        self.wait_for(lambda: self._log_has(name, " ready."), 60,
                      f"the Celery worker {name} to report ready")

    def start_beat(self) -> None:
        self._spawn("beat", [PYTHON, "-m", "celery", "-A", "config", "beat", "-l", "info",
                             "-s", str(self.var_dir / "celerybeat-schedule")])

    def kill_worker(self, sig: int = signal.SIGKILL, name: str = "worker") -> None:
        """Signal the worker's main process and its pool children at once (SIGKILL: as
        when the machine loses the process, no task is acknowledged or cleaned up)."""
        self.kill(name, sig)
        self._stop(name)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal one process this harness started, and its children, and wait for it."""
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            return
        for pid in [proc.pid, *self._children(proc.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill(name, signal.SIGKILL)

    def rss_mb(self) -> dict[str, float]:
        """Resident memory (MiB) of web (gunicorn master + workers), worker (with its pool)
        and beat."""
        result = {}
        for name in ("web", "worker", "beat"):
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            pids = [proc.pid, *self._children(proc.pid)]
            result[name] = round(sum(_rss_kb(pid) for pid in pids) / 1024, 1)
        return result

    def pids(self, name: str) -> list[int]:
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            return []
        return [proc.pid, *self._children(proc.pid)]

    def alive(self, name: str) -> bool:
        proc = self.procs.get(name)
        return proc is not None and proc.poll() is None

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def log_tail(self, name: str, chars: int = 4000) -> str:
        path = self.log_path(name)
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def _log_has(self, name: str, text: str) -> bool:
        """`text` in what the current run of `name` logged (not an earlier run's lines)."""
        proc = self.procs.get(name)
        if proc is not None and proc.poll() is not None:
            raise HubError(f"{name} exited {proc.returncode}:\n{self.log_tail(name)}")
        with open(self.log_path(name), "rb") as log:
            log.seek(self._log_starts.get(name, 0))
            return text.encode() in log.read()

    # --- secrets in logs ----------------------------------------------------------------

    def plant(self, secret: str) -> str:
        """Remember a secret this scenario sends or stores; returns it."""
        self.planted.add(secret)
        return secret

    def log_leaks(self) -> tuple[dict[str, list[str]], dict[str, int]]:
        """Every log file under logs/ searched for every planted secret (and its URL-encoded
        form): ({file: [secrets found]}, {"files", "lines", "secrets"} scanned)."""
        from urllib.parse import quote

        needles = {secret: {secret, quote(secret, safe="")} for secret in self.planted}
        leaks: dict[str, list[str]] = {}
        scanned = {"files": 0, "lines": 0, "secrets": len(needles)}
        for path in sorted(self.log_dir.glob("*")):
            if not path.is_file():
                continue
            text = path.read_text(errors="replace")
            scanned["files"] += 1
            scanned["lines"] += text.count("\n")
            found = [secret[:6] + "…" for secret, forms in needles.items()
                     if any(form in text for form in forms)]
            if found:
                leaks[path.name] = found
        return leaks, scanned

    # --- helpers ------------------------------------------------------------------------

    def wait_for(self, predicate: Callable[[], object], timeout: float, what: str,
                 interval: float = 0.5):
        """Poll `predicate` until it returns something truthy (returned); fail after
        `timeout` seconds saying what was awaited."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while True:
            try:
                value = predicate()
                if value:
                    return value
            except HubError:
                raise
            except Exception as exc:  # a store mid-restart: try again until the deadline
                last_error = exc
            if time.monotonic() > deadline:
                detail = f" (last error: {last_error!r})" if last_error else ""
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}"
                                     f"{detail}\n{self.diagnosis()}")
            time.sleep(interval)

    def diagnosis(self) -> str:
        """What a timed-out wait leaves behind to read: undelivered batches, links that are
        not active, the broker's queues, and the processes' latest warnings."""
        parts = ["--- hub state at the timeout ---"]

        def section(title: str, produce: Callable[[], list[str]]) -> None:
            try:
                lines = produce()
            except Exception as exc:  # a store may be what is down: say so, go on
                lines = [f"(unavailable: {exc!r})"]
            parts.append(f"{title}:")
            parts.extend(f"  {line}" for line in lines or ["(none)"])

        section("batches not sent (first 15)", lambda: [
            f"#{row[0]} {row[1]}/{row[2]} {row[3]} attempts={row[4]} due_in={row[5]} "
            f"error={row[6]!r}"
            for row in self.sql(
                "SELECT b.id, l.platform, l.name, b.state, b.attempts, "
                "round(extract(epoch FROM b.next_attempt_at - now())), left(b.last_error, 160) "
                "FROM core_outboundbatch b JOIN core_deliverylink l ON l.id = b.link_id "
                "WHERE b.state <> 'sent' ORDER BY b.next_attempt_at LIMIT 15")])
        section("links not active", lambda: [
            f"{row[0]}/{row[1]} {row[2]}: {row[3]!r}" for row in self.sql(
                "SELECT platform, name, state, left(broken_reason, 160) "
                "FROM core_deliverylink WHERE state <> 'active'")])
        section("broker", self._broker_state)
        for name in ("worker", "beat", "web"):
            section(f"{name}: last warnings and errors", lambda name=name: [
                line[:300] for line in self.log_tail(name, 200_000).splitlines()
                if '"WARNING"' in line or '"ERROR"' in line or '"CRITICAL"' in line][-8:])
            section(f"{name}: last lines", lambda name=name: [
                line[:200] for line in self.log_tail(name, 3000).splitlines()[-3:]])
        return "\n".join(parts)

    def _broker_state(self) -> list[str]:
        import redis

        client = redis.Redis.from_url(self.redis_url, socket_timeout=2)
        queues = {name: client.llen(name)
                  for name in ("celery", "dexma", "wattics", "volue", "pull")}
        return [f"queue lengths {queues}",
                f"unacked {client.hlen('unacked')}, locks {len(client.keys('*lock:*'))}"]

    def _spawn(self, name: str, cmd: list[str], env: dict | None = None) -> subprocess.Popen:
        if name in self.procs and self.procs[name].poll() is None:
            raise HubError(f"{name} is already running")
        if name in self._logs:
            self._logs.pop(name).close()
        log = open(self.log_path(name), "ab")  # noqa: SIM115  (closed in close/kill)
        log.write(f"\n--- {time.strftime('%H:%M:%S')} start {' '.join(cmd[:6])}\n".encode())
        log.flush()
        self._log_starts[name] = log.tell()
        self._logs[name] = log
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env or self.env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        return proc

    def _stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)
        handle = self._logs.pop(name, None)
        if handle is not None:
            handle.close()

    @staticmethod
    def _children(pid: int) -> list[int]:
        found = []
        try:
            text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        except OSError:
            return found
        for child in map(int, text.split()):
            found += [child, *Hub._children(child)]
        return found


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
