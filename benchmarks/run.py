"""Benchmarks: cold start, warm latency, build, memory, a warm query's time breakdown, the server
under load, and FAISS index types at scale. Prints tables and writes benchmarks/results.json.

    .venv/bin/python benchmarks/run.py [--skip-scale] [--skip-server] [--only-scale] [--max-n 1000000]
    .venv/bin/python benchmarks/run.py --book [--book-index DIR]   # the whole book only (book/)

Benchmarks are not tests: nothing here asserts a time. Absolute numbers drift on a shared machine;
compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RAG = [sys.executable, "-m", "rag.cli"]
PEAK_RSS = ("import resource, runpy, sys; "
            "import atexit; atexit.register(lambda: print('PEAK_RSS_KB', "
            "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)); "
            "runpy.run_module('rag.cli', run_name='__main__')")


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def ms(x):
    return round(1000 * x, 2)


def run_cli(*args, peak=False):
    cmd = [sys.executable, "-c", PEAK_RSS, *args] if peak else [*RAG, *args]
    t = time.perf_counter()
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    rss = None
    for line in out.stderr.splitlines():
        if line.startswith("PEAK_RSS_KB"):
            rss = int(line.split()[1]) / 1024
    return wall, rss


def bench_cold(repeat=5):
    res = {}
    for name, args in [("search", ["search", "什么是负迁移？"]), ("ask", ["ask", "What is negative transfer?"])]:
        run_cli(*args)  # page cache warm, like a user's second run
        walls = [run_cli(*args)[0] for _ in range(repeat)]
        res[name] = {"median_s": round(statistics.median(walls), 3), "min_s": round(min(walls), 3)}
    _, rss = run_cli("ask", "What is negative transfer?", peak=True)
    res["ask_peak_rss_mb"] = round(rss, 1)
    return res


def bench_build():
    tmp = Path(tempfile.mkdtemp())
    try:
        wall, rss = run_cli("build", "--quiet", "--index", str(tmp / "index"), peak=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(rss, 1)}


def bench_book(index: Path | None = None, repeat: int = 3):
    """The whole book: build (wall, CPU, peak memory), index size, cold `rag ask`, warm latencies."""
    tmp = Path(tempfile.mkdtemp())
    try:
        if index is None:
            index = tmp / "book-index"
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            wall, rss = run_cli("build", "--quiet", "--corpus", str(REPO / "book"), "--index", str(index), peak=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            build = {"wall_s": round(wall, 2), "cpu_s": round(after.ru_utime + after.ru_stime
                                                                - before.ru_utime - before.ru_stime, 1),
                     "peak_rss_mb": round(rss, 1)}
        else:
            build = {}
        size = sum(p.stat().st_size for p in Path(index).rglob("*") if p.is_file())
        cold = {}
        for name, q in [("ask_zh", "什么是1x1卷积？"), ("ask_en", "What is batch normalization?")]:
            run_cli("ask", q, "--index", str(index))
            walls = [run_cli("ask", q, "--index", str(index))[0] for _ in range(repeat)]
            cold[name] = {"median_s": round(statistics.median(walls), 3), "min_s": round(min(walls), 3)}
        warm = bench_warm(index, [REPO / "eval" / "book_questions.jsonl"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"build": build, "index_mb": round(size / 2**20, 1), "cold": cold, "warm": warm}


def bench_warm(index: Path = REPO / "index", question_files=(REPO / "eval" / "questions.jsonl",)):
    from rag import Retriever
    from rag.answer import answer
    from rag.evaluate import read_questions
    from rag.retriever import detect_language

    r = Retriever.load(index)
    questions = [q["question"] for f in question_files for q in read_questions(f)]
    for q in questions[:10]:
        answer(q, r)
    res = {}
    for mode in ("hybrid", "dense", "lexical"):
        t = []
        for q in questions:
            a = time.perf_counter()
            r.search(q, k=5, mode=mode)
            t.append(time.perf_counter() - a)
        res[f"search_{mode}"] = {"p50_ms": ms(pct(t, 50)), "p95_ms": ms(pct(t, 95)), "max_ms": ms(max(t))}
    t = []
    for q in questions:
        a = time.perf_counter()
        answer(q, r)
        t.append(time.perf_counter() - a)
    res["answer_hybrid"] = {"p50_ms": ms(pct(t, 50)), "p95_ms": ms(pct(t, 95)), "max_ms": ms(max(t))}
    for lang in ("zh", "en"):
        t = []
        for q in questions:
            if (detect_language(q) == lang):
                a = time.perf_counter()
                answer(q, r)
                t.append(time.perf_counter() - a)
        if t:
            res[f"answer_hybrid_{lang}"] = {"p50_ms": ms(pct(t, 50)), "p95_ms": ms(pct(t, 95)), "max_ms": ms(max(t))}
    res["breakdown_ms"] = breakdown(r, questions)
    return res


def breakdown(r, questions):
    """Median time of each stage of a warm hybrid answer."""
    from rag.answer import answer

    stages = {k: [] for k in ("encode", "tokenize", "retrieve (candidates + fusion)", "sentence selection")}
    for q in questions:
        t0 = time.perf_counter()
        qv = r.embed(q)
        t1 = time.perf_counter()
        r.index.tokenize(q)
        t2 = time.perf_counter()
        r.retrieve(q, 5, "hybrid", qv=qv)
        t3 = time.perf_counter()
        answer(q, r)
        t4 = time.perf_counter()
        stages["encode"].append(t1 - t0)
        stages["tokenize"].append(t2 - t1)
        stages["retrieve (candidates + fusion)"].append(t3 - t2)
        stages["sentence selection"].append(max(0.0, (t4 - t3) - (t3 - t2) - (t1 - t0)))
    return {k: ms(statistics.median(v)) for k, v in stages.items()}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url, payload):
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        resp.read()
        return resp.status


def bench_server(clients=8, seconds=30.0):
    from rag.evaluate import read_questions

    port = _free_port()
    fb = Path(tempfile.mkdtemp()) / "fb.jsonl"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([*RAG, "serve", "--port", str(port), "--feedback", str(fb)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                _post(url + "/api/ask", {"question": "什么是负迁移？"})
                break
            except OSError:
                if time.perf_counter() - t0 > 120:
                    raise RuntimeError("server did not answer in 120 s")
                time.sleep(0.1)
        first_answer = time.perf_counter() - t0
        # the page must load too
        urllib.request.urlopen(url + "/", timeout=30).read()
        rss_warm = _rss_mb(proc.pid)
        questions = [q["question"] for q in read_questions(REPO / "eval" / "questions.jsonl")]
        lat, errors = [], []
        stop = time.perf_counter() + seconds

        def client(i):
            n = i
            while time.perf_counter() < stop:
                q = questions[n % len(questions)]
                n += clients
                a = time.perf_counter()
                try:
                    status = _post(url + "/api/ask", {"question": q, "k": 5})
                    (lat if status == 200 else errors).append(time.perf_counter() - a)
                except Exception as e:  # a failed request is a result here, not a crash
                    errors.append(repr(e))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        t = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        elapsed = time.perf_counter() - t
        return {"serve_to_first_answer_s": round(first_answer, 2), "rss_after_warmup_mb": rss_warm,
                "rss_after_load_mb": _rss_mb(proc.pid), "clients": clients, "seconds": seconds,
                "requests": len(lat), "failed": len(errors), "throughput_rps": round(len(lat) / elapsed, 1),
                "p50_ms": ms(pct(lat, 50)), "p95_ms": ms(pct(lat, 95)), "max_ms": ms(max(lat))}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _rss_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def bench_scale(max_n=100_000, qdrant_max_n=10_000, skip_ivf=False):
    """The whole hybrid search at 10k/100k/1M synthetic chunks: see benchmarks/scale.py."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import scale

    return scale.bench_scale(max_n, qdrant_max_n, skip_ivf=skip_ivf,
                             log=lambda m: print(m, file=sys.stderr, flush=True))


def table(title, rows):
    print(f"\n{title}")
    keys = list(dict.fromkeys(k for r in rows for k in r))
    widths = [max(len(k), *(len(str(r.get(k, ""))) for r in rows)) for k in keys]
    print("  ".join(k.ljust(w) for k, w in zip(keys, widths)))
    for r in rows:
        print("  ".join(str(r.get(k, "")).ljust(w) for k, w in zip(keys, widths)))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only-scale", action="store_true", help="run the scale benchmark only (benchmarks/scale.py)")
    p.add_argument("--skip-scale", action="store_true")
    p.add_argument("--skip-server", action="store_true")
    p.add_argument("--max-n", type=int, default=100_000, help="largest scale row (1000000: see benchmarks/scale.py)")
    p.add_argument("--qdrant-max-n", type=int, default=10_000, help="largest Qdrant local-mode row")
    p.add_argument("--skip-ivf", action="store_true", help="no IVF-PQ rows (training takes minutes on one core)")
    p.add_argument("--book", action="store_true", help="benchmark the whole book (book/) only")
    p.add_argument("--book-index", type=Path, help="with --book: use this built book index instead of building one")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results.json")
    args = p.parse_args()
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine(),
               "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}
    results = {"machine": machine, "date": time.strftime("%Y-%m-%d")}
    if args.book:
        results["book"] = book = bench_book(args.book_index)
        table("The whole book: build", [book["build"] | {"index_mb": book["index_mb"]}])
        table("The whole book: cold rag ask (new process)", [{"what": k, **v} for k, v in book["cold"].items()])
        table("The whole book: warm latency over its questions",
              [{"what": k, **v} for k, v in book["warm"].items() if k != "breakdown_ms"])
        table("The whole book: where a warm hybrid answer's time goes (median ms)", [book["warm"]["breakdown_ms"]])
        previous = json.loads(args.out.read_text()) if args.out.exists() else {}
        args.out.write_text(json.dumps({**previous, **results}, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return
    if args.only_scale:
        results["scale"] = bench_scale(args.max_n, args.qdrant_max_n, args.skip_ivf)
        table("Hybrid search at scale (benchmarks/scale.py; 200 queries, k=5, one thread)", results["scale"])
        previous = json.loads(args.out.read_text()) if args.out.exists() else {}
        args.out.write_text(json.dumps({**previous, **results}, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return
    print("cold ...", file=sys.stderr)
    results["cold"] = bench_cold()
    table("Cold: a new process with the committed index", [results["cold"]])
    print("build ...", file=sys.stderr)
    results["build"] = bench_build()
    table("Build of the bundled index", [results["build"]])
    print("warm ...", file=sys.stderr)
    results["warm"] = bench_warm()
    table("Warm latency over the question set", [{"what": k, **v} for k, v in results["warm"].items() if k != "breakdown_ms"])
    table("Where a warm hybrid answer's time goes (median ms)", [results["warm"]["breakdown_ms"]])
    results["warm_process_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if not args.skip_server:
        print("server ...", file=sys.stderr)
        results["server"] = bench_server()
        table("Server: rag serve, then 8 clients on /api/ask for 30 s", [results["server"]])
    if not args.skip_scale:
        print("scale ...", file=sys.stderr)
        results["scale"] = bench_scale(args.max_n, args.qdrant_max_n, args.skip_ivf)
        table("Hybrid search at scale (benchmarks/scale.py; 200 queries, k=5, one thread)", results["scale"])
    args.out.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
