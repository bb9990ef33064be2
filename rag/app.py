"""Gradio chat UI and HTTP API on one local server (`rag serve`).

    /            the chat page (Gradio; its endpoint /respond works from gradio_client)
    /api/search  GET  q, k, mode        -> the `rag search --json` list
    /api/ask     POST {question, lang, k} -> the `rag ask --json` object
    /api/health  GET                     -> index info
    /docs        OpenAPI docs

Everything shown on the page is escaped: questions and corpus text are displayed as text,
never as HTML or markdown.
"""

import hashlib
import html
import json
import os
import re
import time
from pathlib import Path

from .answer import answer, section_title
from .feedback import append_feedback, default_feedback_path, feedback_record
from .lang import detect_language
from .retriever import MODES, Retriever
from .types import Answer, RagError, Section

LANG_CHOICES = [("auto", "auto"), ("中文", "zh"), ("English", "en")]
NOT_ANSWERED = "— (the chapter does not answer this)"
EXAMPLES = ["什么是负迁移？产生负迁移的原因有哪些？", "多任务学习在什么情况下会降低性能？", "端到端深度学习的优缺点",
            "What is negative transfer?", "When does multi-task learning make sense?",
            "What are the challenges of end-to-end deep learning?"]
CSS = """
.gradio-container, .gradio-container * { font-family: "Noto Sans CJK SC", "Noto Sans SC", "PingFang SC",
  "Microsoft YaHei", system-ui, sans-serif; }
.sources section { border-top: 1px solid #ddd; padding: 8px 0; overflow-wrap: anywhere; }
.sources .src-head { font-weight: 600; }
.sources .score, .sources .tag { font-weight: 400; font-size: 0.85em; color: #666; margin-left: 6px; }
.sources .tag { background: #eef; border-radius: 4px; padding: 0 4px; }
.sources .src-body { white-space: pre-wrap; line-height: 1.6; }
.sources mark { background: #ffe58a; }
"""
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>$])")


def md_escape(text: str) -> str:
    """Text that renders as itself in markdown: HTML and markdown syntax are escaped."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False)).replace("\n", "  \n")


def anchor(key: str) -> str:
    """A distinct HTML id for a qualified section id, also for non-ASCII ones (参考文献, 小结)."""
    return "src-" + re.sub(r"[^0-9A-Za-z]+", "-", key) + "-" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:8]


def render_answer(a: Answer) -> str:
    """The chat message for an answer: escaped quotes with clickable section citations."""
    if a.abstained:
        head = "🚫 **本章没有涉及这个问题。**" if a.language == "zh" else "🚫 **The chapter does not cover this.**"
        sugg = "可以看看最接近的章节：" if a.language == "zh" else "The closest sections are:"
        links = " · ".join(f"[§{md_escape(s['section'])} {md_escape(s['title'])}](#{anchor(s['id'])})"
                           for s in a.suggestions)
        return f"{head}\n\n{sugg} {links}" if links else head
    frame, _, _ = a.answer.partition("\n")
    lines = [f"**{md_escape(frame)}**", ""]
    last = None
    for c in a.citations:
        if last is not None and c.id != last.id:
            lines += [_cite_line(last), ""]
        lines.append(f"> {md_escape(c.quote)}")
        if c.original is not None:
            lines.append(f">  \n> *原文：{md_escape(c.original.quote)}*")
        lines.append(">")
        last = c
    lines.append(_cite_line(last))
    return "\n".join(lines)


def _cite_line(c) -> str:
    return f"— [§{md_escape(c.section)} {md_escape(c.title)}](#{anchor(c.id)})"


def _marked(text: str, start: int, spans: list[tuple[int, int]]) -> str:
    """Escaped text[...] with the given absolute spans wrapped in <mark>."""
    out, pos = [], 0
    for s, e in sorted((s - start, e - start) for s, e in spans):
        if s < pos or s < 0 or e > len(text):
            continue
        out += [html.escape(text[pos:s]), "<mark>", html.escape(text[s:e]), "</mark>"]
        pos = e
    out.append(html.escape(text[pos:]))
    return "".join(out)


class SourcePanel:
    """Full section texts from the corpus files, for the sources panel."""

    def __init__(self, r: Retriever):
        self.r = r
        corpus = r.index.corpus_dir
        self.files = {name: (corpus / name).read_text(encoding="utf-8") for name, rec in
                      r.index.manifest["corpus"].items() if rec["lang"] != "glossary" and (corpus / name).is_file()}

    def _block(self, sec: Section, spans, label: str | None, score: float | None, open_: bool = True) -> str:
        text = self.files.get(sec.source)
        if text is None:
            body = "(corpus file not found)"
        else:
            start, end = sec.start, sec.end
            while start < end and text[start] == "\n":
                start += 1
            body = _marked(text[start:end].rstrip("\n"), start, spans)
        tag = f'<span class="tag">{html.escape(label)}</span>' if label else ""
        sc = f'<span class="score">score {score:.3f}</span>' if score is not None else ""
        head = f'§{html.escape(sec.id)} {html.escape(sec.title)}{sc}{tag}'
        return f'<details {"open" if open_ else ""}><summary class="src-head">{head}</summary>' \
               f'<div class="src-body">{body}</div></details>'

    def render(self, a: Answer) -> str:
        scores = {h.id: h.score for h in a.hits}
        if a.abstained:
            parts = [f"<h3>{'建议查看' if a.language == 'zh' else 'Suggested sections'}</h3>"]
            for s in a.suggestions:
                sec = self.r.index.find_section(s["id"], a.language)
                if sec:
                    parts.append(f'<section id="{anchor(s["id"])}">'
                                 f'{self._block(sec, [], None, scores.get(s["id"]), open_=False)}</section>')
            return '<div class="sources">' + "".join(parts) + "</div>"
        parts = [f"<h3>{'来源' if a.language == 'zh' else 'Sources'}</h3>"]
        for key in dict.fromkeys(c.id for c in a.citations):
            cites = [c for c in a.citations if c.id == key]
            lang = cites[0].lang
            sec = self.r.index.find_section(key, lang)
            label = "English translation" if lang == "en" and any(c.original for c in cites) else None
            blocks = [self._block(sec, [(c.start, c.end) for c in cites], label, scores.get(key))]
            originals = [c.original for c in cites if c.original is not None]
            if originals:
                orig = self.r.index.find_section(key, "zh")
                blocks.append(self._block(orig, [(o.start, o.end) for o in originals], "中文原文 (original)", None))
            parts.append(f'<section id="{anchor(key)}">{"".join(blocks)}</section>')
        return '<div class="sources">' + "".join(parts) + "</div>"


def build_ui(r: Retriever, feedback_path: Path):
    """The Gradio Blocks page."""
    import gradio as gr

    panel = SourcePanel(r)
    # (label, qualified id): the feedback records the id, whatever the title looks like.
    section_choices = [(NOT_ANSWERED, NOT_ANSWERED)] + [(f"§{key.split('/', 1)[1]} {section_title(r, key, 'zh')} ({key.split('/', 1)[0]})", key)
                                                        for key in r.section_keys]

    def run(message, history, k, mode, lang):
        history = list(history or [])
        try:
            a = answer(message, r, lang=lang, k=int(k), mode=mode)
        except (RagError, TypeError, ValueError) as e:
            msg = str(e) if isinstance(e, RagError) else f"bad input ({e}). Type a question."
            return history + [{"role": "user", "content": md_escape(str(message or ""))},
                              {"role": "assistant", "content": f"⚠️ {md_escape(msg)}"}], "", None
        return history + [{"role": "user", "content": md_escape(a.question)},
                          {"role": "assistant", "content": render_answer(a)}], panel.render(a), a

    def respond(message: str, history: list[dict] | None = None, k: int = 5, mode: str = "hybrid",
                lang: str = "auto") -> tuple[list[dict], str]:
        """Answer a question: returns the chat history with the answer, and the sources panel (HTML)."""
        history, sources_html, _ = run(message, history, k, mode, lang)
        return history, sources_html

    with gr.Blocks(title="迁移学习 · Transfer learning Q&A") as demo:
        gr.Markdown("## 第十章 迁移学习 · Chapter 10 Transfer learning — Q&A\n"
                    "Ask in Chinese or English. Answers quote the chapter and cite its sections; English "
                    "answers quote an English translation of the chapter, each with its Chinese original. "
                    "问中文或英文皆可，回答引用原文并注明章节。")
        asked = gr.State([])  # per assistant message: question, language, cited sections
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=320):
                chat = gr.Chatbot(label="Chat", height=520, sanitize_html=True, elem_id="chat")
                with gr.Row():
                    box = gr.Textbox(placeholder="什么是负迁移？ / What is negative transfer?", show_label=False,
                                     scale=5, elem_id="question", max_lines=4)
                    send = gr.Button("Ask 提问", variant="primary", scale=1, elem_id="ask")
                gr.Examples(EXAMPLES, inputs=box, label="Examples 示例")
                clear = gr.Button("Clear chat 清空", elem_id="clear")
                with gr.Row(visible=False) as fix_row:
                    pick = gr.Dropdown(section_choices, label="Which section should have been cited? 应引用哪一节？",
                                       scale=4, elem_id="pick")
                    pick_send = gr.Button("Send feedback", scale=1, elem_id="pick-send")
                note = gr.Markdown("")
            with gr.Column(scale=2, min_width=300):
                with gr.Accordion("Settings 设置", open=False):
                    k = gr.Slider(1, 10, value=5, step=1, label="Passages 段落数 (k)")
                    mode = gr.Radio(list(MODES), value="hybrid", label="Retrieval mode 检索方式")
                    lang = gr.Radio(LANG_CHOICES, value="auto", label="Answer language 回答语言")
                sources = gr.HTML("", elem_id="sources")

        def submit(message, history, k_, mode_, lang_, log):
            history, sources_html, a = run(message, history, k_, mode_, lang_)
            if a is not None:  # remembered for feedback on this answer
                log = log + [{"index": len(history) - 1, "question": a.question,
                              "lang": detect_language(a.question),
                              "cited": list(dict.fromkeys(c.id for c in a.citations))}]
            return history, sources_html, "", log

        ev = dict(fn=submit, inputs=[box, chat, k, mode, lang, asked], outputs=[chat, sources, box, asked],
                  api_visibility="private")
        send.click(**ev)
        box.submit(**ev)
        gr.api(respond, api_name="respond")  # for gradio_client: message, history, k, mode, lang
        clear.click(lambda: ([], "", [], gr.update(visible=False), ""), None, [chat, sources, asked, fix_row, note],
                    api_visibility="private")

        def on_like(log, data: gr.LikeData):
            entry = next((e for e in log if e["index"] == data.index), None)
            if entry is None or not entry["question"]:
                return gr.update(visible=False), "", log
            liked = data.liked in (True, "like", "Like")
            if liked:
                try:
                    append_feedback(feedback_path, feedback_record(entry["question"], entry["lang"], entry["cited"],
                                                                   "up", entry["cited"]))
                except RagError as e:
                    return gr.update(visible=False), f"⚠️ {md_escape(str(e))}", log
                return gr.update(visible=False), "Thanks! 谢谢反馈。", log
            return gr.update(visible=True), "Which section should it have cited? 请选择应引用的章节。", \
                [e | {"pending": e["index"] == data.index} for e in log]

        chat.like(on_like, [asked], [fix_row, note, asked], api_visibility="private")

        def on_pick(choice, log):
            entry = next((e for e in log if e.get("pending")), None)
            if entry is None or not choice:
                return gr.update(visible=True), "Pick a section first. 请先选择章节。", log
            relevant = [] if choice == NOT_ANSWERED else [choice]
            try:
                append_feedback(feedback_path, feedback_record(entry["question"], entry["lang"], relevant, "down",
                                                               entry["cited"]))
            except RagError as e:
                return gr.update(visible=True), f"⚠️ {md_escape(str(e))}", log
            return gr.update(visible=False), "Thanks! 谢谢反馈。", [e | {"pending": False} for e in log]

        pick_send.click(on_pick, [pick, asked], [fix_row, note, asked], api_visibility="private")
    return demo


# Limits of the HTTP server (see docs/RELIABILITY.md for how each is tested).
API_BODY_LIMIT = 64 * 1024  # bytes of a request body to /api/*
PAGE_BODY_LIMIT = 1024 * 1024  # the page's own calls carry the chat history
DRAIN_LIMIT = 4 * 1024 * 1024  # a refused body up to this size is read and dropped before the 413
HEADER_TIMEOUT = 10.0  # seconds to send a request's headers (idle and slow clients are closed)
KEEP_ALIVE = 5  # seconds an idle keep-alive connection stays open
MAX_CONNECTIONS = 256  # open connections; more are closed at once
MAX_REQUESTS = 200  # requests in progress; more get 503
TIME_BUDGET = 20.0  # seconds a question may wait for its turn and run; then 503, try again
LONG_QUESTION = 300  # characters; longer questions take turns in their own worker
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
API_METHODS = {"/api/ask": ("POST",), "/api/search": ("GET", "HEAD"), "/api/health": ("GET", "HEAD")}


class QuestionPool:
    """Runs retrievals in bounded worker threads, so one long question cannot stall the others.

    Short questions run on `workers` threads; long ones take turns on a single thread of their
    own. A job that waited or ran past its time budget is answered 503 (and skipped if it had
    not started yet).
    """

    def __init__(self, workers: int = 2, budget: float = TIME_BUDGET):
        from concurrent.futures import ThreadPoolExecutor

        self.short = ThreadPoolExecutor(workers, thread_name_prefix="rag-short")
        self.long = ThreadPoolExecutor(1, thread_name_prefix="rag-long")
        self.budget = budget

    async def run(self, question, fn, *args, **kwargs):
        import asyncio

        deadline = time.monotonic() + self.budget

        def job():
            if time.monotonic() > deadline:
                raise TimeoutError
            return fn(*args, **kwargs)

        pool = self.long if isinstance(question, str) and len(question) > LONG_QUESTION else self.short
        future = asyncio.get_running_loop().run_in_executor(pool, job)
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.budget)
        except (TimeoutError, asyncio.TimeoutError):
            raise Busy() from None


class Busy(Exception):
    """The server could not answer within the time budget."""


def allowed_hosts(host: str) -> frozenset[str] | None:
    """The Host header names served: the local names, plus the --host name; None (any) for a wildcard bind."""
    if host in ("0.0.0.0", "::", ""):
        return None
    return frozenset({*LOCAL_HOSTS, host.lower().strip("[]")})


def _host_name(value: bytes) -> str:
    text = value.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[1:text.find("]")] if "]" in text else text
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


class Guard:
    """ASGI middleware in front of everything: Host allow-list, no uploads, body limits, JSON 404/405.

    Bodies are read (up to the limit) before the app sees the request, so an oversized body
    is refused with 413 without being kept.
    """

    def __init__(self, app, hosts: frozenset[str] | None = frozenset(LOCAL_HOSTS)):
        self.app, self.hosts = app, hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        headers = dict(scope["headers"])
        if self.hosts is not None and _host_name(headers.get(b"host", b"")) not in self.hosts:
            return await _json(send, 421, "this server answers only to the host names "
                               f"{', '.join(sorted(self.hosts))}. Use http://localhost:PORT, or start it with "
                               "rag serve --host NAME.")
        allowed = API_METHODS.get(path)
        if allowed and scope["method"] not in allowed:
            return await _json(send, 405, f"{path} takes {' or '.join(allowed[:1])}, not {scope['method']}; see /docs.",
                               [(b"allow", ", ".join(allowed).encode())])
        if "/upload" in path:
            return await _json(send, 403, "uploads are disabled: this app takes questions only.")
        limit = API_BODY_LIMIT if path.startswith("/api/") else PAGE_BODY_LIMIT
        try:
            declared = int(headers.get(b"content-length", b"0"))
        except ValueError:
            return await _json(send, 400, "bad Content-Length header.")
        if declared > limit:
            if declared <= DRAIN_LIMIT:  # read and drop it, so the client gets to read the answer
                await _drain(receive)
            return await _json(send, 413, f"the request body is {declared} bytes; the limit is {limit}. "
                               "Send a shorter question.")
        body, more = [], True
        size = 0
        while more and scope["method"] not in ("GET", "HEAD"):
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body.append(message.get("body", b""))
            size += len(body[-1])
            more = message.get("more_body", False)
            if size > limit:
                if more:
                    await _drain(receive, DRAIN_LIMIT - size)
                return await _json(send, 413, f"the request body is over the limit of {limit} bytes. "
                                   "Send a shorter question.")
        data = b"".join(body)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": data, "more_body": False}
            return await receive()

        state = {}

        async def send_json_errors(message):
            # Starlette and Gradio answer an unknown route or method with {"detail": ...}; ours is {"error": ...}.
            if message["type"] == "http.response.start" and message["status"] in (404, 405):
                state["start"], state["chunks"] = message, []
                return
            if "start" in state and message["type"] == "http.response.body":
                state["chunks"].append(message.get("body", b""))
                if message.get("more_body"):
                    return
                start, raw = state.pop("start"), b"".join(state.pop("chunks"))
                try:
                    detail = json.loads(raw)
                    detail = detail.get("detail", detail.get("error")) if isinstance(detail, dict) else None
                except ValueError:
                    detail = None
                if detail is None:
                    detail = raw.decode("utf-8", "replace").strip()
                status = start["status"]
                if not detail or detail in ("Not Found", "Method Not Allowed"):
                    detail = ("no such page or API route; the API is /api/search, /api/ask and /api/health "
                              "(see /docs)") if status == 404 else \
                        f"method {scope['method']} is not allowed here; see /docs for each route's method"
                extra = [(k, v) for k, v in start.get("headers", []) if k.lower() == b"allow"]
                return await _json(send, status, str(detail), extra)
            await send(message)

        await self.app(scope, replay, send_json_errors)


async def _drain(receive, budget: int = 0) -> None:
    """Read and discard the rest of a refused body, up to DRAIN_LIMIT bytes (then the connection closes)."""
    budget = budget or DRAIN_LIMIT
    while budget > 0:
        message = await receive()
        if message["type"] != "http.request":
            return
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _json(send, status: int, error: str, headers=()) -> None:
    body = json.dumps({"error": error}, ensure_ascii=False).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


def build_api(r: Retriever, pool: QuestionPool | None = None):
    """The FastAPI app with the /api routes and clear 4xx errors; questions run on the pool."""
    from fastapi import FastAPI, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel
    from starlette.exceptions import HTTPException as StarletteHTTPException

    app = FastAPI(title="ch10-rag", description="Bilingual extractive Q&A over the transfer-learning chapter.",
                  version=r.index.manifest.get("package_version", ""))
    pool = pool or QuestionPool()

    class Turn(BaseModel):
        question: str
        citations: list[dict] = []  # as returned by /api/ask (only "id", else "section", is read)

    class AskBody(BaseModel):
        question: str
        lang: str = "auto"
        k: int = 5
        history: list[Turn] = []  # the previous turns, oldest first

    @app.exception_handler(RagError)
    async def rag_error(request: Request, exc: RagError):
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 400 and "parsing the body" in detail:
            detail += ": send a UTF-8 JSON object like {\"question\": \"什么是负迁移？\"}"
        return JSONResponse({"error": detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors())
        return JSONResponse({"error": f"bad request ({problems}). /api/ask takes a JSON body like "
                                      '{"question": "什么是负迁移？", "lang": "auto", "k": 5}; /api/search takes '
                                      "q, k and mode; see /docs."}, status_code=400)

    @app.exception_handler(Busy)
    async def busy(request: Request, exc: Busy):
        return JSONResponse({"error": f"the server is busy: no answer within {pool.budget:.0f} s. Try again "
                                      "in a moment."}, status_code=503, headers={"retry-after": "5"})

    @app.get("/api/search", summary="Retrieve the best sections (the `rag search --json` list)")
    async def search(q: str = Query(..., description="the question"), k: int = 5, mode: str = "hybrid"):
        hits = await pool.run(q, r.search, q, k=k, mode=mode)
        return [h.to_dict() for h in hits]

    @app.post("/api/ask", summary="Answer with cited quotes (the `rag ask --json` object)")
    async def ask(body: AskBody):
        history = [t.model_dump() for t in body.history]
        a = await pool.run(body.question, answer, body.question, r, lang=body.lang, k=body.k, history=history)
        return a.to_dict()

    @app.get("/api/health", summary="Index information")
    def health():
        m = r.index.manifest
        return {"status": "ok", "sections": m["counts"]["sections"], "chunks": m["counts"]["chunks"],
                "encoder": m["encoder"], "index_type": m["index_type"], "format_version": m["format_version"],
                "corpus": {name: rec["sha256"] for name, rec in m["corpus"].items()}}

    return app


def create_app(r: Retriever, feedback_path: Path | None = None, hosts: frozenset[str] | None = frozenset(LOCAL_HOSTS)):
    """One ASGI app: the HTTP API and the Gradio page, behind the Guard middleware."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    demo = build_ui(r, Path(feedback_path or default_feedback_path()))
    return Guard(gr.mount_gradio_app(build_api(r), demo, path="/", css=CSS, footer_links=["api"]), hosts)


def _protocol():
    """uvicorn's h11 protocol with a header timeout and a cap on open connections."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class Guarded(H11Protocol):
        _timer = None

        def connection_made(self, transport):
            super().connection_made(transport)
            if len(self.connections) > MAX_CONNECTIONS:
                transport.close()  # too many open: refuse rather than run out of file descriptors
                return
            self._arm()

        def _arm(self):
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self.loop.call_later(HEADER_TIMEOUT, self._header_timeout, self.cycle)

        def _header_timeout(self, cycle):
            # No new request began since the timer was armed: an idle or too slow client.
            if self.cycle is cycle and (cycle is None or cycle.response_complete) and not self.transport.is_closing():
                self.transport.close()

        def on_response_complete(self):
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc):
            if self._timer is not None:
                self._timer.cancel()
            super().connection_lost(exc)

    return Guarded


def bind(host: str, port: int):
    """A listening socket on host:port, or RagError if it is taken (checked before anything is loaded)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise RagError(f"--host {host!r} is not an address of this machine ({e.strerror}). "
                       "Use 127.0.0.1 (this machine only) or 0.0.0.0 (all interfaces).") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise RagError(f"cannot listen on {host}:{port} ({e.strerror}). Another program (or another rag "
                       "serve) may be using the port: pick another with --port.") from None
    sock.set_inheritable(True)
    return sock


def serve(index_dir: Path, corpus_dir: Path, host: str = "127.0.0.1", port: int = 7860,
          feedback_path: Path | None = None) -> None:
    """Load (building or rebuilding if needed) the index, then serve until interrupted."""
    from .feedback import check_feedback_path
    from .retriever import load_fresh

    t0 = time.perf_counter()
    fb = Path(feedback_path or default_feedback_path())
    check_feedback_path(fb)
    sock = bind(host, port)  # fail on a busy port now, not after "ready"
    r = load_fresh(index_dir, corpus_dir)
    answer("什么是迁移学习？", r)  # warm up the encoder and the sentence statistics
    import uvicorn

    app = create_app(r, fb, allowed_hosts(host))
    config = uvicorn.Config(app, log_level="warning", http=_protocol(), timeout_keep_alive=KEEP_ALIVE,
                            limit_concurrency=MAX_REQUESTS, h11_max_incomplete_event_size=16 * 1024)
    print(f"ready in {time.perf_counter() - t0:.1f} s: http://{host}:{port}  "
          f"(API: /api/search, /api/ask, /api/health; docs: /docs; feedback: {fb})", flush=True)
    uvicorn.Server(config).run(sockets=[sock])
