"""Load on `rag serve` (not part of the test suite): many clients, and a probe under long questions.

    python benchmarks/load.py [--clients 64] [--seconds 30] [--long-clients 16] [--long-seconds 20]

1. `--clients` clients post normal questions to /api/ask for `--seconds`: every request must be
   answered 200 (failures are counted and printed).
2. `--long-clients` clients post 2,000-character questions while one probe client posts a normal
   question every 0.25 s: the probe's latency (p50, p95, max) is what a normal user waits.

Starts its own server on a free port with the committed index; prints a JSON summary.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
QUESTIONS = ["什么是负迁移？", "What is multi-task learning?", "端到端深度学习的优缺点", "How do I bake bread?",
             "迁移学习有哪些基本方法？", "What is domain adaptation?"]
LONG = ("迁移学习在什么情况下有用？请详细说明负迁移的原因、多任务学习和端到端学习的区别。" * 60)[:2000]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(conn: http.client.HTTPConnection, question: str) -> int:
    body = json.dumps({"question": question}).encode()
    conn.request("POST", "/api/ask", body=body, headers={"content-type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    return resp.status


def client(port: int, questions, stop: float, out: list, offset: int = 0, pause: float = 0.0) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    n = offset
    while time.time() < stop:
        t = time.perf_counter()
        try:
            status = post(conn, questions[n % len(questions)])
        except (OSError, http.client.HTTPException) as e:
            status = type(e).__name__
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        out.append((status, time.perf_counter() - t))
        n += 1
        if pause:
            time.sleep(pause)


def run(threads) -> None:
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def pct(values, p):
    values = sorted(values)
    return round(values[min(len(values) - 1, int(p / 100 * len(values)))] * 1000) if values else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--long-clients", type=int, default=16)
    ap.add_argument("--long-seconds", type=float, default=20)
    args = ap.parse_args()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen([sys.executable, "-m", "rag.cli", "serve", "--port", str(port), "--feedback",
                               "/tmp/rag-load-feedback.jsonl"], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        assert line.startswith("ready"), line
        summary = {}
        # 1. many clients, normal questions
        results: list = []
        stop = time.time() + args.seconds
        run([threading.Thread(target=client, args=(port, QUESTIONS, stop, results, i)) for i in range(args.clients)])
        ok = [d for s, d in results if s == 200]
        summary["many_clients"] = {"clients": args.clients, "seconds": args.seconds, "requests": len(results),
                                   "failures": len(results) - len(ok), "statuses": sorted({str(s) for s, _ in results}),
                                   "per_second": round(len(results) / args.seconds, 1),
                                   "p50_ms": pct(ok, 50), "p95_ms": pct(ok, 95), "max_ms": pct(ok, 100)}
        # 2. a probe while long questions flood the server
        probe, long_results = [], []
        stop = time.time() + args.long_seconds
        threads = [threading.Thread(target=client, args=(port, [LONG], stop, long_results)) for _ in range(args.long_clients)]
        threads.append(threading.Thread(target=client, args=(port, QUESTIONS, stop, probe, 0, 0.25)))
        run(threads)
        ok = [d for s, d in probe if s == 200]
        summary["probe_under_long_questions"] = {
            "long_clients": args.long_clients, "long_chars": len(LONG), "seconds": args.long_seconds,
            "probe_requests": len(probe), "probe_failures": len(probe) - len(ok),
            "probe_p50_ms": pct(ok, 50), "probe_p95_ms": pct(ok, 95), "probe_max_ms": pct(ok, 100),
            "long_requests": len(long_results),
            "long_statuses": {str(s): sum(1 for x, _ in long_results if x == s) for s in {x for x, _ in long_results}}}
        print(json.dumps(summary, indent=2))
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
