"""Run web, worker and beat together in the foreground (the demo); Ctrl-C stops all."""

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Start web, Celery worker and beat on the embedded defaults (DEBUG only)."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))

    def handle(self, *args, port: int, **options):
        if not settings.DEBUG:
            raise CommandError("rundemo is for local use: set DEBUG=true")
        python = sys.executable
        env = {**os.environ, "HUB_BASE_URL": f"http://127.0.0.1:{port}"}
        commands = {
            "web": [python, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            "worker": [python, "-m", "celery", "-A", "config", "worker", "-l", "info",
                       "-P", "threads", "-c", "4", "-n", "demo@%h"],
            "beat": [python, "-m", "celery", "-A", "config", "beat", "-l", "info",
                     "-s", str(settings.VAR_DIR / "celerybeat-schedule")],
        }
        processes = {name: subprocess.Popen(cmd, env=env) for name, cmd in commands.items()}
        base = f"http://127.0.0.1:{port}"
        notes_file = settings.VAR_DIR / "demo-notes.txt"
        notes = notes_file.read_text() if notes_file.exists() else ""
        self.stdout.write(self.style.SUCCESS(
            f"\n  Hub demo running.\n"
            f"  Admin:     {base}/admin/   (login: admin / admin)\n"
            f"  Health:    {base}/readyz\n"
            f"  Sandbox:   {base}/sandbox/\n"
            f"  Database:  {settings.DATABASES['default']['NAME']}\n"
            f"  Ctrl-C stops web, worker and beat.\n"))
        if notes:
            self.stdout.write("  Try the integrations:\n" + "".join(
                f"    {line}\n" for line in notes.splitlines()))
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            while not stopping:
                for name, proc in processes.items():
                    if proc.poll() is not None:
                        self.stderr.write(f"{name} exited with {proc.returncode}; stopping")
                        stopping = True
                time.sleep(0.5)
        finally:
            for proc in processes.values():
                if proc.poll() is None:
                    proc.terminate()
            deadline = time.monotonic() + 10
            for proc in processes.values():
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.kill()
