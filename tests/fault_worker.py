"""Fault injection for index builds: builds SIGKILLed at every phase, and concurrent builds, while readers search.

Worker processes (fast fake encoder, no model):

    python tests/fault_worker.py build CORPUS INDEX       build an index
    python tests/fault_worker.py read INDEX STOP OUT      load and search in a loop until STOP exists;
                                                          one line per load to OUT: "<corpus sha> <chunks>" or an error

`campaign()` runs the rounds (tests/test_faults.py runs a few; benchmarks/faults.py runs 200). Where a
kill lands is not left to a fixed window. The parent watches the index directory with inotify; a
build's steps show there without any hook in the code: `.tmp-*` created (it starts writing its
version), `v-<id>` renamed into place (publish begins), `.CURRENT-<pid>` created (the pointer is
written), `CURRENT` renamed over (the swap). Calibration builds time these markers under the same
load; then half the killed builds die at a time drawn uniformly over the whole calibrated build
(start to exit), and half at a marker (each in turn) plus a uniform share of the gap to the next one,
so the short publish steps get kills too. After each kill the frozen directory says where the kill
actually landed (see `landed`), which is what the histogram counts.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import random
import re
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import REPO, FakeEncoder  # noqa: E402
from rag.index import CURRENT, build_index, load_index  # noqa: E402
from rag.retriever import Retriever  # noqa: E402

WORKER = [sys.executable, str(Path(__file__).resolve())]
QUERY = "什么是负迁移？"
MARKERS = ("tmp", "renamed", "pointer", "swapped")  # in the order a build reaches them
PHASES = ("before writing (start-up, reading, encoding)", "writing .tmp-*", "publish: version renamed, pointer not written",
          "publish: pointer written, not swapped", "after the swap: removing old versions", "after the swap: exiting")
VERSION = re.compile(r"v-[0-9a-f]{16}")


def read(index: Path, stop: Path, out: Path) -> None:
    encoder = FakeEncoder()
    with open(out, "w", encoding="utf-8") as f:
        while not stop.exists():
            try:
                idx = load_index(index, check_corpus=False)
                hits = Retriever(idx, encoder).search(QUERY, k=3)
                assert hits, "no hits"
                f.write(f"{corpus_sha(idx.manifest)} {len(idx.chunks)}\n")
            except BaseException:  # noqa: BLE001 - every failure is a finding
                f.write("ERROR " + traceback.format_exc().replace("\n", " | ") + "\n")
            f.flush()


def corpus_sha(manifest: dict) -> str:
    """One name for the corpus an index was built from."""
    return hashlib.sha256(repr(sorted((k, v["sha256"]) for k, v in manifest["corpus"].items())).encode()).hexdigest()[:12]


class DirWatch:
    """inotify on one directory: the build markers as they happen (Linux; no polling delay)."""

    IN_CREATE, IN_MOVED_TO = 0x100, 0x80

    def __init__(self, path: Path):
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0 or libc.inotify_add_watch(self.fd, os.fsencode(path), self.IN_CREATE | self.IN_MOVED_TO) < 0:
            raise OSError(ctypes.get_errno(), "inotify is not available")

    def markers(self, timeout: float, pid: int) -> list[str]:
        if not select.select([self.fd], [], [], max(timeout, 0))[0]:
            return []
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return []
        out, pos = [], 0
        while pos < len(data):
            _, mask, _, size = struct.unpack_from("iIII", data, pos)
            name = data[pos + 16:pos + 16 + size].rstrip(b"\0").decode()
            pos += 16 + size
            if mask & self.IN_CREATE and name.startswith(".tmp-"):
                out.append("tmp")
            elif mask & self.IN_MOVED_TO and VERSION.fullmatch(name):
                out.append("renamed")
            elif mask & self.IN_CREATE and name == f".CURRENT-{pid}":
                out.append("pointer")
            elif mask & self.IN_MOVED_TO and name == CURRENT:
                out.append("swapped")
        return out

    def drain(self) -> None:
        while self.markers(0, -1):
            pass

    def close(self) -> None:
        os.close(self.fd)


def run_build(corpus: Path, index: Path, env: dict, watch: DirWatch, kill: tuple[str, float] | None = None):
    """One build process; kill = (marker or "start", delay in s) SIGKILLs it that long after the marker.
    Returns (marker times from the start, exit code or None if killed)."""
    watch.drain()
    t0 = time.perf_counter()
    proc = subprocess.Popen([*WORKER, "build", str(corpus), str(index)], env=env)
    marks: dict[str, float] = {}
    deadline = t0 + kill[1] if kill and kill[0] == "start" else None
    while True:
        now = time.perf_counter()
        if deadline is not None and now >= deadline:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return marks, None
        if proc.poll() is not None:
            marks["exit"] = time.perf_counter() - t0
            return marks, proc.returncode
        for m in watch.markers(min(0.01, deadline - now) if deadline is not None else 0.01, proc.pid):
            marks.setdefault(m, time.perf_counter() - t0)
            if kill and m == kill[0] and deadline is None:
                deadline = time.perf_counter() + kill[1]


def landed(index: Path, before: set[str], current_before: str | None, pid_files: set[str]) -> str:
    """Where a kill landed, read from the directory the killed build left."""
    names = {p.name for p in index.iterdir()}
    current = _current(index)
    if current != current_before:
        stale = {n for n in names & before if VERSION.fullmatch(n) and n not in (current, current_before)}
        return PHASES[4] if stale else PHASES[5]
    if names & pid_files:
        return PHASES[3]
    new = names - before
    if any(VERSION.fullmatch(n) for n in new):
        return PHASES[2]
    if any(n.startswith(".tmp-") for n in new):
        return PHASES[1]
    return PHASES[0]


def _current(index: Path) -> str | None:
    try:
        return (index / CURRENT).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None


def variants(base: Path, where: Path, n: int = 4) -> list[Path]:
    """n copies of the corpus directory base, copy i with i extra sections (so each builds another version)."""
    out = []
    zh = next(p.name for p in sorted(base.glob("*.zh.md")))
    for i in range(n):
        d = where / f"corpus{i}"
        shutil.copytree(base, d)
        extra = "".join(f"\n## 10.{90 + j} 测试节 {j}\n\n这是第 {j} 个测试节，用来改变索引的大小。负迁移不是这里的内容。\n"
                        for j in range(i))
        with open(d / zh, "a", encoding="utf-8") as f:
            f.write(extra)
        out.append(d)
    return out


def _snapshot(paths: list[Path]) -> dict[str, str]:
    out = {}
    for root in paths:
        for p in [root] if root.is_file() else sorted(root.rglob("*")):
            if p.is_file():
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def campaign(work: Path, rounds: int, base: Path = REPO / "corpus", seed: int = 2026, calibrate_every: int = 25,
             calibration_builds: int = 3, fixed_window: bool = False, log=print) -> dict:
    """Rounds of killed and concurrent builds while two readers load and search; returns the figures.

    fixed_window: the old way, for comparison: every single build killed at 0.2x-1.2x of one build timed
    before the readers started (no calibration under load, no markers)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    rng = random.Random(seed)
    corpora = variants(base, work)
    index = work / "index"
    expected = {}  # corpus sha -> chunk count
    for c in corpora:
        scratch = work / "scratch"
        build_index(c, scratch, FakeEncoder())
        idx = load_index(scratch, check_corpus=False)
        expected[corpus_sha(idx.manifest)] = len(idx.chunks)
        shutil.rmtree(scratch)
    build_index(corpora[0], index, FakeEncoder())
    # What the builds did not create and must never remove: a user's notes inside and beside the index,
    # a directory whose name starts like a version's, and the corpora.
    (index / "NOTES.md").write_text("my notes\n", encoding="utf-8")
    (index / "v-notes").mkdir()
    (index / "v-notes" / "keep.txt").write_text("keep\n", encoding="utf-8")
    (work / "beside.txt").write_text("beside\n", encoding="utf-8")
    guarded = [index / "NOTES.md", index / "v-notes", work / "beside.txt", *corpora]
    guard = _snapshot(guarded)

    watch = DirWatch(index)
    if fixed_window:
        marks, _ = run_build(corpora[-1], index, env, watch)
        med = {"exit": marks["exit"]}
    stop = work / "stop"
    readers = [subprocess.Popen([*WORKER, "read", str(index), str(stop), str(work / f"read{i}.txt")], env=env)
               for i in range(2)]
    calib: list[dict] = []
    fig = Counter({k: 0 for k in ("calibration builds", "killed builds", "builds that finished before their kill",
                                  "concurrent builds", "failed builds", "corrupt index after a round",
                                  "previous version missing after a publish", "data loss")})
    hist: Counter = Counter()
    planned: Counter = Counter()
    problems: list[str] = []
    t_start = time.perf_counter()
    nxt = 1
    try:
        time.sleep(1.0)  # readers running: calibrate under their load
        for n in range(rounds):
            if not fixed_window and n % calibrate_every == 0:  # time the markers of whole builds under the current load
                for _ in range(calibration_builds if n == 0 else 1):
                    marks, rc = run_build(corpora[nxt % len(corpora)], index, env, watch)
                    nxt += 1
                    fig["calibration builds"] += 1
                    fig["failed builds"] += rc != 0
                    if set(MARKERS) <= set(marks):
                        calib.append(marks)
                med = {m: statistics.median(c[m] for c in calib[-5:]) for m in (*MARKERS, "exit")}
                log(f"round {n}: calibrated marker times (s) " + ", ".join(f"{m} {t:.3f}" for m, t in med.items()))
            current_before = _current(index)
            before = {p.name for p in index.iterdir()}
            if n % 5 == 4:  # two builds at once, both must finish
                procs = [subprocess.Popen([*WORKER, "build", str(corpora[(nxt + j) % len(corpora)]), str(index)],
                                          env=env) for j in range(2)]
                nxt += 2
                fig["concurrent builds"] += 2
                fig["failed builds"] += sum(p.wait(timeout=300) != 0 for p in procs)
            else:
                if fixed_window:
                    kill = ("start", rng.uniform(0.2, 1.2) * med["exit"])
                    planned["0.2x-1.2x of a build timed before the readers"] += 1
                elif n % 2 == 0:  # a time uniform over the whole build
                    kill = ("start", rng.uniform(0, med["exit"]))
                    planned["uniform over the build"] += 1
                else:  # a marker, then a uniform share of the gap to the next step
                    i = (n // 2) % len(MARKERS)  # each marker in turn
                    nxt_t = med[MARKERS[i + 1]] if i + 1 < len(MARKERS) else med["exit"]
                    kill = (MARKERS[i], rng.uniform(0, max(nxt_t - med[MARKERS[i]], 0)))
                    planned[f"at marker {MARKERS[i]}"] += 1
                marks, rc = run_build(corpora[nxt % len(corpora)], index, env, watch, kill)
                nxt += 1
                if rc is None:
                    fig["killed builds"] += 1
                    pid_files = {n_ for n_ in os.listdir(index) if n_.startswith(".CURRENT-")} - before
                    hist[landed(index, before, current_before, pid_files)] += 1
                else:
                    fig["builds that finished before their kill"] += 1
                    fig["failed builds"] += rc != 0
            # After every round: the index CURRENT names is whole, and is the old or a new build.
            try:
                idx = load_index(index, check_corpus=False)
                sha = corpus_sha(idx.manifest)
                if expected.get(sha) != len(idx.chunks) or idx.vectors.ntotal != len(idx.chunks):
                    raise AssertionError(f"index of {sha} with {len(idx.chunks)} chunks")
            except Exception as e:  # noqa: BLE001
                fig["corrupt index after a round"] += 1
                problems.append(f"round {n}: {type(e).__name__}: {e}")
            if n % 5 != 4 and current_before != _current(index) and not (index / current_before).is_dir():
                fig["previous version missing after a publish"] += 1
                problems.append(f"round {n}: previous version {current_before} gone")
            lost = [k for k, v in guard.items() if _snapshot([Path(k)]).get(k) != v]
            if lost:
                fig["data loss"] += len(lost)
                problems.append(f"round {n}: lost or changed {lost}")
                guard = _snapshot(guarded)
    finally:
        stop.touch()
        for r in readers:
            r.wait(timeout=60)
        watch.close()
    reads = [line for i in range(2) for line in (work / f"read{i}.txt").read_text().splitlines()]
    errors = [line for line in reads if line.startswith("ERROR")]
    wrong = [line for line in reads if not line.startswith("ERROR")
             and expected.get(line.split()[0]) != int(line.split()[1])]
    # The next build cleans up what killed builds left.
    build_index(corpora[0], index, FakeEncoder())
    leftovers = sorted(p.name for p in index.iterdir() if p.name.startswith((".tmp-", ".CURRENT-")))
    versions = [p.name for p in index.iterdir() if VERSION.fullmatch(p.name)]
    return {"rounds": rounds, "seconds": round(time.perf_counter() - t_start),
            "kill window": "fixed 0.2x-1.2x" if fixed_window else "adaptive",
            "calibrated_marker_seconds": {m: round(t, 3) for m, t in med.items()},
            **dict(fig), "reads": len(reads), "reader errors": len(errors), "wrong reads": len(wrong),
            "kills landed": {p: hist[p] for p in PHASES}, "kills planned": dict(planned),
            "leftovers after a final build": leftovers, "versions after a final build": len(versions),
            "problems": problems[:20], "reader error examples": errors[:3], "wrong read examples": wrong[:3]}


if __name__ == "__main__":
    if sys.argv[1] == "build":
        build_index(Path(sys.argv[2]), Path(sys.argv[3]), FakeEncoder())
    else:
        read(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
