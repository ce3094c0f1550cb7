"""Benchmark machinery: anchor virtualenvs, child processes, servers, pairs and summaries.

Every measurement is one fresh child process with a fresh temporary home, printing one
JSON line. Peak RSS of a child comes from ``os.wait4`` (the kernel's ru_maxrss for that
child and the descendants it reaped); a server's peak RSS is sampled from /proc over its
whole process session, because its workers are not reaped by anyone we can ask.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
CACHE = Path.home() / ".cache" / "shipyard-dev"
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

#: Environment both sides get: no telemetry, no inherited store locations.
QUIET_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "PYTHONWARNINGS": "ignore",
}
_STRIP = ("SHIPYARD_", "MLFLOW_")


def log(message: str) -> None:
    """Progress goes to stderr so stdout stays the results."""
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


# --- interpreters -----------------------------------------------------------------------


def shipyard_python() -> Path:
    """Shipyard runs from the project's .venv (or the interpreter running the harness)."""
    venv = REPO / ".venv" / "bin" / "python"
    return venv if venv.exists() else Path(sys.executable)


def _installed_version(python: Path, dist: str) -> str:
    out = subprocess.run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() if out.returncode == 0 else ""


def _pypi_versions(package: str) -> list[str]:
    """Versions PyPI offers, newest first, via ``pip index versions`` (one look-up)."""
    out = subprocess.run(
        [str(shipyard_python()), "-m", "pip", "index", "versions", package],
        capture_output=True,
        text=True,
    )
    match = re.search(r"Available versions: (.*)", out.stdout)
    if not match:
        return []
    return [v.strip() for v in match.group(1).split(",") if re.fullmatch(r"[\d.]+", v.strip())]


def mlflow_python(version: str | None = None) -> Path:
    """MLflow's own virtualenv under ~/.cache/shipyard-dev/mlflow-<version>, made on first use.

    Without a version: the newest 3.x release that installs (a just-published release can
    lack its mlflow-skinny wheel on the index for a while; such a failure is remembered for
    a day), else the newest cached one. scikit-learn is pinned to the version Shipyard's
    .venv has, so both sides fit and pickle the same estimator code.
    """
    cached = sorted(
        (p for p in CACHE.glob("mlflow-*") if (p / ".ok").exists()),
        key=lambda p: [int(x) for x in p.name.split("-", 1)[1].split(".") if x.isdigit()],
    )
    failed_file = CACHE / "mlflow-failed-installs.json"
    failed: dict[str, float] = {}
    with contextlib.suppress(OSError, ValueError):
        failed = json.loads(failed_file.read_text())
    if version:
        candidates = [version]
    else:
        released = [v for v in _pypi_versions("mlflow") if v.startswith("3.")]
        candidates = [v for v in released if time.time() - failed.get(v, 0) > 86400][:3]
        if not candidates and cached:
            return cached[-1] / "bin" / "python"
    sklearn = _installed_version(shipyard_python(), "scikit-learn")
    for candidate in candidates:
        venv = CACHE / f"mlflow-{candidate}"
        if (venv / ".ok").exists():
            return venv / "bin" / "python"
        log(f"creating {venv} (mlflow=={candidate}, scikit-learn=={sklearn or 'latest'})")
        shutil.rmtree(venv, ignore_errors=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        pip += ["--disable-pip-version-check", f"mlflow=={candidate}"]
        pip.append(f"scikit-learn=={sklearn}" if sklearn else "scikit-learn")
        done = subprocess.run(pip, capture_output=True, text=True)
        if done.returncode == 0:
            (venv / ".ok").write_text(candidate + "\n")
            return venv / "bin" / "python"
        errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
        log(f"mlflow=={candidate} does not install ({'; '.join(errors)[-300:]})")
        failed[candidate] = time.time()
        failed_file.write_text(json.dumps(failed))
        shutil.rmtree(venv, ignore_errors=True)
    if cached:
        return cached[-1] / "bin" / "python"
    raise SystemExit("could not install a recent mlflow release; pass --mlflow-version")


def anchor_python(name: str, requirements: Sequence[str], *, pin_sklearn: bool = True) -> Path:
    """An anchor's own virtualenv ``~/.cache/shipyard-dev/<name>``, created on first use.

    ``name`` carries the anchor's version (``bentoml-1.4.35``) so a new pin gets a new
    virtualenv; scikit-learn is pinned to the .venv's version so every side fits the same
    estimator code.
    """
    venv = CACHE / name
    if (venv / ".ok").exists():
        return venv / "bin" / "python"
    wanted = list(requirements)
    sklearn = _installed_version(shipyard_python(), "scikit-learn")
    if pin_sklearn and sklearn:
        wanted.append(f"scikit-learn=={sklearn}")
    log(f"creating {venv} ({' '.join(wanted)})")
    shutil.rmtree(venv, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    done = subprocess.run(
        [*pip, "--disable-pip-version-check", *wanted], capture_output=True, text=True
    )
    if done.returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        raise SystemExit(f"could not install {name}: {done.stderr[-2000:]}")
    (venv / ".ok").write_text(" ".join(wanted) + "\n")
    return venv / "bin" / "python"


def side_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The parent's environment minus any SHIPYARD_*/MLFLOW_* settings, plus the quiet ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_STRIP)}
    env.update(QUIET_ENV)
    env.update(extra or {})
    return env


# --- child processes --------------------------------------------------------------------


@dataclass
class ChildResult:
    data: dict[str, Any]
    wall: float  # seconds from spawn to exit, interpreter start-up included
    peak_rss_mb: float
    cpu: float = 0.0  # user + system CPU seconds of the child and its reaped descendants


class ChildFailed(RuntimeError):
    pass


def run_child(
    argv: Sequence[str], *, env: dict[str, str], cwd: Path, timeout: float = 3600
) -> ChildResult:
    """Run one measurement child; its last stdout line must be a JSON object."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdout=out, stderr=err, env=env, cwd=cwd)
        # A blocking wait4 (no polling: the parent must not compete for CPU); a timer
        # kills a child that hangs.
        watchdog = threading.Timer(timeout, proc.kill)
        watchdog.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            watchdog.cancel()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    lines = []
    for line in map(str.strip, stdout.splitlines()):  # KFP's runner indents step output
        if line.startswith("{"):  # a tool may also print dict reprs: keep real JSON only
            with contextlib.suppress(ValueError):
                lines.append(json.loads(line))
    if proc.returncode != 0 or not lines:
        raise ChildFailed(
            f"{' '.join(argv)} exited {proc.returncode}\n--- stdout\n{stdout[-2000:]}"
            f"\n--- stderr\n{stderr[-4000:]}"
        )
    cpu = usage.ru_utime + usage.ru_stime
    return ChildResult(lines[-1], wall, usage.ru_maxrss / 1024, cpu)


@contextlib.contextmanager
def fresh_home(base: Path, label: str) -> Iterator[Path]:
    home = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=base))
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


# --- servers ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _session_usage(sid: int) -> tuple[int, float]:
    """(RSS kB, CPU seconds) summed over session ``sid`` and every descendant of ``sid``.

    Descendants count too because some servers (BentoML's supervisor) start their workers
    in sessions of their own.
    """
    stats: dict[int, tuple[int, int, int, float]] = {}  # pid -> (ppid, session, rss, cpu)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        # fields[0] is state (field 3); ppid 4, session 6, utime 14, stime 15, rss 24
        cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        stats[int(entry)] = (int(fields[1]), int(fields[3]), int(fields[21]) * PAGE_KB, cpu)
    members = {pid for pid, (_, session, _, _) in stats.items() if session == sid}
    members.add(sid)
    grew = True
    while grew:
        grew = False
        for pid, (ppid, _, _, _) in stats.items():
            if ppid in members and pid not in members:
                members.add(pid)
                grew = True
    rss_kb = sum(stats[pid][2] for pid in members if pid in stats)
    cpu = sum(stats[pid][3] for pid in members if pid in stats)
    return rss_kb, cpu


@dataclass
class Server:
    """A server process in its own session, sampled for RSS and CPU until it stops."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    health_urls: list[str]
    url: str = ""
    proc: subprocess.Popen[bytes] | None = None
    peak_rss_kb: int = 0
    cpu_seconds: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _sampler: threading.Thread | None = None
    _log: Any = None

    def __enter__(self) -> Server:
        self._log = open(self.cwd / "server.log", "wb")
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        self._wait_healthy()
        return self

    def _sample(self) -> None:
        assert self.proc is not None
        while not self._stop.is_set():
            rss, cpu = _session_usage(self.proc.pid)
            self.peak_rss_kb = max(self.peak_rss_kb, rss)
            self.cpu_seconds = max(self.cpu_seconds, cpu)
            self._stop.wait(0.5)

    def _wait_healthy(self, timeout: float = 180) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            for url in self.health_urls:
                try:
                    with urllib.request.urlopen(url, timeout=2) as resp:
                        if resp.status == 200:
                            return
                except (urllib.error.URLError, OSError):
                    pass
            time.sleep(0.2)
        self.__exit__(None, None, None)
        tail = (self.cwd / "server.log").read_text(errors="replace")[-3000:]
        raise ChildFailed(f"server {' '.join(self.argv)} never became healthy:\n{tail}")

    def mark(self) -> float:
        """CPU seconds used by the server so far (to subtract the start-up)."""
        assert self.proc is not None
        return _session_usage(self.proc.pid)[1]

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            rss, cpu = _session_usage(self.proc.pid)
            self.peak_rss_kb = max(self.peak_rss_kb, rss)
            self.cpu_seconds = max(self.cpu_seconds, cpu)
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join()
        self._log.close()


# --- pairs and summaries ----------------------------------------------------------------


@dataclass
class Measurement:
    """One side's child in one pair: its JSON, wall time, peak RSS and the server's usage."""

    raw: dict[str, Any]
    wall: float
    peak_rss_mb: float
    n: int = 0  # size actually run, to scale a reduced anchor run to the full size
    server_rss_mb: float | None = None
    server_cpu_s: float | None = None
    cpu: float = 0.0

    def value(self, field: str, full_n: int | None = None) -> float:
        """``field`` of the JSON (or "wall"), scaled linearly to ``full_n`` when run smaller."""
        if field == "wall":
            value = self.wall
        elif field == "cpu":
            value = self.cpu
        else:
            value = float(self.raw[field])
        if full_n and self.n and self.n != full_n:
            value *= full_n / self.n
        return value


@dataclass
class Outcome:
    """All pairs of one workload; table rows read fields out of it."""

    key: str
    shipyard: list[Measurement] = field(default_factory=list)
    mlflow: list[Measurement] = field(default_factory=list)
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        def side(ms: list[Measurement]) -> list[dict[str, Any]]:
            return [
                {
                    "raw": m.raw,
                    "wall": m.wall,
                    "cpu": m.cpu,
                    "peak_rss_mb": m.peak_rss_mb,
                    "n": m.n,
                    "server_rss_mb": m.server_rss_mb,
                    "server_cpu_s": m.server_cpu_s,
                }
                for m in ms
            ]

        return {
            "key": self.key,
            "shipyard": side(self.shipyard),
            "mlflow": side(self.mlflow),
            "error": self.error,
            **self.extra,
        }


def summarize(
    outcome: Outcome, field: str, full_n: int | None = None, mlflow_field: str | None = None
) -> dict[str, Any]:
    """Medians per side, the median of the pairwise MLflow/Shipyard ratios, peak RSS."""

    def side(ms: list[Measurement], name: str) -> dict[str, Any]:
        if not ms:
            return {}
        values = [m.value(name, full_n) for m in ms]
        out: dict[str, Any] = {
            "median": statistics.median(values),
            "values": values,
            "peak_rss_mb": max(m.peak_rss_mb for m in ms),
            "n": ms[0].n,
        }
        servers = [m for m in ms if m.server_rss_mb is not None]
        if servers:
            out["server_peak_rss_mb"] = max(m.server_rss_mb or 0 for m in servers)
            scale = [full_n / m.n if full_n and m.n else 1.0 for m in servers]
            out["server_cpu_s_median"] = statistics.median(
                (m.server_cpu_s or 0) * k for m, k in zip(servers, scale, strict=True)
            )
        return out

    ship = side(outcome.shipyard, field)
    mlf = side(outcome.mlflow, mlflow_field or field)
    ratios = [
        m / s for s, m in zip(ship.get("values", []), mlf.get("values", []), strict=False) if s > 0
    ]
    return {
        "shipyard": ship,
        "mlflow": mlf,
        "ratios": ratios,
        "ratio_median": statistics.median(ratios) if ratios else None,
        "error": outcome.error,
    }


def alternate(
    pairs: int,
    shipyard: Callable[[int], Measurement] | None,
    mlflow: Callable[[int], Measurement] | None,
    outcome: Outcome,
    field: str = "seconds",
) -> Outcome:
    """A B A B ...: Shipyard then MLflow in each pair, each a fresh process and home."""
    for i in range(pairs):
        try:
            if shipyard is not None:
                outcome.shipyard.append(shipyard(i))
            if mlflow is not None:
                outcome.mlflow.append(mlflow(i))
        except ChildFailed as exc:
            outcome.error = str(exc)
            log(f"{outcome.key}: FAILED\n{exc}")
            break
        done = [
            f"{name} {m[-1].value(field):.4g}"
            for name, m in (("shipyard", outcome.shipyard), ("mlflow", outcome.mlflow))
            if m
        ]
        log(f"{outcome.key} pair {i + 1}/{pairs}: {', '.join(done)} ({field}, as run)")
    return outcome


# --- machine facts ----------------------------------------------------------------------


def machine_facts(mlflow_py: Path | None) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "nproc": os.cpu_count(),
        "loadavg_start": list(os.getloadavg()),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    with contextlib.suppress(OSError):
        cpu = Path("/proc/cpuinfo").read_text()
        match = re.search(r"model name\s*:\s*(.*)", cpu)
        if match:
            facts["cpu"] = match.group(1).strip()
    with contextlib.suppress(OSError):
        mem = re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text())
        if mem:
            facts["mem_gb"] = round(int(mem.group(1)) / 1024 / 1024, 1)
    sp = shipyard_python()
    facts["shipyard"] = _installed_version(sp, "shipyard")
    for dist in ("sqlalchemy", "scikit-learn", "pandas", "numpy", "fastapi", "uvicorn"):
        facts[f"shipyard_venv_{dist}"] = _installed_version(sp, dist)
    if mlflow_py is not None:
        for dist in ("mlflow", "sqlalchemy", "scikit-learn", "pandas", "numpy"):
            facts[f"mlflow_venv_{dist}"] = _installed_version(mlflow_py, dist)
    with contextlib.suppress(Exception):
        facts["git_commit"] = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "shipyard"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        facts["git_dirty"] = bool(dirty)
    return facts
