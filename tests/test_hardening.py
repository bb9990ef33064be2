"""Regression tests for issue 10: no data loss, readers never write, every bad input a clear error.

Each test reproduces one finding of the adversarial pass (see docs/RELIABILITY.md).
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request

import faiss
import numpy as np
import pytest

from conftest import REPO, SMALL_ZH, FakeEncoder, http
from rag import cli
from rag.answer import answer
from rag.evaluate import read_questions
from rag.feedback import append_feedback, check_feedback_path, feedback_record
from rag.index import FORMAT_VERSION, build_index, load_index, version_dir
from rag.retriever import Retriever
from rag.types import DamagedIndexError, RagError, StaleIndexError


@pytest.fixture
def built(tmp_path, small_corpus, fake_encoder):
    index = tmp_path / "index"
    build_index(small_corpus, index, fake_encoder)
    return index


def snapshot(path):
    return {p.relative_to(path): (p.read_bytes() if p.is_file() else None) for p in sorted(path.rglob("*"))}


def run_cli(*args, cwd=REPO):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "rag.cli", *args], cwd=cwd, env=env, capture_output=True)


# ------------------------------------------------------------------ 1. data loss

def test_build_refuses_a_directory_that_is_not_an_index(tmp_path, small_corpus, fake_encoder):
    mydata = tmp_path / "mydata"
    mydata.mkdir()
    (mydata / "notes.txt").write_text("notes", encoding="utf-8")
    with pytest.raises(RagError, match="not an index; nothing was changed"):
        build_index(small_corpus, mydata, fake_encoder)
    assert snapshot(mydata) == {mydata.joinpath("notes.txt").relative_to(mydata): b"notes"}


def test_build_refuses_the_corpus_and_its_parents(tmp_path, small_corpus, fake_encoder):
    before = snapshot(tmp_path)
    for target in (small_corpus, tmp_path, small_corpus / ".."):
        with pytest.raises(RagError, match="is the corpus directory or contains it"):
            build_index(small_corpus, target, fake_encoder)
    assert snapshot(tmp_path) == before


def test_build_refuses_a_plain_file_and_leaves_it(tmp_path, small_corpus, fake_encoder):
    target = tmp_path / "index"
    target.write_text("mine", encoding="utf-8")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(RagError, match="is a file"):
        build_index(small_corpus, target, fake_encoder)
    assert target.read_text(encoding="utf-8") == "mine" and sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("target", [".", ".."])
def test_cli_build_refuses_dot_and_dotdot(tmp_path, target):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    (work / "keep.txt").write_text("x", encoding="utf-8")
    out = run_cli("build", "--corpus", str(REPO / "corpus"), "--index", target, cwd=work)
    assert out.returncode == 2 and b"error: --index" in out.stderr and b"Traceback" not in out.stderr
    assert sorted(p.name for p in work.iterdir()) == ["keep.txt"] and sorted(p.name for p in work.parent.iterdir()) == ["b"]


def test_build_into_an_empty_directory_and_over_its_own_index(tmp_path, small_corpus, fake_encoder):
    empty = tmp_path / "empty"
    empty.mkdir()
    build_index(small_corpus, empty, fake_encoder)
    build_index(small_corpus, empty, fake_encoder)  # an index it made: rebuilt in place
    assert load_index(empty).vectors.ntotal == 3


def test_rebuilding_repairs_a_damaged_version_of_the_same_content(built, small_corpus, fake_encoder):
    """The rebuild the DamagedIndexError message asks for must replace the damaged files, not keep them."""
    chunks = version_dir(built) / "chunks.jsonl"
    chunks.write_text(chunks.read_text(encoding="utf-8").replace("猫", "虎", 1), encoding="utf-8")
    with pytest.raises(DamagedIndexError):
        load_index(built)
    build_index(small_corpus, built, fake_encoder)
    assert load_index(built).vectors.ntotal == 3
    assert not [p for p in built.iterdir() if p.name.startswith(".tmp-")]


def test_an_index_from_before_versioning_loads_and_is_rebuilt_beside_its_files(tmp_path, small_corpus, fake_encoder,
                                                                              built):
    flat = tmp_path / "flat"
    import shutil

    shutil.copytree(version_dir(built), flat)
    assert load_index(flat).vectors.ntotal == 3
    build_index(small_corpus, flat, fake_encoder)  # manifest.json present: an index it made
    assert version_dir(flat) != flat and (flat / "manifest.json").is_file()


# ------------------------------------------------------------------ 2. readers never write

def test_loading_never_writes_nor_rebuilds_nor_prints(built, small_corpus, capsys, monkeypatch):
    monkeypatch.setattr("rag.retriever.load_encoder", lambda name=None: FakeEncoder())
    (small_corpus / "animals.zh.md").write_text(SMALL_ZH + "\n## 2.1 新\n\n新内容。\n", encoding="utf-8")
    (built / ".tmp-leftover").mkdir()  # a killed build's directory: only a build may remove it
    before = snapshot(built)
    with pytest.raises(StaleIndexError):
        Retriever.load(built)
    with pytest.raises(StaleIndexError):
        load_index(built)
    assert snapshot(built) == before
    assert capsys.readouterr() == ("", "")


def test_serving_commands_rebuild_a_stale_index_and_say_so(built, small_corpus, capsys, monkeypatch):
    monkeypatch.setattr("rag.retriever.load_encoder", lambda name=None: FakeEncoder())
    (small_corpus / "animals.zh.md").write_text(SMALL_ZH + "\n## 2.1 新鲜事\n\n新内容。\n", encoding="utf-8")
    assert cli.main(["search", "新鲜事", "--index", str(built), "-k", "1"]) == 0
    out = capsys.readouterr()
    assert "stale" in out.err and "rebuilding it now" in out.err and "§animals/2.1" in out.out


def test_two_concurrent_builds_serialise(tmp_path, small_corpus):
    index = tmp_path / "index"
    procs = [subprocess.Popen([sys.executable, str(REPO / "tests" / "fault_worker.py"), "build", str(small_corpus),
                               str(index)], env={**os.environ, "PYTHONPATH": str(REPO)}) for i in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    idx = load_index(index, check_corpus=False)
    assert idx.vectors.ntotal == len(idx.chunks) and sorted(p.name for p in index.iterdir() if
                                                            p.name.startswith(".tmp")) == []


def test_retriever_load_none_is_a_clear_error():
    with pytest.raises(RagError, match="must be a path"):
        Retriever.load(None)


# ------------------------------------------------------------------ 3. lone surrogates, wrong types

@pytest.mark.parametrize("question", ["\ud800 what", "\udcff什么是负迁移？"])
def test_lone_surrogates_are_a_rag_error(retriever, question):
    with pytest.raises(RagError, match="not valid Unicode"):
        answer(question, retriever)
    with pytest.raises(RagError, match="not valid Unicode"):
        retriever.search(question)


@pytest.mark.parametrize("previous, message", [("\ud800什么是负迁移？", "not valid Unicode"),
                                               ("什么是负迁移" * 400, "the limit is 2000")])
def test_the_history_question_is_checked_like_a_question(retriever, previous, message):
    with pytest.raises(RagError, match=f"the last turn of the history: .*{message}"):
        answer("它的缺点呢？", retriever, history=[{"question": previous}])


@pytest.mark.parametrize("question", [b"what", 5, 1.5, ["q"]])
def test_a_question_that_is_not_text_is_a_type_error_message(retriever, question):
    with pytest.raises(RagError, match="must be text"):
        answer(question, retriever)


def test_cli_undecodable_argument_is_an_error_line():
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "LC_ALL": "C.UTF-8"}
    out = subprocess.run([sys.executable.encode(), b"-m", b"rag.cli", b"ask", b"\xff" + "什么是负迁移？".encode()],
                         cwd=REPO, env=env, capture_output=True)
    assert out.returncode == 2 and out.stderr.startswith(b"error: the question has a character") \
        and b"Traceback" not in out.stderr


def test_http_lone_surrogate_is_400_json_and_the_connection_survives(server):
    import http.client

    conn = http.client.HTTPConnection(server["url"].split("//")[1], timeout=30)
    for _ in range(2):  # the second request on the same connection is answered too
        conn.request("POST", "/api/ask", body=b'{"question": "\\ud800 what"}', headers={"content-type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 400 and "not valid Unicode" in json.loads(resp.read())["error"]
    conn.request("POST", "/api/ask", body=b'{"question": "\xe5\xae\x83\xe7\x9a\x84\xe7\xbc\xba\xe7\x82\xb9\xe5\x91\xa2", '
                 b'"history": [{"question": "\\ud800 what"}]}', headers={"content-type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 400 and "not valid Unicode" in json.loads(resp.read())["error"]
    conn.request("GET", "/api/health")
    assert conn.getresponse().status == 200


# ------------------------------------------------------------------ 4. feedback log

def test_feedback_line_separators_do_not_split_a_record(tmp_path):
    log = tmp_path / "fb.jsonl"
    for q in ("什么是\u2028负迁移？", "a\u0085b\u2029c\x1c\x1d\x1e\x0b\x0c d"):
        append_feedback(log, feedback_record(q, "zh", ["10.14"], "up", []))
    data = log.read_bytes()
    assert data.isascii() and data.count(b"\n") == 2
    assert [q["question"] for q in read_questions(log)] == ["什么是\u2028负迁移？", "a\u0085b\u2029c\x1c\x1d\x1e\x0b\x0c d"]


def test_reader_skips_and_counts_damaged_lines(tmp_path, caplog):
    log = tmp_path / "fb.jsonl"
    good = json.dumps({"id": "a", "question": "什么是负迁移？", "lang": "zh", "relevant": ["10.14"]})
    log.write_bytes(b"\xff\xfe broken\n{oops\n" + good.encode() + b"\n" + b'{"id": "t", "question": "torn'
                    + b'\n{"id": "s", "question": "q", "relevant": "10.14"}\nnull\n')
    with caplog.at_level("WARNING"):
        qs = read_questions(log)
    assert [q["id"] for q in qs] == ["a"]
    assert "skipped 5 damaged line(s)" in caplog.text and "line 1: UnicodeDecodeError" in caplog.text
    assert "'relevant' must be a list" in caplog.text  # "10.14" is not split into characters


def test_writer_after_a_torn_line_keeps_its_record_whole(tmp_path):
    log = tmp_path / "fb.jsonl"
    log.write_bytes(b'{"id": "x", "question": "killed mid-wri')
    append_feedback(log, feedback_record("什么是负迁移？", "zh", ["10.14"], "up", []))
    assert [q["question"] for q in read_questions(log)] == ["什么是负迁移？"]


def test_writer_cuts_back_a_short_write(tmp_path, monkeypatch):
    log = tmp_path / "fb.jsonl"
    append_feedback(log, feedback_record("one", "en", [], "up", []))
    before = log.read_bytes()
    real = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real(fd, bytes(data)[: len(data) // 2]))
    with pytest.raises(RagError, match="cannot write feedback"):
        append_feedback(log, feedback_record("two", "en", [], "up", []))
    assert log.read_bytes() == before


def test_later_record_with_the_same_message_id_wins(tmp_path):
    log = tmp_path / "fb.jsonl"
    rec = feedback_record("什么是负迁移？", "zh", ["ch10/10.1"], "down", [])
    for r in (rec | {"message_id": "m1"}, rec | {"id": "b", "message_id": "m1", "relevant": ["ch10/10.14"]},
              rec | {"id": "c", "message_id": "m2"}, rec | {"id": "d", "message_id": "m2", "feedback": "withdrawn"},
              rec | {"id": "f", "message_id": ["not", "a", "key"]}, rec | {"id": "e"}):
        append_feedback(log, r)
    qs = read_questions(log)
    assert [(q["id"], q["relevant"]) for q in qs] == [("b", ["ch10/10.14"]), ("f", ["ch10/10.1"]), ("e", ["ch10/10.1"])]


@pytest.mark.parametrize("make", [lambda p: p.mkdir() or p, lambda p: (p.write_text("x"), p / "fb.jsonl")[1]])
def test_unusable_feedback_path_is_refused_at_start_up(tmp_path, make):
    path = make(tmp_path / "fb")
    with pytest.raises(RagError, match="feedback"):
        check_feedback_path(path)
    out = run_cli("serve", "--port", "1", "--feedback", str(path))
    assert out.returncode == 2 and b"error:" in out.stderr and b"ready" not in out.stdout


# ------------------------------------------------------------------ 7. tracebacks -> error: ...

def test_headings_only_corpus_is_a_clear_error(tmp_path, fake_encoder):
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "a.md").write_text("# 标题\n\n## 1.1 小节\n\n## 1.2 另一节\n", encoding="utf-8")
    with pytest.raises(RagError, match="has no text"):
        build_index(corpus, tmp_path / "index", fake_encoder)


def test_bad_glossary_is_a_clear_error(tmp_path, small_corpus, fake_encoder):
    (small_corpus / "glossary.tsv").write_bytes(b"\xff\xfe\t\xff\n")
    with pytest.raises(RagError, match="glossary .* is not UTF-8"):
        build_index(small_corpus, tmp_path / "index", fake_encoder)


def test_unreadable_corpus_file_in_freshness_check(built, small_corpus, monkeypatch):
    from pathlib import Path

    real = Path.read_bytes

    def deny(self):
        if self.name == "animals.zh.md":
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", deny)
    with pytest.raises(RagError, match="cannot read corpus file .*Permission denied"):
        load_index(built)


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC])
def test_unwritable_index_with_stale_corpus_is_a_clear_error(built, small_corpus, monkeypatch, capsys, code):
    monkeypatch.setattr("rag.retriever.load_encoder", lambda name=None: FakeEncoder())
    (small_corpus / "animals.zh.md").write_text(SMALL_ZH + "\n## 2.1 新\n\n新内容。\n", encoding="utf-8")
    before = snapshot(built)

    def fail(*a, **k):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr("rag.index.np.save", fail)
    assert cli.main(["ask", "猫", "--index", str(built)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert "rebuilding it now" in err[0] and "Traceback" not in "".join(err)
    assert err[-1].startswith("error: cannot write the index") and os.strerror(code) in err[-1] and "is unchanged" in err[-1]
    assert snapshot(built) == before


@pytest.mark.parametrize("index_type", ["HNSW0", "IVF0,Flat", "HNSW0,Flat", "Flat;rm", "PQ0"])
def test_unusable_index_types_are_refused_before_faiss(tmp_path, small_corpus, fake_encoder, index_type):
    with pytest.raises(RagError, match="not a usable FAISS index type|does not work"):
        build_index(small_corpus, tmp_path / "index", fake_encoder, index_type=index_type)
    assert not (tmp_path / "index").exists()


def test_cli_hnsw0_exits_with_an_error_not_sigabrt(tmp_path):
    out = run_cli("build", "--corpus", str(REPO / "corpus"), "--index", str(tmp_path / "i"), "--index-type", "HNSW0")
    assert out.returncode == 2 and b"error: --index-type 'HNSW0'" in out.stderr


@pytest.mark.parametrize("args,message", [
    (("--floors", "LIST"), "must hold a JSON object"),
    (("--floors", "WORDS"), "must be a number"),
    (("--compare", "OTHER"), "is not a results.json"),
    (("--report", "FILE"), "is a file"),
])
def test_eval_option_errors(tmp_path, capsys, args, message):
    files = {"LIST": "[0.5]", "WORDS": '{"hybrid/all/mrr@10": "high"}', "OTHER": '{"a": [1]}', "FILE": "x"}
    (tmp_path / args[1]).write_text(files[args[1]], encoding="utf-8")
    assert cli.main(["eval", "--quiet", args[0], str(tmp_path / args[1])]) == 2
    assert message in capsys.readouterr().err


# ------------------------------------------------------------------ 8. damaged and hostile manifests and arrays

def rehash(vdir):
    """Make the manifest's checksums agree with edited files (a consistent, hostile edit)."""
    m = json.loads((vdir / "manifest.json").read_text())
    m["files"] = {name: hashlib.sha256((vdir / name).read_bytes()).hexdigest() for name in m["files"]}
    (vdir / "manifest.json").write_text(json.dumps(m))


@pytest.mark.parametrize("manifest", ["null", "[]", '"x"', "{}", json.dumps({"format_version": FORMAT_VERSION})])
def test_malformed_manifests(built, manifest):
    (version_dir(built) / "manifest.json").write_text(manifest)
    with pytest.raises(DamagedIndexError, match="not a valid manifest"):
        load_index(built)


def test_single_byte_manifest_flips_never_escape_as_other_errors(built):
    path = version_dir(built) / "manifest.json"
    original = path.read_bytes()
    rng = random.Random(10)
    for _ in range(300):
        data = bytearray(original)
        i = rng.randrange(len(data))
        data[i] = rng.randrange(256)
        path.write_bytes(bytes(data))
        try:
            load_index(built, check_corpus=rng.random() < 0.5)
        except RagError:
            pass
    path.write_bytes(original)


def _edit(vdir, damage):
    if damage == "256-d vectors":
        index = faiss.IndexFlatIP(256)
        index.add(np.random.default_rng(0).standard_normal((3, 256)).astype(np.float32))
        faiss.write_index(index, str(vdir / "vectors.faiss"))
    elif damage == "NaN chunk vectors":
        index = faiss.read_index(str(vdir / "vectors.faiss"))
        v = index.reconstruct_n(0, index.ntotal)
        v[0, 0] = np.nan
        fresh = faiss.IndexFlatIP(v.shape[1])
        fresh.add(v)
        faiss.write_index(fresh, str(vdir / "vectors.faiss"))
    elif damage in ("NaN titles", "float64 titles"):
        t = np.load(vdir / "titles.npy")
        if damage == "NaN titles":
            t[0, 0] = np.nan
        np.save(vdir / "titles.npy", t if damage == "NaN titles" else t.astype(np.float64))
    elif damage in ("NaN BM25 data", "BM25 ids out of range"):
        name = "data" if damage == "NaN BM25 data" else "indices"
        a = np.load(vdir / "bm25" / "zh" / f"{name}.csc.index.npy")
        if name == "data":
            a[0] = np.nan
        else:
            a[0] = 999
        np.save(vdir / "bm25" / "zh" / f"{name}.csc.index.npy", a)
    elif damage == "unknown section id":
        lines = (vdir / "chunks.jsonl").read_text(encoding="utf-8").splitlines()
        c = json.loads(lines[0])
        c["section"] = "99.9"
        (vdir / "chunks.jsonl").write_text("\n".join([json.dumps(c, ensure_ascii=False), *lines[1:]]) + "\n")
    elif damage == "unknown chapter":
        lines = (vdir / "chunks.jsonl").read_text(encoding="utf-8").splitlines()
        c = json.loads(lines[0])
        c["chapter"] = "ch99"
        (vdir / "chunks.jsonl").write_text("\n".join([json.dumps(c, ensure_ascii=False), *lines[1:]]) + "\n")
    elif damage == "a sentence missing":
        lines = (vdir / "sentences.jsonl").read_text(encoding="utf-8").splitlines()
        (vdir / "sentences.jsonl").write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    elif damage == "section parents not text":
        lines = (vdir / "sections.jsonl").read_text(encoding="utf-8").splitlines()
        rec = json.loads(lines[0])
        rec["parents"] = [1]
        (vdir / "sections.jsonl").write_text("\n".join([json.dumps(rec, ensure_ascii=False), *lines[1:]]) + "\n")
    rehash(vdir)


@pytest.mark.parametrize("damage", ["256-d vectors", "NaN chunk vectors", "NaN titles", "float64 titles", "NaN BM25 data",
                                    "BM25 ids out of range", "unknown section id", "unknown chapter",
                                    "a sentence missing", "section parents not text"])
def test_consistently_edited_arrays_are_refused(built, damage):
    _edit(version_dir(built), damage)
    with pytest.raises(DamagedIndexError, match="inconsistent|damaged"):
        load_index(built)


@pytest.mark.parametrize("edit", [lambda m: m["counts"].pop("sentences"), lambda m: m["counts"].update(chapters="1"),
                                  lambda m: m.update(warnings=[]),
                                  lambda m: m.update(warnings={"table of contents": {"count": 1, "examples": [3]}})])
def test_format_2_counts_and_warnings_are_checked(built, edit):
    vdir = version_dir(built)
    m = json.loads((vdir / "manifest.json").read_text())
    assert set(m["counts"]) == {"chapters", "sections", "chunks", "sentences"} and isinstance(m["warnings"], dict)
    edit(m)
    (vdir / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DamagedIndexError, match="not a valid manifest"):
        load_index(built)


def test_hostile_manifest_paths_are_refused(built):
    vdir = version_dir(built)
    m = json.loads((vdir / "manifest.json").read_text())
    m["files"]["../../etc/passwd"] = "0" * 64
    (vdir / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DamagedIndexError, match="relative path"):
        load_index(built)


# ------------------------------------------------------------------ 10, 11. the server under abuse

def raw_request(url, data: bytes, wait=30.0) -> bytes:
    host, port = url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as s:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk
            if b"\r\n\r\n" in out and b"content-length" in out.lower():
                head, _, body = out.partition(b"\r\n\r\n")
                n = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")][0].split(b":")[1])
                if len(body) >= n:
                    return out


@pytest.mark.parametrize("request_line,status", [
    (b"GET /api/ask HTTP/1.1", 405), (b"POST /api/health HTTP/1.1", 405), (b"GET /api/health/ HTTP/1.1", 404),
    (b"GET /no/such/route HTTP/1.1", 404), (b"GET /api/nope HTTP/1.1", 404)])
def test_wrong_method_and_unknown_routes_are_json_errors(server, request_line, status):
    out = raw_request(server["url"], request_line + b"\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == str(status).encode() and set(json.loads(body)) == {"error"}, out[:300]


def test_host_allow_list(server):
    port = server["url"].rsplit(":", 1)[1]
    for host, ok in [(f"localhost:{port}", True), (f"127.0.0.1:{port}", True), (f"[::1]:{port}", True),
                     ("attacker.example", False), (f"evil.com:{port}", False), ("", False)]:
        out = raw_request(server["url"], f"GET /api/health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        assert (b" 200 " in out.split(b"\r\n")[0]) == ok, (host, out[:200])
        if not ok:
            assert b" 421 " in out.split(b"\r\n")[0] and b'"error"' in out


def test_uploads_are_refused(server):
    body = b"--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"x.txt\"\r\n\r\nhello\r\n--b--\r\n"
    for path in ("/gradio_api/upload", "/gradio_api/upload?upload_id=1", "/upload"):
        req = urllib.request.Request(server["url"] + path, data=body,
                                     headers={"content-type": "multipart/form-data; boundary=b"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=30)
        assert e.value.code == 403 and "uploads are disabled" in json.loads(e.value.read())["error"]


def test_request_body_limit(server):
    status, payload = http(server["url"] + "/api/ask", raw=b'{"question": "' + b"a" * 70_000 + b'"}')
    assert status == 413 and "limit" in payload["error"] and "shorter question" in payload["error"]
    # The page's calls carry the chat: over 1 MB, the error says to start a new chat.
    status, payload = http(server["url"] + "/gradio_api/queue/join", raw=b'{"data": ["' + b"a" * 1_100_000 + b'"]}')
    assert status == 413 and "start a new chat" in payload["error"]
    # Without Content-Length (chunked), the limit holds too.
    chunked = b"".join(b"%x\r\n%s\r\n" % (8192, b"a" * 8192) for _ in range(10)) + b"0\r\n\r\n"
    out = raw_request(server["url"], b"POST /api/ask HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
                      b"Content-Type: application/json\r\nConnection: close\r\n\r\n" + chunked)
    assert b" 413 " in out.split(b"\r\n")[0]
    # A 100 MB body is refused from its Content-Length, before a byte of it is read.
    out = raw_request(server["url"], b"POST /api/ask HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000000\r\n"
                      b"Content-Type: application/json\r\n\r\n", wait=10)
    assert b" 413 " in out.split(b"\r\n")[0]
    assert http(server["url"] + "/api/health")[0] == 200


def test_idle_and_slow_header_connections_are_closed(server):
    from rag.app import HEADER_TIMEOUT

    host, port = server["url"].split("//")[1].split(":")
    idle = socket.create_connection((host, int(port)))
    slow = socket.create_connection((host, int(port)))
    slow.sendall(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
    t0 = time.time()
    for s in (idle, slow):
        s.settimeout(HEADER_TIMEOUT + 20)
        assert s.recv(100) == b""  # closed by the server
    assert time.time() - t0 < HEADER_TIMEOUT + 5


def test_connection_cap_closes_the_excess_and_keeps_serving(server):
    from rag.app import MAX_CONNECTIONS

    host, port = server["url"].split("//")[1].split(":")
    socks = [socket.create_connection((host, int(port))) for _ in range(MAX_CONNECTIONS + 40)]
    time.sleep(1.0)
    closed = 0
    for s in socks:
        s.setblocking(False)
        try:
            closed += s.recv(1) == b""
        except BlockingIOError:
            pass
    assert closed >= 30
    for s in socks:
        s.close()
    time.sleep(0.5)
    assert http(server["url"] + "/api/health")[0] == 200


def test_busy_port_fails_before_ready(server):
    port = server["url"].rsplit(":", 1)[1]
    out = run_cli("serve", "--port", port, "--feedback", str(server["feedback"]))
    assert out.returncode == 2 and b"ready" not in out.stdout
    assert b"error: cannot listen on 127.0.0.1:" + port.encode() + b" (Address already in use)" in out.stderr


def test_question_pool_keeps_short_questions_moving_and_enforces_the_budget():
    from rag.app import Busy, QuestionPool

    pool = QuestionPool(workers=2, budget=1.0)

    async def main():
        slow = [asyncio.create_task(pool.run("x" * 2000, time.sleep, 0.6)) for _ in range(3)]
        t0 = time.perf_counter()
        await pool.run("short", time.sleep, 0.01)
        short_wait = time.perf_counter() - t0
        results = await asyncio.gather(*slow, return_exceptions=True)
        return short_wait, results

    short_wait, results = asyncio.run(main())
    assert short_wait < 0.3  # not behind the long ones
    assert results[0] is None and any(isinstance(r, Busy) for r in results)  # the third is past its budget


def test_build_progress_covers_titles_and_sentences(tmp_path, small_corpus, fake_encoder, capsys):
    build_index(small_corpus, tmp_path / "index", fake_encoder, progress=True)
    err = capsys.readouterr().err
    assert "embedding chunks" in err and "embedding titles" in err and "embedding sentences" in err


def test_host_allow_list_names():
    from rag.app import _host_name, allowed_hosts

    assert allowed_hosts("127.0.0.1") == {"localhost", "127.0.0.1", "::1"}
    assert "myhost.lan" in allowed_hosts("MyHost.lan") and allowed_hosts("0.0.0.0") is None  # any: all interfaces
    assert [_host_name(h) for h in (b"LocalHost:7860", b"[::1]:80", b"::1", b"evil.com")] == \
        ["localhost", "::1", "::1", "evil.com"]


def test_a_build_removes_only_what_dead_builds_left(built, small_corpus, fake_encoder):
    """Names alone prove nothing: a user's .tmp-* folder, .CURRENT-* file or v-<hex> folder stays."""
    from rag.index import _work_dir

    mine = {built / ".tmp-mine" / "notes.md": "我的笔记", built / ".CURRENT-notes": "x",
            built / "v-0123456789abcdef" / "draft.md": "草稿"}
    for path, text in mine.items():
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    dead = _work_dir(built)  # a build that died while writing
    (dead / "chunks.jsonl").write_text("{}\n", encoding="utf-8")
    (built / ".tmp-empty").mkdir()  # a build that died before marking its directory
    (built / ".CURRENT-4242").write_text("v-0\n", encoding="ascii")  # a pointer it never swapped in
    (small_corpus / "animals.zh.md").write_text(SMALL_ZH + "\n## 2.1 新\n\n新内容。\n", encoding="utf-8")
    build_index(small_corpus, built, fake_encoder)
    assert all(path.read_text(encoding="utf-8") == text for path, text in mine.items())
    assert not dead.exists() and not (built / ".tmp-empty").exists() and not (built / ".CURRENT-4242").exists()
    assert load_index(built).vectors.ntotal == 4
    assert not list(version_dir(built).rglob(".rag-build"))
