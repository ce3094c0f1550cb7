"""Open-loop HTTP load at a fixed rate, for the overload row.

wrk is closed-loop: a slow server slows the load down, so "2x overload" cannot be offered
with it. Here every request has a scheduled send time (rate R over N keep-alive
connections) and its latency counts from that time, so queueing shows up in the numbers
(no coordinated omission). Prints one JSON line: accepted (2xx) p50/p99 in ms, counts per
status class.

    python _openloop.py URL BODY_FILE RATE SECONDS [CONNECTIONS]
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from urllib.parse import urlsplit


async def _connection(
    host: str,
    port: int,
    request: bytes,
    schedule: list[float],
    results: list[tuple[int, float]],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for due in schedule:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            results.append((int(status_line.split()[1]), time.perf_counter() - due))
    except (ConnectionError, asyncio.IncompleteReadError, IndexError):
        results.append((0, 0.0))
    finally:
        writer.close()


async def run(url: str, body: bytes, rate: float, seconds: float, connections: int) -> dict:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    total = int(rate * seconds)
    start = time.perf_counter() + 0.2
    schedules: list[list[float]] = [[] for _ in range(connections)]
    for i in range(total):
        schedules[i % connections].append(start + i / rate)
    results: list[tuple[int, float]] = []
    began = time.perf_counter()
    await asyncio.gather(*(_connection(host, port, request, s, results) for s in schedules if s))
    elapsed = time.perf_counter() - began
    accepted = sorted(lat for status, lat in results if 200 <= status < 300)

    def pct(q: float) -> float | None:
        return (
            round(accepted[min(len(accepted) - 1, int(q * len(accepted)))] * 1000, 2)
            if (accepted)
            else None
        )

    return {
        "offered_rps": rate,
        "sent": len(results),
        "ok": len(accepted),
        "rejected_503": sum(1 for status, _ in results if status == 503),
        "other": sum(1 for status, _ in results if not (200 <= status < 300 or status == 503)),
        "ok_p50_ms": pct(0.50),
        "ok_p99_ms": pct(0.99),
        "seconds": seconds,
        "achieved_rps": round(len(results) / elapsed, 1),
    }


def main() -> None:
    url, body_file, rate, seconds = sys.argv[1:5]
    connections = int(sys.argv[5]) if len(sys.argv) > 5 else 256
    with open(body_file, "rb") as fh:
        body = fh.read()
    print(json.dumps(asyncio.run(run(url, body, float(rate), float(seconds), connections))))


if __name__ == "__main__":
    main()
