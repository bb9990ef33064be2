"""Shared fixtures: a fast fake encoder and small corpora for unit tests; the real models once per session."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
SEED = REPO.parent / "shared" / "seed" / "ch10_transfer_learning.zh.txt"


class FakeEncoder:
    """Deterministic bag-of-characters vectors: texts sharing characters are similar. Fast, no model."""

    id = "fake-chars"
    dim = 64

    def encode(self, texts):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for ch in t:
                if not ch.isspace():
                    out[i, hashlib.md5(ch.encode()).digest()[0] % self.dim] += 1.0
            n = np.linalg.norm(out[i])
            out[i] = out[i] / n if n else out[i]
        return out


SMALL_ZH = """# 测试章

## 1.1 什么是猫？

猫是一种小型食肉动物。猫喜欢睡觉。

## 1.2 什么是狗？

狗是人类的朋友。狗会看家。

### 狗的品种

金毛和哈士奇都是常见的狗。

## 参考文献

1. 动物百科
"""


@pytest.fixture
def fake_encoder():
    return FakeEncoder()


@pytest.fixture
def small_corpus(tmp_path):
    """A two-section chapter with a sub-block and an unnumbered reference part."""
    d = tmp_path / "corpus"
    d.mkdir()
    (d / "animals.zh.md").write_text(SMALL_ZH, encoding="utf-8")
    return d


@pytest.fixture(scope="session")
def retriever():
    """The real retriever over the committed index (default encoder), loaded once."""
    from rag import Retriever

    return Retriever.load(REPO / "index")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url, data=None, raw=None):
    body = raw if raw is not None else (json.dumps(data).encode() if data is not None else None)
    req = urllib.request.Request(url, data=body, headers={"content-type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@contextlib.contextmanager
def serving(*args: str):
    """A real `rag serve` on a free port with extra args; yields its URL once /api/health answers."""
    port = _free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "serve", "--port", str(port), *args],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited: {proc.stdout.read()}")
        try:
            urllib.request.urlopen(url + "/api/health", timeout=2)
            break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("server did not start in 120 s")
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:  # uvicorn waits for open browser connections
            proc.kill()
            proc.wait(timeout=20)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    feedback = tmp_path_factory.mktemp("fb") / "feedback.jsonl"
    with serving("--feedback", str(feedback)) as url:
        yield {"url": url, "feedback": feedback}
