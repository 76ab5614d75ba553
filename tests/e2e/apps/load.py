"""A bounded HTTP/1.1 load client for end-to-end tests (stdlib, keep-alive connections).

load.py HOST PORT PATH COUNT [--concurrency=N] [--header=Name:Value]... [--timeout=S]
Prints JSON: {"status": {code: n}, "by": {answering name: n}, "errors": n,
"latency_ms": {"p50", "p99", "max"}, "elapsed_s"}.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    host, port, path, count = args[0], int(args[1]), args[2], int(args[3])
    concurrency, timeout, headers = 4, 10.0, {}
    for option in (a for a in sys.argv[1:] if a.startswith("--")):
        key, _, value = option[2:].partition("=")
        if key == "concurrency":
            concurrency = int(value)
        elif key == "timeout":
            timeout = float(value)
        elif key == "header":
            name, _, header_value = value.partition(":")
            headers[name] = header_value
    lock = threading.Lock()
    status: dict[str, int] = {}
    by: dict[str, int] = {}
    latencies: list[float] = []
    errors = [0]
    remaining = [count]

    def worker() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        while True:
            with lock:
                if remaining[0] <= 0:
                    break
                remaining[0] -= 1
            started = time.monotonic()
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                body = response.read().decode(errors="replace")
            except (OSError, http.client.HTTPException):
                with lock:
                    errors[0] += 1
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
                continue
            elapsed = (time.monotonic() - started) * 1000
            name = body.rsplit(" ", 1)[-1] if body.startswith(("hello from", "failed by")) else ""
            with lock:
                status[str(response.status)] = status.get(str(response.status), 0) + 1
                if response.status == 200 and name:
                    by[name] = by.get(name, 0) + 1
                latencies.append(elapsed)
        conn.close()

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies.sort()

    def pct(q: float) -> float:
        return (
            round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 2)
            if latencies
            else 0
        )

    print(
        json.dumps(
            {
                "status": status,
                "by": by,
                "errors": errors[0],
                "latency_ms": {"p50": pct(0.5), "p99": pct(0.99), "max": pct(1.0)},
                "elapsed_s": round(time.monotonic() - started, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
