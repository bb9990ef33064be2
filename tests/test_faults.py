"""Fault injection: builds SIGKILLed at random moments and concurrent builds, while readers load and search.

Readers must always get the old or the new index (never an error), no build may fail, and the
final index must be whole. The suite runs a few rounds; RAG_FAULT_ROUNDS=200 runs the full
measurement reported in docs/RELIABILITY.md.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from conftest import REPO, SMALL_ZH, FakeEncoder
from rag.index import build_index, load_index
from rag.retriever import Retriever

ROUNDS = int(os.environ.get("RAG_FAULT_ROUNDS", "6"))
WORKER = [sys.executable, str(REPO / "tests" / "fault_worker.py")]


def test_killed_and_concurrent_builds_never_disturb_readers(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    corpora = []
    for name, extra in (("a", ""), ("b", "\n## 2.1 鸟\n\n鸟会飞。鸟会唱歌。\n\n## 2.2 鱼\n\n鱼会游泳。\n")):
        d = tmp_path / name
        d.mkdir()
        (d / "animals.zh.md").write_text(SMALL_ZH + extra, encoding="utf-8")
        corpora.append(d)
    index = tmp_path / "index"
    build_index(corpora[0], index, FakeEncoder())
    sizes = {len(load_index(index, check_corpus=False).chunks)}
    build_index(corpora[1], index, FakeEncoder())
    sizes.add(len(load_index(index, check_corpus=False).chunks))
    assert len(sizes) == 2

    t0 = time.perf_counter()  # how long a build process takes: kills land anywhere up to its end
    assert subprocess.run([*WORKER, "build", str(corpora[0]), str(index)], env=env).returncode == 0
    build_time = time.perf_counter() - t0

    stop = tmp_path / "stop"
    readers = [subprocess.Popen([*WORKER, "read", str(index), str(stop), str(tmp_path / f"read{i}.txt")], env=env)
               for i in range(2)]
    rng = random.Random(2026)
    killed = failed = 0
    try:
        for n in range(ROUNDS):
            if n % 5 == 4:  # two builds at once, both must finish
                procs = [subprocess.Popen([*WORKER, "build", str(c), str(index)], env=env) for c in corpora]
                failed += sum(p.wait(timeout=300) != 0 for p in procs)
                continue
            proc = subprocess.Popen([*WORKER, "build", str(corpora[n % 2]), str(index)], env=env)
            delay = rng.uniform(0.2, 1.2) * build_time
            try:
                failed += proc.wait(timeout=delay) != 0
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                killed += 1
    finally:
        stop.touch()
        for r in readers:
            r.wait(timeout=60)
    reads = [line for i in range(2) for line in (tmp_path / f"read{i}.txt").read_text().splitlines()]
    errors = [line for line in reads if line.startswith("ERROR")]
    print(f"{ROUNDS} rounds (build {build_time:.1f} s): {killed} builds killed, {len(reads)} reads, {len(errors)} reader errors, "
          f"{failed} failed builds")
    assert not errors, errors[:3]
    assert failed == 0
    assert reads and {int(x) for x in reads} <= sizes  # always the old or the new index
    # The final index is whole, and the next build cleans up what killed builds left.
    build_index(corpora[0], index, FakeEncoder())
    idx = load_index(index, check_corpus=False)
    assert idx.vectors.ntotal == len(idx.chunks) and Retriever(idx, FakeEncoder()).search("猫", k=1)
    assert not [p for p in index.iterdir() if p.name.startswith((".tmp-", ".CURRENT-"))]
    assert len([p for p in index.iterdir() if p.name.startswith("v-")]) <= 2
