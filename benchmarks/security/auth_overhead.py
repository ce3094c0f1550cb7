"""Auth overhead per request: the same GET route with auth off and on, side by side.

Goal (issue 3): JWT verification plus the permission check add <= 0.2 ms per request,
median. Two measurements, each alternating the variants block by block (A B C A B C ...)
so the machine's drift hits every variant alike:

- **in-process**: the ASGI app called through ``httpx.ASGITransport`` (no sockets), one
  app per variant on the same SQLite database; each request's latency is timed, and each
  block's process CPU time (``time.process_time``, all threads) is divided by its
  requests.
- **loopback**: two real servers (``shipyard.testing.ServerProcess``, one uvicorn worker
  each), auth off and auth on, called in turn over keep-alive connections; each block
  also reads the server's CPU time from /proc.

CPU time per request is the headline: on a shared, loaded machine latency swings by
milliseconds between blocks, while the CPU a request costs barely moves. Reported per
variant: the median over blocks, and the median over rounds of the per-round difference
to auth off (the overhead), for CPU and for latency. The suite never asserts a time;
this script prints tables and, with ``--write``, replaces
``benchmarks/security/RESULTS.md``.

    .venv/bin/python benchmarks/security/auth_overhead.py            # ~5-10 minutes
    .venv/bin/python benchmarks/security/auth_overhead.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROUTE = "/api/v1/experiments/{experiment_id}"
PASSWORD = "benchmark passphrase not secret"
SECRET = "benchmark-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    sys.stderr.write(f"[auth-bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass
class Variant:
    """One way of calling the route, and what each block measured."""

    name: str
    headers: dict[str, str]
    block_medians_ms: list[float] = field(default_factory=list)
    block_cpu_ms: list[float] = field(default_factory=list)


def prepare(home: Path) -> dict[str, Any]:
    """A database with an experiment, a data scientist (workspace role, the common case)
    and the tokens to call with: HS256 and RS256 JWTs and an API key."""
    from shipyard.config import load_settings
    from shipyard.security import SecurityConfig, SecurityService, TokenPolicy
    from shipyard.store.db import engine_for
    from shipyard.tracking.sql import SqlTrackingStore

    settings = load_settings(home=home)
    engine = engine_for(settings.db)
    experiment = SqlTrackingStore(engine, "default", settings.artifacts).create_experiment("b")
    policy = TokenPolicy(access_ttl=86400)
    hs = SecurityService(
        engine, home, SecurityConfig(jwt_secret=SECRET, token_policy=policy, audit_emit=False)
    )
    hs.create_user("admin", PASSWORD, role="admin")
    hs.create_user("ann", PASSWORD)
    hs.set_workspace_role("default", "user", "ann", "data-scientist")
    rs = SecurityService(
        engine,
        home,
        SecurityConfig(algorithm="RS256", jwt_secret=SECRET, token_policy=policy, audit_emit=False),
    )
    _, api_key = hs.create_api_key("user", "ann", name="bench")
    return {
        "settings": settings,
        "path": ROUTE.format(experiment_id=experiment.experiment_id),
        "hs256": hs.login("ann", PASSWORD).access_token,
        "rs256": rs.login("ann", PASSWORD).access_token,
        "api_key": api_key,
    }


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _app_settings(base: Any, **overrides: Any) -> Any:
    from shipyard.config import load_settings

    return load_settings(
        home=base.home,
        db=base.db,
        artifacts=base.artifacts,
        jwt_secret=SECRET,
        access_token_ttl=86400,
        **overrides,
    )


# -- in-process ------------------------------------------------------------------------------


async def _block(client: Any, path: str, headers: dict[str, str], n: int) -> list[float]:
    timings = []
    for _ in range(n):
        start = time.perf_counter()
        response = await client.get(path, headers=headers)
        timings.append(time.perf_counter() - start)
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
    return timings


def in_process(ctx: dict[str, Any], rounds: int, n: int) -> list[Variant]:
    import httpx

    from shipyard.server.app import create_app

    base = ctx["settings"]
    apps = {
        "auth off": (create_app(_app_settings(base, auth="off"), deliver_webhooks=False), {}),
        "auth on, HS256 JWT": (
            create_app(_app_settings(base, auth="on"), deliver_webhooks=False),
            _bearer(ctx["hs256"]),
        ),
        "auth on, RS256 JWT": (
            create_app(
                _app_settings(base, auth="on", jwt_algorithm="RS256"), deliver_webhooks=False
            ),
            _bearer(ctx["rs256"]),
        ),
        "auth on, API key": (
            create_app(_app_settings(base, auth="on"), deliver_webhooks=False),
            _bearer(ctx["api_key"]),
        ),
    }
    variants = [Variant(name, headers) for name, (_, headers) in apps.items()]

    async def run() -> None:
        clients = {
            name: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b")
            for name, (app, _) in apps.items()
        }
        try:
            for v in variants:  # warm-up: caches, first-request imports
                await _block(clients[v.name], ctx["path"], v.headers, max(50, n // 10))
            for r in range(rounds):
                for v in variants:
                    cpu_before = time.process_time()
                    timings = await _block(clients[v.name], ctx["path"], v.headers, n)
                    v.block_cpu_ms.append((time.process_time() - cpu_before) * 1000 / n)
                    v.block_medians_ms.append(statistics.median(timings) * 1000)
                if (r + 1) % 5 == 0 or r + 1 == rounds:
                    log(f"in-process round {r + 1}/{rounds}")
        finally:
            for client in clients.values():
                await client.aclose()

    asyncio.run(run())
    return variants


# -- loopback --------------------------------------------------------------------------------


def _session_cpu_seconds(pgid: int) -> float:
    """User + system CPU of every process in a process group (the server and workers)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid:  # fields[2] is pgrp (field 5 of stat)
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def loopback(ctx: dict[str, Any], rounds: int, n: int) -> list[Variant]:
    import httpx

    from shipyard.testing import ServerProcess

    base = ctx["settings"]
    common = {
        "SHIPYARD_HOME": str(base.home),
        "SHIPYARD_JWT_SECRET": SECRET,
        "SHIPYARD_ACCESS_TOKEN_TTL": "86400",
        "SHIPYARD_LOG_LEVEL": "warning",
    }
    servers: dict[str, Any] = {}
    try:
        for name, auth in (("auth off", "off"), ("auth on, HS256 JWT", "on")):
            with environment(**common, SHIPYARD_AUTH=auth):
                server = ServerProcess(base)
                server.start()
            servers[name] = server
        variants = [
            Variant("auth off", {}),
            Variant("auth on, HS256 JWT", _bearer(ctx["hs256"])),
        ]
        clients = {name: httpx.Client(base_url=s.base_url) for name, s in servers.items()}
        try:

            def block(v: Variant, count: int) -> tuple[list[float], float]:
                client, server = clients[v.name], servers[v.name]
                cpu_before = _session_cpu_seconds(server.pid)
                timings = []
                for _ in range(count):
                    start = time.perf_counter()
                    response = client.get(ctx["path"], headers=v.headers)
                    timings.append(time.perf_counter() - start)
                    if response.status_code != 200:
                        raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
                cpu = _session_cpu_seconds(server.pid) - cpu_before
                return timings, cpu

            for v in variants:
                block(v, max(50, n // 10))
            for r in range(rounds):
                for v in variants:
                    timings, cpu = block(v, n)
                    v.block_medians_ms.append(statistics.median(timings) * 1000)
                    v.block_cpu_ms.append(cpu * 1000 / n)
                if (r + 1) % 5 == 0 or r + 1 == rounds:
                    log(f"loopback round {r + 1}/{rounds}")
        finally:
            for client in clients.values():
                client.close()
    finally:
        for server in servers.values():
            server.close()
    return variants


# -- floor and report ------------------------------------------------------------------------


def floor(ctx: dict[str, Any], n: int) -> dict[str, float]:
    """The library calls alone (no HTTP): verify the JWT, then authorize."""
    from shipyard.security import SecurityConfig, SecurityService, TokenPolicy
    from shipyard.store.db import engine_for

    base = ctx["settings"]
    config = SecurityConfig(jwt_secret=SECRET, token_policy=TokenPolicy(access_ttl=86400))
    security = SecurityService(engine_for(base.db), base.home, config)
    token = ctx["hs256"]
    security.authorize(security.authenticate_token(token), "default", "experiments", "read")

    def per_call_us(fn: Callable[[], Any]) -> float:
        samples = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(n):
                fn()
            samples.append((time.perf_counter() - start) / n * 1e6)
        return statistics.median(samples)

    import jwt

    principal = security.authenticate_token(token)
    key = security.keys.signing_key()
    return {
        "the server's authorizer for one request (JWT + experiments:read)": _authorizer_us(ctx, n),
        "SecurityService.authenticate_token (token seen before)": per_call_us(
            lambda: security.authenticate_token(token)
        ),
        "first sight of a token: PyJWT get_unverified_header": per_call_us(
            lambda: jwt.get_unverified_header(token)
        ),
        "then PyJWT decode with signature and claims": per_call_us(
            lambda: jwt.decode(token, key.verify_key, algorithms=["HS256"], audience="shipyard")
        ),
        "authorize experiments:read": per_call_us(
            lambda: security.authorize(principal, "default", "experiments", "read")
        ),
    }


def _authorizer_us(ctx: dict[str, Any], n: int) -> float:
    """What auth adds to each request, isolated: ``app.state.authorizer`` awaited on a
    fresh request scope (the scope's construction is timed apart and subtracted)."""
    from starlette.requests import Request

    from shipyard.server.app import create_app

    app = create_app(_app_settings(ctx["settings"], auth="on"), deliver_webhooks=False)
    authorizer = app.state.authorizer
    experiment_id = ctx["path"].rsplit("/", 1)[1]
    header = f"Bearer {ctx['hs256']}".encode()

    def request() -> Request:
        scope = {
            "type": "http",
            "method": "GET",
            "path": ctx["path"],
            "headers": [(b"authorization", header), (b"host", b"b")],
            "query_string": b"",
            "path_params": {"experiment_id": experiment_id},
            "app": app,
        }
        return Request(scope)

    async def run() -> tuple[float, float]:
        for _ in range(200):
            await authorizer(request(), "experiments", "read")
        start = time.perf_counter()
        for _ in range(n):
            await authorizer(request(), "experiments", "read")
        with_auth = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(n):
            request()
        return with_auth, time.perf_counter() - start

    samples = []
    for _ in range(5):
        with_auth, scope_only = asyncio.run(run())
        samples.append((with_auth - scope_only) / n * 1e6)
    return statistics.median(samples)


def overheads(variants: list[Variant]) -> dict[str, dict[str, float]]:
    off = variants[0]
    out: dict[str, dict[str, float]] = {}
    for v in variants:
        diffs = [a - b for a, b in zip(v.block_medians_ms, off.block_medians_ms, strict=True)]
        row = {
            "median_ms": statistics.median(v.block_medians_ms),
            "overhead_ms": statistics.median(diffs),
            "overhead_min_ms": min(diffs),
            "overhead_max_ms": max(diffs),
        }
        cpu_diffs = [a - b for a, b in zip(v.block_cpu_ms, off.block_cpu_ms, strict=True)]
        row["cpu_ms"] = statistics.median(v.block_cpu_ms)
        row["cpu_overhead_ms"] = statistics.median(cpu_diffs)
        out[v.name] = row
    return out


def machine() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    versions = ", ".join(
        f"{p} {version(p)}" for p in ("fastapi", "starlette", "uvicorn", "httpx", "pyjwt")
    )
    return (
        f"{os.cpu_count()} cores, load average {load} (at the end), Python "
        f"{platform.python_version()}, {platform.system()} {platform.release()}; {versions}"
    )


def table(title: str, results: dict[str, dict[str, float]], cpu_label: str) -> str:
    lines = [
        f"**{title}**",
        "",
        f"| variant | {cpu_label} (ms) | CPU overhead vs auth off (ms) | median latency (ms) "
        "| latency overhead (ms) [min, max over rounds] |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['cpu_ms']:.3f} | **{r['cpu_overhead_ms']:+.3f}** "
            f"| {r['median_ms']:.3f} | {r['overhead_ms']:+.3f} "
            f"[{r['overhead_min_ms']:+.3f}, {r['overhead_max_ms']:+.3f}] |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21, help="alternating rounds (>= 3)")
    parser.add_argument("--requests", type=int, default=400, help="requests per block")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 200 requests")
    parser.add_argument("--skip-loopback", action="store_true")
    parser.add_argument("--skip-in-process", action="store_true")
    parser.add_argument("--write", action="store_true", help="replace RESULTS.md")
    args = parser.parse_args(argv)
    rounds, n = (3, 200) if args.quick else (max(3, args.rounds), args.requests)

    for key in [k for k in os.environ if k.startswith("SHIPYARD_")]:
        del os.environ[key]
    with tempfile.TemporaryDirectory(prefix="shipyard-auth-bench-") as tmp:
        home = Path(tmp)
        os.environ["SHIPYARD_HOME"] = str(home)
        ctx = prepare(home)
        inproc = None
        if not args.skip_in_process:
            log(f"in-process: {rounds} rounds x {n} requests per variant")
            inproc = overheads(in_process(ctx, rounds, n))
        loop = None
        if not args.skip_loopback:
            log(f"loopback: {rounds} rounds x {n} requests per variant")
            loop = overheads(loopback(ctx, rounds, n))
        lib = floor(ctx, 2000)

    flags = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--write"]
    command = "`" + " ".join([".venv/bin/python benchmarks/security/auth_overhead.py", *flags])
    command = command.rstrip() + "`"
    parts = [
        f"Route: `GET {ROUTE}` as a data scientist (workspace role), SQLite, "
        f"{rounds} alternating rounds of {n} requests per variant. {machine()}.",
    ]
    if inproc is not None:
        parts += [
            "",
            table("In-process (httpx.ASGITransport, no sockets)", inproc, "process CPU / request"),
        ]
    if loop is not None:
        parts += [
            "",
            table(
                "Loopback (uvicorn, 1 worker per server, keep-alive)",
                loop,
                "server CPU / request",
            ),
        ]
    parts += [
        "",
        "**Auth alone** (no HTTP, per call): "
        + "; ".join(f"{k}: {v:.1f} us" for k, v in lib.items()),
        "",
        f"Command: {command}",
    ]
    report = "\n".join(parts)
    print(report)
    raw = {"in_process": inproc, "loopback": loop, "library_us": lib, "rounds": rounds, "n": n}
    print(json.dumps(raw), file=sys.stderr)
    if args.write:
        _write_results(report)


def _write_results(report: str) -> None:
    path = HERE / "RESULTS.md"
    text = path.read_text() if path.exists() else ""
    marker = "<!-- results -->"
    head = text.split(marker)[0] if marker in text else text
    path.write_text(f"{head.rstrip()}\n\n{marker}\n{report}\n")
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
