"""The real server: started once on a free port, driven over HTTP, with gradio_client and in Chromium."""

import json
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path

import pytest

from conftest import REPO, http
from rag.app import anchor, md_escape, render_answer
from rag.feedback import append_feedback, feedback_record

ARTIFACTS = REPO / "artifacts" / "screenshots"


def test_http_api(server):
    u = server["url"]
    status, hits = http(u + "/api/search?q=" + urllib.parse.quote("什么是负迁移？") + "&k=3&mode=hybrid")
    assert status == 200 and hits[0]["section"] == "10.14" and len(hits) == 3
    status, ans = http(u + "/api/ask", {"question": "What is negative transfer?", "lang": "auto", "k": 5})
    assert status == 200 and ans["language"] == "en" and ans["citations"][0]["section"] == "10.14"
    assert ans["citations"][0]["original"]["lang"] == "zh"
    # a follow-up with the previous turn as history (the /api/ask object, or just its question)
    status, first = http(u + "/api/ask", {"question": "端到端深度学习是什么？"})
    for turn in (first, {"question": "端到端深度学习是什么？"}):
        status, ans = http(u + "/api/ask", {"question": "它的缺点呢？", "history": [turn]})
        assert status == 200 and ans["citations"][0]["section"] == "10.13"
    status, health = http(u + "/api/health")
    assert status == 200 and health["sections"] == 15 and health["encoder"]["id"] == "use-multilingual-v3"
    assert set(health["corpus"]) >= {"ch10_transfer_learning.zh.md", "ch10_transfer_learning.en.md"}
    status, spec = http(u + "/openapi.json")
    assert status == 200 and {"/api/search", "/api/ask", "/api/health"} <= set(spec["paths"])


@pytest.mark.parametrize("path,body,raw,message", [
    ("/api/search?q=", None, None, "empty"),
    ("/api/search?q=%20%20", None, None, "empty"),
    ("/api/search?q=x&k=0", None, None, "k must be"),
    ("/api/search?q=x&k=1000000000", None, None, "k must be"),
    ("/api/search?q=x&k=abc", None, None, "bad request"),
    ("/api/search?q=x&mode=fuzzy", None, None, "unknown mode"),
    ("/api/search", None, None, "bad request"),
    ("/api/ask", {"question": "x" * 5000}, None, "limit is 2000"),
    ("/api/ask", {"question": "hi", "lang": "fr"}, None, "unknown answer language"),
    ("/api/ask", {"question": ""}, None, "empty"),
    ("/api/ask", {"question": 5}, None, "bad request"),
    ("/api/ask", None, b'{"question": "\xff\xfe"}', "parsing the body"),
    ("/api/ask", None, b"not json", "bad request"),
    ("/api/ask", {"question": "a\x00b\x07"}, None, None),
])
def test_http_bad_input_is_a_4xx_json_error(server, path, body, raw, message):
    status, payload = http(server["url"] + path, body, raw)
    if message is None:  # control characters: a sane answer, not an error
        assert status == 200 and "answer" in payload
        return
    assert 400 <= status < 500 and message in payload["error"], payload
    assert http(server["url"] + "/api/health")[0] == 200  # still serving


def test_gradio_client_respond(server):
    from gradio_client import Client

    client = Client(server["url"] + "/", verbose=False)
    history, sources = client.predict("什么是负迁移？", [], 5, "hybrid", "auto", api_name="/respond")
    assert history[0]["role"] == "user" and history[-1]["role"] == "assistant"
    assert "§10\\.14" in history[-1]["content"] and "<mark>" in sources
    history, sources = client.predict("How do I bake bread?", history, 5, "hybrid", "auto", api_name="/respond")
    assert len(history) == 4 and "does not cover" in history[-1]["content"]
    history, _ = client.predict("   ", [], 5, "hybrid", "auto", api_name="/respond")
    assert "empty" in history[-1]["content"]  # a clear message, not an exception


def test_script_in_a_question_is_text(server):
    from gradio_client import Client

    history, _ = Client(server["url"] + "/", verbose=False).predict(
        "<script>alert(1)</script> 什么是负迁移？", [], 5, "hybrid", "auto", api_name="/respond")
    assert "<script>" not in history[0]["content"] and "&lt;script&gt;" in history[0]["content"]


def test_rendering_escapes_html_and_markdown(retriever):
    from rag.answer import answer

    assert md_escape("[x](javascript:alert(1)) <b>") == r"\[x\]\(javascript:alert\(1\)\) &lt;b&gt;"
    md = render_answer(answer("什么是负迁移？", retriever))
    assert f"(#{anchor('ch10/10.14')})" in md and "\\*\\*" not in md.split("\n")[0]
    # distinct anchors for qualified ids, also non-ASCII ones
    assert len({anchor(k) for k in ("ch10/参考文献", "ch10/小结", "ch05/5.1", "ch06/5.1")}) == 4


def test_feedback_log_concurrent_writers_and_eval_format(tmp_path):
    from rag.evaluate import read_questions

    path = tmp_path / "fb" / "feedback.jsonl"

    def writer(n):
        for i in range(50):
            append_feedback(path, feedback_record(f"问题 {n}-{i} " + "长" * 300, "zh", ["10.14"], "up", ["10.14"]))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    code = ("import sys; from pathlib import Path; from rag.feedback import append_feedback, feedback_record\n"
            "for i in range(50): append_feedback(Path(sys.argv[1]), feedback_record('q', 'en', [], 'down', []))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path)], cwd=REPO) for _ in range(3)]
    assert all(p.wait(timeout=60) == 0 for p in procs)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 8 * 50 + 3 * 50
    assert all(json.loads(line)["question"] for line in lines)  # no interleaved or broken line
    qs = read_questions(path)
    assert len(qs) == len(lines) and {q["lang"] for q in qs} == {"zh", "en"}


def _chromium_or_skip():
    reason = None
    if not Path("/usr/bin/chromium").exists():
        reason = "Chromium is not installed (/usr/bin/chromium); run sh tests/install-browser.sh as root"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "playwright is not installed (pip install -e '.[test]')"
    if reason:
        print(f"\nSKIP browser test: {reason}")
        pytest.skip(reason)


def test_browser_end_to_end(server):
    _chromium_or_skip()
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        dialogs = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(server["url"] + "/")
        box = page.locator("#question textarea")
        box.wait_for(timeout=60000)

        def ask(question, wait_text):
            box.fill(question)
            page.click("#ask")
            page.wait_for_function("t => document.querySelector('#chat').innerText.includes(t)", arg=wait_text,
                                   timeout=60000)
            page.wait_for_timeout(300)

        ask("什么是负迁移？", "本章在")
        chat = page.locator("#chat")
        assert "负迁移(Negative Transfer)指的是" in chat.inner_text()
        assert chat.locator(f"a[href='#{anchor('ch10/10.14')}']").count() >= 1  # the clickable citation
        assert page.locator("#sources mark").count() >= 1 and "§10.14" in page.locator("#sources").inner_text()
        page.screenshot(path=str(ARTIFACTS / "answer_zh.png"), full_page=True)

        ask("What is negative transfer?", "English translation")
        assert "Negative transfer means that" in chat.inner_text()
        src = page.locator("#sources").inner_text()
        assert "English translation" in src and "中文原文" in src
        page.screenshot(path=str(ARTIFACTS / "answer_en.png"), full_page=True)

        ask("<script>alert('x')</script><img src=x onerror=alert('y')>", "<script>")
        assert dialogs == [] and "<img src=x onerror=alert('y')>" in chat.inner_text()

        # Feedback: thumbs down on the second answer, then pick the section it should have cited.
        page.locator("#chat button[aria-label='Dislike'], #chat button[title='Dislike']").nth(1).click()
        page.get_by_text("Which section should it have cited?").wait_for(timeout=10000)
        page.locator("#pick input").click()
        page.get_by_role("option", name="§10.14", exact=False).first.click()
        page.click("#pick-send")
        page.get_by_text("Thanks!").wait_for(timeout=10000)
        records = [json.loads(x) for x in server["feedback"].read_text(encoding="utf-8").splitlines()]
        assert records[-1]["feedback"] == "down" and records[-1]["relevant"] == ["ch10/10.14"]
        assert records[-1]["question"] == "What is negative transfer?"
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=str(ARTIFACTS / "phone.png"), full_page=True)
        browser.close()


def test_feedback_buttons_show_a_write_error_instead_of_raising(retriever, tmp_path):
    """👍 and the 👎 picker catch the RagError of an unwritable feedback file and show its message."""
    import gradio as gr

    from rag.app import build_ui

    (tmp_path / "file").write_text("x", encoding="utf-8")
    demo = build_ui(retriever, tmp_path / "file" / "feedback.jsonl")  # its parent is a file: unwritable
    fns = {f.name: f.fn for f in demo.fns.values()}
    log = [{"index": 1, "question": "什么是负迁移？", "lang": "zh", "cited": ["ch10/10.6"]}]
    _, note, _ = fns["on_like"](log, gr.LikeData(target=None, data={"index": 1, "value": "", "liked": True}))
    assert note.startswith("⚠️") and "cannot write feedback" in note
    _, note, kept = fns["on_pick"]("ch10/10.6", [log[0] | {"pending": True}])
    assert note.startswith("⚠️") and "cannot write feedback" in note and kept[0]["pending"]
