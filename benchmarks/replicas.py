"""How many answers a second one machine serves: R replica processes, each answering questions in
a closed loop (one request at a time, like a single-threaded replica behind a load balancer),
through the library (`rag.answer` on the committed index). Prints req/s and p50/p95 latency.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/replicas.py [--replicas 1,2,3,4] [--seconds 20]

The HTTP layer adds ~1 ms a request (docs/PERFORMANCE.md: /api/ask under 8 clients).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _replica(i: int, seconds: float, start: float, out):
    from rag import Retriever, answer
    from rag.evaluate import read_questions

    r = Retriever.load(REPO / "index")
    questions = [q["question"] for q in read_questions(REPO / "eval" / "questions.jsonl")]
    for q in questions[:5]:
        answer(q, r)
    while time.time() < start:
        time.sleep(0.01)
    lat, n = [], i
    stop = start + seconds
    while time.time() < stop:
        t = time.perf_counter()
        answer(questions[n % len(questions)], r)
        lat.append(time.perf_counter() - t)
        n += 7
    out.put(lat)


def measure(replicas: int, seconds: float) -> dict:
    out = mp.Queue()
    start = time.time() + 8.0  # every replica loaded before the clock starts
    procs = [mp.Process(target=_replica, args=(i, seconds, start, out)) for i in range(replicas)]
    for p in procs:
        p.start()
    lat = []
    for _ in procs:
        lat += out.get()
    for p in procs:
        p.join()
    lat.sort()
    return {"replicas": replicas, "requests": len(lat), "req_per_s": round(len(lat) / seconds, 1),
            "p50_ms": round(1000 * lat[len(lat) // 2], 1), "p95_ms": round(1000 * lat[int(0.95 * (len(lat) - 1))], 1)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--replicas", default="1,2,3,4")
    p.add_argument("--seconds", type=float, default=20.0)
    args = p.parse_args()
    rows = []
    for r in (int(x) for x in args.replicas.split(",")):
        rows.append(measure(r, args.seconds))
        print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
