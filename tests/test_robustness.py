"""Robustness: odd input everywhere, a build killed halfway, load on the server, a killed feedback writer."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

import pytest

from conftest import REPO, http
from rag.answer import answer
from rag.index import build_index, load_index, version_dir
from rag.types import RagError

ODD = ["\x00\x01\x07 什么是负迁移", "🙂🙂🙂", "什麼是負遷移？產生負遷移的原因有哪些？", "负迁移 and negative transfer 的区别",
       "<b>bold</b><script>alert(1)</script>", "[click](javascript:alert(1)) **负迁移**", "\u200b\u200b什么\u3000是迁移学习",
       "ＷＨＡＴ ＩＳ ＴＲＡＮＳＦＥＲ ＬＥＡＲＮＩＮＧ？"]


@pytest.mark.parametrize("question", ODD)
def test_odd_questions_get_a_sane_answer_from_the_library(retriever, question):
    for mode in ("hybrid", "dense", "lexical"):
        retriever.search(question, k=5, mode=mode)
    a = answer(question, retriever)
    assert a.answer and (a.abstained or a.citations)


def test_100_kb_question_is_refused_clearly(retriever):
    with pytest.raises(RagError, match="limit is 2000"):
        answer("迁移" * 50_000, retriever)


@pytest.mark.parametrize("question", ODD[:4])
def test_odd_questions_over_http_and_the_server_keeps_serving(server, question):
    status, hits = http(server["url"] + "/api/search?q=" + urllib.parse.quote(question))
    assert status == 200 and isinstance(hits, list)
    status, ans = http(server["url"] + "/api/ask", {"question": question})
    assert status == 200 and ans["answer"]
    status, _ = http(server["url"] + "/api/ask", {"question": "迁移" * 50_000})
    assert status == 413  # the body is over the API's 64 KB limit
    assert http(server["url"] + "/api/health")[0] == 200


def test_concurrent_clients_get_no_failed_request(server):
    """8 clients for a bounded 3 s on loopback: every request answered (timing is for the benchmark)."""
    results, stop = [], time.time() + 3
    questions = ["什么是负迁移？", "What is multi-task learning?", "端到端深度学习的优缺点", "How do I bake bread?"]

    def client(i):
        n = 0
        while time.time() < stop and n < 200:
            results.append(http(server["url"] + "/api/ask", {"question": questions[(i + n) % 4]})[0])
            n += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) >= 8 and set(results) == {200}


def test_build_killed_halfway_leaves_the_previous_index_working(tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(REPO / "corpus", corpus)
    index = tmp_path / "index"
    build_index(corpus, index)
    before = (version_dir(index) / "manifest.json").read_text()
    (corpus / "extra.md").write_text("## 99.1 新的一节\n\n新的内容。\n", encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "build", "--quiet", "--corpus", str(corpus),
                             "--index", str(index)], cwd=REPO)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if any(p.name.startswith(".tmp-") for p in index.iterdir()):
            break  # it is writing the new index now
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (version_dir(index) / "manifest.json").read_text() == before
    idx = load_index(index, check_corpus=False)  # the old index, intact and consistent
    assert idx.vectors.ntotal == len(idx.chunks)
    # The next build cleans up what the killed one left and succeeds.
    build_index(corpus, index)
    assert "extra.md" in json.loads((version_dir(index) / "manifest.json").read_text())["corpus"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "index"]
    assert not [p for p in index.iterdir() if p.name.startswith((".tmp-", ".CURRENT-"))]


def test_feedback_log_survives_a_killed_writer(tmp_path):
    path = tmp_path / "feedback.jsonl"
    code = ("import sys; from pathlib import Path; from rag.feedback import append_feedback, feedback_record\n"
            "while True: append_feedback(Path(sys.argv[1]), feedback_record('负迁移' * 200, 'zh', ['10.14'], 'up', []))")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], cwd=REPO)
    deadline = time.time() + 60
    while time.time() < deadline and (not path.exists() or path.read_bytes().count(b"\n") < 10):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    data = path.read_bytes()
    lines = data.decode("utf-8").splitlines()
    assert len(lines) >= 10 and data.endswith(b"\n")  # each line is one write(): SIGKILL cannot split it
    assert all(json.loads(line)["relevant"] == ["10.14"] for line in lines)
