"""A newcomer's first hour, as CI runs it (`make first-hour`).

On a fresh clone of the committed HEAD, in a shell with none of the test run's variables:

1. `PORT=<free> make demo` in the background (its own process group), as the README says;
2. the admin answers: login admin / admin, the overview renders;
3. the commands the demo prints work as printed: the `curl` line with the printed partner
   API key, and the README's `.venv/bin/python manage.py roundtrip` beside the running worker;
4. one push of readings with that key (`POST /api/v1/readings/`), then every platform the
   demo links shows what was pushed, read where a user looks:
   - DEXMA: the values the sandbox IS3 holds (admin, *Sandbox: DEXMA → Is3 values*);
   - Wattics: the packets the sandbox collector received (admin, *received packets*);
   - Volue: an event raised from the sandbox page over the pushed hour, reported back:
     the sandbox lists the report, the hub's *Energy reports* say *Sent to Volue*, and the
     hour's kWh include the pushed reading; the demo's own first report arrived too;
   - the partner API serves the pushed readings back (Scaler-style pull: usage, readings).

Two readings go in the one push because the platforms' rules differ: Wattics takes packets
in time order only (a value older than its last packet is late and never sent), so its reading
is at the next minute; a Volue report covers the finished hours of an event, so its reading is
in an hour three hours ago, past what the demo feed rewrites (its last hour).

Every check must pass within FIRST_HOUR_TIMEOUT seconds (default 300: the issue's "every
platform's flow completes within its first five minutes") of the demo's banner. A failure names
what did not arrive and what was seen, and prints the demo's last log lines. The demo is
stopped (Ctrl-C to its process group, then SIGTERM, then SIGKILL) whatever happens.

The clone reuses this repository's installed `.venv` (a link, as a second clone would: `ln -s
../hub/.venv .venv`); `make demo` then skips the install, because the venv's install stamp
names the checksum of the same `pyproject.toml`. With `FIRST_HOUR_FRESH_VENV=1` the clone
creates and installs its own `.venv`, exactly as a newcomer's first `make demo` (minutes).
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = float(os.environ.get("FIRST_HOUR_TIMEOUT", 300))
STARTUP_TIMEOUT = float(os.environ.get("FIRST_HOUR_STARTUP_TIMEOUT", 300))
POLL_SECONDS = 3.0
# Variables of a CI or test shell a newcomer's shell does not have.
NOT_A_NEWCOMERS = {"DJANGO_SETTINGS_MODULE", "DEBUG", "DATABASE_URL", "REDIS_URL", "SECRET_KEY",
                   "SECRETS_ENCRYPTION_KEY", "SANDBOX_ENABLED", "SECURE_SSL_REDIRECT",
                   "HUB_ENV_FILE", "HUB_VAR_DIR", "HUB_BASE_URL", "PORT", "TEST_DATABASE_NAME",
                   "FAULTS_CI", "PROMETHEUS_MULTIPROC_DIR", "VIRTUAL_ENV",
                   "MAKEFLAGS", "MAKELEVEL", "MFLAGS"}
# The demo's objects the check looks for (apps/sandbox, apps/wattics/demo.py, apps/volue/demo.py).
METER = "MAD-MAIN-01"
WATTICS_METER = "demo-mad-main-01"
VOLUE_METER_POINT = "707057500000000011"
PUSHED_KWH = 77.77  # far above the demo feed's quarter-hours (about 10 kWh)
PUSHED_VOLTS = 231.7
GIT, MAKE, CKSUM = (shutil.which(tool) or tool for tool in ("git", "make", "cksum"))


class CheckFailed(Exception):
    pass


def say(text: str) -> None:
    print(f"first-hour: {text}", flush=True)


# --- the fresh clone and its demo ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cksum(path: Path) -> str:
    return subprocess.run([CKSUM, path.name], cwd=path.parent, check=True,
                          capture_output=True, text=True).stdout.split()[0]


def clone(workdir: Path) -> Path:
    target = workdir / "hub"
    subprocess.run([GIT, "clone", "--quiet", str(ROOT), str(target)], check=True)
    head = subprocess.run([GIT, "log", "--oneline", "-1"], cwd=target, check=True,
                          capture_output=True, text=True).stdout.strip()
    say(f"cloned {ROOT} into {target} at {head}")
    if os.environ.get("FIRST_HOUR_FRESH_VENV") == "1":
        say("the clone creates and installs its own .venv (FIRST_HOUR_FRESH_VENV=1)")
        return target
    venv = (ROOT / ".venv").resolve()
    stamp = venv / f".installed-{cksum(target / 'pyproject.toml')}"
    if not stamp.exists():
        # Without the stamp `make demo` would install the clone into this venv (an editable
        # install pointing at a directory about to be deleted).
        raise CheckFailed(f"{venv} is not installed for this pyproject.toml ({stamp.name} "
                          "missing): run `make install` first, or set FIRST_HOUR_FRESH_VENV=1")
    (target / ".venv").symlink_to(venv)
    say(f"the clone's .venv links to {venv} (installed for the same pyproject.toml)")
    return target


@dataclass
class Demo:
    clone: Path
    port: int
    log: Path
    process: subprocess.Popen | None = None
    banner_at: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in NOT_A_NEWCOMERS}
        env["PORT"] = str(self.port)
        say(f"PORT={self.port} make demo  (log: {self.log})")
        with self.log.open("w") as out:
            self.process = subprocess.Popen([MAKE, "demo"], cwd=self.clone, env=env,
                                            stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def wait_ready(self) -> None:
        started = time.monotonic()
        while time.monotonic() - started < STARTUP_TIMEOUT:
            if self.process.poll() is not None:
                raise CheckFailed(f"`make demo` exited with {self.process.returncode} "
                                  "before the hub answered")
            if "Hub demo running." in self.text():
                try:
                    if requests.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                        self.banner_at = time.monotonic()
                        say(f"demo up in {self.banner_at - started:.0f} s "
                            "(banner printed, /readyz 200)")
                        return
                except requests.RequestException:
                    pass
            time.sleep(1)
        raise CheckFailed(f"the demo did not answer /readyz within {STARTUP_TIMEOUT:.0f} s")

    def stop(self) -> None:
        """Ctrl-C to the whole process group (make, rundemo, web, worker, beat), then
        SIGTERM, then SIGKILL: nothing is left running, whatever happened."""
        if self.process is None:
            return
        for sig, grace in ((signal.SIGINT, 20), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and _group_alive(self.process.pid):
                self.process.poll()
                time.sleep(0.5)
            if not _group_alive(self.process.pid):
                break
        self.process.poll()
        say("demo stopped (process group ended)")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


# --- what a user reads ----------------------------------------------------------------------


def printed_key(demo: Demo) -> str:
    # "  API key for demo-acme: hub_… (kept in …/var/demo-api-key)"
    found = re.search(r"API key for \S+: (\S+)", demo.text())
    if not found:
        raise CheckFailed("`make demo` printed no 'API key for …:' line")
    return found.group(1)


def printed_curl(demo: Demo) -> tuple[str, str]:
    found = re.search(r"curl -H '([^:]+): ([^']+)' '([^']+)'", demo.text())
    if not found:
        raise CheckFailed("`make demo` printed no curl line to try the partner API")
    header, key, url = found.groups()
    return url, key if header == "X-API-Key" else ""


def rows(page: str) -> list[dict[str, str]]:
    """The result rows of an admin change list, as {column: text}; `_link` the row's link."""
    table = page.split('id="result_list"', 1)[-1].split("</table>", 1)[0]
    out = []
    for row in table.split("<tr")[1:]:
        cells = {name: html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
                 for name, cell in re.findall(
                     r'class="field-([\w]+)[^"]*"[^>]*>(.*?)</t[dh]>', row, flags=re.S)}
        link = re.search(r'href="([^"]+/change/[^"]*)"', row)
        if cells:
            cells["_link"] = html.unescape(link.group(1)) if link else ""
            out.append(cells)
    return out


def admin_login(base: str) -> requests.Session:
    session = requests.Session()
    form = session.get(f"{base}/admin/login/?next=/admin/", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    if form.status_code != 200 or token is None:
        raise CheckFailed(f"admin login page: HTTP {form.status_code}, no login form")
    answer = session.post(f"{base}/admin/login/?next=/admin/", timeout=30, data={
        "csrfmiddlewaretoken": token.group(1), "username": "admin", "password": "admin",
        "next": "/admin/"}, headers={"Referer": f"{base}/admin/login/"})
    if answer.status_code != 200 or not answer.url.rstrip("/").endswith("/admin") or \
            "Readings accepted per day" not in answer.text:
        raise CheckFailed(f"login admin/admin did not open the overview (HTTP "
                          f"{answer.status_code} at {answer.url})")
    return session


def iso(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def parse_ts(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None


# --- the legs -------------------------------------------------------------------------------


@dataclass
class Leg:
    name: str
    expected: str
    seen: str = "nothing yet"
    arrived_after: float | None = None


@dataclass
class FirstHour:
    demo: Demo
    key: str
    admin: requests.Session
    volue_hour: dt.datetime
    wattics_at: dt.datetime
    legs: dict[str, Leg] = field(default_factory=dict)
    volue_event: str = ""
    pushed_at: float = 0.0

    def api(self, path: str, **params) -> requests.Response:
        return requests.get(f"{self.demo.url}/api/v1/{path}", params=params, timeout=30,
                            headers={"X-API-Key": self.key})

    def push(self) -> None:
        readings = [
            {"meter": METER, "parameter": "active_energy_delta",
             "ts": iso(self.volue_hour + dt.timedelta(minutes=15)),
             "period_end": iso(self.volue_hour + dt.timedelta(minutes=30)),
             "value": PUSHED_KWH},
            {"meter": METER, "parameter": "voltage", "ts": iso(self.wattics_at),
             "value": PUSHED_VOLTS},
        ]
        say(f"curl -X POST {self.demo.url}/api/v1/readings/ -H 'X-API-Key: <printed key>' "
            f"-d '{json.dumps({'readings': readings})}'")
        answer = requests.post(f"{self.demo.url}/api/v1/readings/", json={"readings": readings},
                               headers={"X-API-Key": self.key}, timeout=30)
        body = answer.text[:500]
        if answer.status_code not in (200, 201) or answer.json().get("rejections"):
            raise CheckFailed(f"the push was not stored: HTTP {answer.status_code} {body}")
        self.pushed_at = time.monotonic()
        say(f"pushed: HTTP {answer.status_code} {body}")

    # Each check returns what it saw (for the failure message) and whether it is done.

    def dexma(self) -> tuple[bool, str]:
        page = self.admin.get(f"{self.demo.url}/admin/sandbox_dexma/is3value/", timeout=30,
                              params={"q": METER, "ts__gte": self.volue_hour.isoformat(),
                                      "ts__lt": (self.volue_hour
                                                 + dt.timedelta(hours=1)).isoformat()})
        values = [r.get("v", "") for r in rows(page.text)]
        found = any(_near(v, PUSHED_KWH) for v in values)
        return found, f"IS3 holds {len(values)} values of {METER} in that hour: {values[:12]}"

    def wattics(self) -> tuple[bool, str]:
        page = self.admin.get(f"{self.demo.url}/admin/sandbox_wattics/collectorpacket/",
                              params={"ts": self.wattics_at.isoformat()}, timeout=30)
        packets = []
        for row in rows(page.text):
            try:
                packets.append(json.loads(row.get("packet", "")))
            except ValueError:
                continue
        found = any(_near(p.get("v_1"), PUSHED_VOLTS) for p in packets if isinstance(p, dict))
        return found, f"packets at {iso(self.wattics_at)}: {packets}"

    def partner_api(self) -> tuple[bool, str]:
        end = self.volue_hour + dt.timedelta(hours=1)
        usage = self.api("usage/", meter=METER, parameter="active_energy_delta",
                         **{"from": iso(self.volue_hour), "to": iso(end)})
        points = self.api("readings/", meter=METER, parameter="voltage",
                          **{"from": iso(self.wattics_at),
                             "to": iso(self.wattics_at + dt.timedelta(minutes=1))})
        if usage.status_code != 200 or points.status_code != 200:
            return False, f"usage HTTP {usage.status_code}, readings HTTP {points.status_code}"
        kwh = [r["value"] for r in usage.json()["results"]]
        volts = [r["value"] for r in points.json()["results"]]
        found = any(_near(v, PUSHED_KWH) for v in kwh) and any(_near(v, PUSHED_VOLTS)
                                                               for v in volts)
        return found, f"usage {kwh}, voltage readings {volts}"

    def volue_registered(self) -> bool:
        page = requests.get(f"{self.demo.url}/sandbox/volue/", timeout=30).text
        webhooks = page.split("<h2>Webhooks</h2>", 1)[-1].split("<h2>", 1)[0]
        return VOLUE_METER_POINT in page and "none yet" not in webhooks

    def volue_raise(self) -> None:
        answer = requests.post(f"{self.demo.url}/sandbox/volue/trigger", timeout=60, params={
            "type": "LocationLPCRequested", "start": self.volue_hour.isoformat(), "hours": 1})
        if answer.status_code != 200:
            raise CheckFailed(f"raising a Volue event: HTTP {answer.status_code} "
                              f"{answer.text[:300]}")
        event = answer.json()["events"][0]
        self.volue_event = event["eventId"]
        say(f"Volue event {self.volue_event} raised over {iso(self.volue_hour)} + 1 h "
            f"(deliveries {event['deliveries']})")

    def volue(self) -> tuple[bool, str]:
        if not self.volue_event:
            if not self.volue_registered():
                return False, "the sandbox lists no registered meter point or webhook yet"
            self.volue_raise()
        page = requests.get(f"{self.demo.url}/sandbox/volue/", timeout=30).text
        received = page.split("<h2>Reports received</h2>", 1)[-1]
        reports = len(re.findall(r"<tr><td>", received))
        if self.volue_event not in received:
            return False, f"the sandbox lists {reports} reports, none for {self.volue_event}"
        listed = rows(self.admin.get(f"{self.demo.url}/admin/volue/energyreport/",
                                     params={"q": self.volue_event}, timeout=30).text)
        if not listed or not listed[0].get("status", "").startswith("Sent to Volue"):
            return False, f"the hub's report reads {[r.get('status') for r in listed]}"
        sent = self._volue_kwh(listed[0]["_link"])
        usage = self.api("usage/", meter=METER, parameter="active_energy_delta",
                         **{"from": iso(self.volue_hour),
                            "to": iso(self.volue_hour + dt.timedelta(hours=1))}).json()
        expected = sum(r["value"] for r in usage["results"])
        seen = (f"report sent, {VOLUE_METER_POINT} at {iso(self.volue_hour)}: {sent} kWh "
                f"(the hub's quarter-hours sum to {expected:.3f}, the pushed one included); "
                f"the sandbox holds {reports} reports")
        # The demo's own event (raised when the customer registered) was reported too.
        return sent is not None and _near(sent, expected, 0.01) and reports >= 2, seen

    def _volue_kwh(self, link: str) -> float | None:
        page = self.admin.get(f"{self.demo.url}{link}", timeout=30).text
        for point, hour, kwh in re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td>"
                                           r"<td>([^<]*)</td></tr>", page):
            if point == VOLUE_METER_POINT and parse_ts(hour) == self.volue_hour:
                return float(kwh)
        return None

    def run(self) -> None:
        checks = {
            "DEXMA": (self.dexma, f"{PUSHED_KWH} kWh at {METER} in the sandbox IS3"),
            "Wattics": (self.wattics, f"v_1 = {PUSHED_VOLTS} in {WATTICS_METER}'s packet at "
                                      f"{iso(self.wattics_at)}"),
            "Volue": (self.volue, f"a report of an event over {iso(self.volue_hour)} sent, "
                                  "its kWh including the pushed reading, and the demo's own "
                                  "first report"),
            "partner API": (self.partner_api, "both pushed readings served back"),
        }
        self.legs = {name: Leg(name, expected) for name, (_, expected) in checks.items()}
        deadline = self.demo.banner_at + TIMEOUT
        while True:
            for name, (check, _) in checks.items():
                leg = self.legs[name]
                if leg.arrived_after is not None:
                    continue
                try:
                    done, leg.seen = check()
                except (requests.RequestException, ValueError, KeyError) as exc:
                    done, leg.seen = False, f"{type(exc).__name__}: {exc}"
                if done:
                    leg.arrived_after = time.monotonic() - self.pushed_at
                    say(f"{name}: arrived {leg.arrived_after:.0f} s after the push "
                        f"({time.monotonic() - self.demo.banner_at:.0f} s after the banner): "
                        f"{leg.seen}")
            missing = [leg for leg in self.legs.values() if leg.arrived_after is None]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise CheckFailed(
                    f"not arrived within {TIMEOUT:.0f} s of the demo's start: " + "; ".join(
                        f"{leg.name} (expected {leg.expected}; saw {leg.seen})"
                        for leg in missing))
            time.sleep(POLL_SECONDS)


def _near(value: object, target: float, tolerance: float = 1e-6) -> bool:
    try:
        return abs(float(str(value).replace(",", "")) - target) <= tolerance
    except (TypeError, ValueError):
        return False


# --- the whole hour -------------------------------------------------------------------------


def main() -> int:
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="first-hour-"))
    demo = None
    ok = False
    try:
        target = clone(workdir)
        demo = Demo(clone=target, port=free_port(), log=workdir / "demo.log")
        demo.start()
        demo.wait_ready()

        key = printed_key(demo)
        url, curl_key = printed_curl(demo)
        answer = requests.get(url, headers={"X-API-Key": curl_key}, timeout=30)
        if answer.status_code != 200 or curl_key != key:
            raise CheckFailed(f"the printed curl line: HTTP {answer.status_code} "
                              f"{answer.text[:300]}")
        say(f"the printed curl line answers 200 with the printed key ({url})")
        admin = admin_login(demo.url)
        say("login admin / admin: the overview renders")
        roundtrip = subprocess.run([".venv/bin/python", "manage.py", "roundtrip"],
                                   cwd=target, capture_output=True, text=True, timeout=120,
                                   env={k: v for k, v in os.environ.items()
                                        if k not in NOT_A_NEWCOMERS})
        if roundtrip.returncode != 0:
            raise CheckFailed(f".venv/bin/python manage.py roundtrip: {roundtrip.stderr[-500:]}")
        say(f".venv/bin/python manage.py roundtrip: {roundtrip.stdout.strip()[-200:]}")

        now = dt.datetime.now(dt.UTC)
        hour = now.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=3)
        next_minute = now.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        check = FirstHour(demo=demo, key=key, admin=admin, volue_hour=hour,
                          wattics_at=next_minute)
        check.push()
        check.run()
        ok = True
        say(f"PASSED in {time.monotonic() - started:.0f} s (demo up "
            f"{time.monotonic() - demo.banner_at:.0f} s)")
        return 0
    except CheckFailed as exc:
        say(f"FAILED: {exc}")
        return 1
    finally:
        if demo is not None:
            demo.stop()
            if not ok:
                print(f"--- the demo's last log lines ({demo.log}):\n{demo.tail()}",
                      file=sys.stderr)
        if ok or os.environ.get("FIRST_HOUR_KEEP") != "1":
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            say(f"kept {workdir} (FIRST_HOUR_KEEP=1)")


if __name__ == "__main__":
    sys.exit(main())
