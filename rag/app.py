"""Gradio chat UI and HTTP API on one local server (`rag serve`).

    /            the chat page (Gradio; its endpoint /respond works from gradio_client)
    /api/search  GET  q, k, mode, chapters (repeatable)        -> the `rag search --json` list
    /api/ask     POST {question, lang, k, mode, chapters}       -> the `rag ask --json` object
    /api/health  GET                     -> index info
    /docs        OpenAPI docs

Questions are shown as text. Answers and sources render the corpus's markdown (emphasis, tables,
math with KaTeX) but never raw HTML: corpus text is HTML-escaped, and Gradio sanitises the rest.
Chat, per-answer sources and ratings live in the browser (gr.BrowserState): a reload keeps them. The
page sends them with every question, so they are kept to the last 100 turns and CHAT_BUDGET bytes.
"""

import hashlib
import html
import json
import os
import re
import secrets
import time
from pathlib import Path

from .answer import answer, answer_frames, section_title
from .corpus import read_text
from .feedback import append_feedback, default_feedback_path, message_feedback_record
from .lang import FRAMES, detect_language
from .retriever import MODES, Retriever
from .text import display, shown_quote
from .types import Answer, RagError, Section

LANG_CHOICES = [("auto", "auto"), ("中文", "zh"), ("English", "en")]
# 👎 asks what was wrong; nothing is preselected and nothing is written until the user says.
REASON_CHOICES = [("It should cite a different section 应引用另一节", "different_section"),
                  ("The book does not cover this 书中没有涉及", "not_covered"),
                  ("Wrong answer language 回答语言不对", "wrong_language"),
                  ("Something else 其他（请说明）", "other")]
EXAMPLES = ["什么是负迁移？产生负迁移的原因有哪些？", "多任务学习在什么情况下会降低性能？", "端到端深度学习的优缺点",
            "What is negative transfer?", "When does multi-task learning make sense?",
            "What are the challenges of end-to-end deep learning?"]
# The book writes math as $...$ and $$...$$ (\( \) would also catch escaped parentheses in questions).
LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]
# The chat lives in the browser and goes with every question (the page's calls are limited to 1 MB), so it
# is kept to at most MAX_MESSAGES messages and CHAT_BUDGET bytes of JSON; the oldest turns go first and
# the chat then opens with a note saying how many. Follow-ups need only the previous turn.
MAX_MESSAGES = 200
CHAT_BUDGET = 512 * 1024
HISTORY_TURNS = 1  # previous turns passed to answer(): it resolves a follow-up against the last one
DROPPED_NOTE = ("*{n} earlier question(s) and answer(s) are no longer shown: the chat keeps the most recent "
                "ones. Follow-up questions still use the previous answer. 较早的 {n} 轮问答已不再显示（对话只保留最近的内容）。*")
CSS = """
.gradio-container, .gradio-container * { font-family: "Noto Sans CJK SC", "Noto Sans SC", "PingFang SC",
  "Microsoft YaHei", system-ui, sans-serif; }
.gradio-container .katex, .gradio-container .katex * { font-family: KaTeX_Main, "Times New Roman", serif; }
.hidden-ctl { display: none !important; }
#sources .src { border-top: 1px solid var(--border-color-primary); padding: 6px 0; overflow-wrap: anywhere; }
#sources summary { font-weight: 600; cursor: pointer; }
#sources .score, #sources .tag, #sources .score-help { font-weight: 400; font-size: 0.85em; margin-left: 6px;
  color: var(--body-text-color) !important; }
#sources .tag { border: 1px solid var(--border-color-primary); border-radius: 4px; padding: 0 4px; }
#sources .src.flash { outline: 2px solid var(--color-accent); outline-offset: 2px; border-radius: 4px; }
#sources table { font-size: 0.9em; }
#sources mark, #chat mark { background: #ffe58a !important; color: #1a1a1a !important; padding: 0 1px; }
"""
# (Gradio's sanitiser keeps classes but drops ids and data- attributes: anchors are classes.)
# Clicks on a citation (in any message) show that message's sources, opened, scrolled to and
# highlighted; Copy on a message copies its text as read, with citations as "§5.3".
HEAD = """<script>
(() => {
  const showMessage = (mid) => {
    const box = document.querySelector('#show-msg textarea, #show-msg input');
    if (!box) return;
    box.value = mid;
    box.dispatchEvent(new Event('input', {bubbles: true}));
    setTimeout(() => document.querySelector('#show-msg-btn').click(), 50);
  };
  const reveal = (anchor, tries) => {
    const el = document.querySelector(`#sources .${anchor}`);
    if (!el) { if (tries > 0) setTimeout(() => reveal(anchor, tries - 1), 100); return; }
    el.querySelectorAll('details').forEach(d => { d.open = true; });
    document.querySelectorAll('#sources .flash').forEach(e => e.classList.remove('flash'));
    el.classList.add('flash');
    el.scrollIntoView({block: 'start'});
  };
  const cleanText = (node) => {
    const copy = node.cloneNode(true);
    copy.querySelectorAll('.katex').forEach(k => {
      const tex = k.querySelector('annotation');
      k.replaceWith(tex ? `$${tex.textContent}$` : k.textContent);
    });
    copy.style.cssText = 'position:fixed;left:-9999px;top:0;white-space:normal';
    document.body.appendChild(copy);
    const text = copy.innerText.replace(/\\n{3,}/g, '\\n\\n').trim();
    copy.remove();
    return text;
  };
  document.addEventListener('click', (ev) => {
    const t = ev.target;
    if (!(t instanceof Element)) return;
    const link = t.closest('a[href^="#src-"]');
    if (link) {
      ev.preventDefault(); ev.stopPropagation();
      const anchor = link.getAttribute('href').slice(1);
      const mid = anchor.split('-')[1];
      if (!document.querySelector(`#sources .msg-${mid}`)) showMessage(mid);
      reveal(anchor, 60);
      return;
    }
    if (t.closest('#sources a[href="#chat"]')) {  // on a phone the sources are far below the chat
      ev.preventDefault(); ev.stopPropagation();
      document.querySelector('#chat').scrollIntoView({block: 'start'});
      return;
    }
    const copyButton = t.closest('#chat button[aria-label="Copy message"], #chat button[title="Copy message"]');
    if (copyButton) {
      let row = copyButton.closest('.message-buttons');  // the buttons follow their message's row
      while (row && !row.classList.contains('message-row')) row = row.previousElementSibling;
      const body = row && row.querySelector('.message-content');
      if (!body) return;
      ev.preventDefault(); ev.stopPropagation();
      navigator.clipboard.writeText(cleanText(body));
    }
  }, true);
})();
</script>"""
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>$])")
_BLOCK_MARKER = re.compile(r"[ \t]*(?:[-*+][ \t]+|\d+[.)][ \t]+|#{1,6}[ \t]+|>[ \t]?|\|[ \t]*)*")


def md_escape(text: str) -> str:
    """Text that renders as itself in markdown: HTML and markdown syntax are escaped."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False)).replace("\n", "  \n")


def safe_md(text: str) -> str:
    """Corpus markdown for display: rendered as markdown (math, emphasis, tables), never as raw HTML;
    HTML entities show as their characters (`&emsp;` a space, not the text "&emsp;")."""
    return html.escape(display(text), quote=False)


def anchor(mid: str, key: str) -> str:
    """The sources-panel anchor of a section (qualified id) for one message (unique for any id, also non-ASCII)."""
    slug = re.sub(r"[^0-9A-Za-z]+", "-", key.split("/", 1)[-1]).strip("-")
    return f"src-{mid}-{slug}-{hashlib.sha1(key.encode('utf-8')).hexdigest()[:6]}"


def _marked_md(text: str, start: int, spans) -> str:
    """text (at offset start) as safe markdown with the spans wrapped in <mark>, line by line and
    after any list/heading/quote/table marker, so the marks never break the markdown structure."""
    cuts = []
    for s, e in spans:
        s, e = max(s - start, 0), min(e - start, len(text))
        pos = s
        while pos < e:
            line_end = text.find("\n", pos, e)
            line_end = e if line_end < 0 else line_end
            line_start = text.rfind("\n", 0, pos) + 1
            a = pos
            if not text[line_start:pos].strip():  # the span starts the line: skip the line's markers
                a = _BLOCK_MARKER.match(text, line_start, line_end).end()
                a = max(a, pos)
            piece = text[a:line_end]
            if text[line_start:line_start + 1] == "|" or text[line_start:a].strip().startswith("|"):
                for m in re.finditer(r"[^|]+", piece):  # a table row: mark cell by cell
                    if m.group().strip():
                        lead = len(m.group()) - len(m.group().lstrip())
                        cuts.append((a + m.start() + lead, a + m.start() + len(m.group().rstrip())))
            elif piece.strip():
                cuts.append((a, a + len(piece.rstrip())))
            pos = line_end + 1
    out, pos = [], 0
    for a, b in sorted(set(cuts)):
        if a < pos:
            continue
        out += [safe_md(text[pos:a]), "<mark>", safe_md(text[a:b]), "</mark>"]
        pos = b
    out.append(safe_md(text[pos:]))
    return "".join(out)


def answer_meta(a: Answer, mid: str, index_hash: str) -> dict:
    """What the chat keeps about one answer: enough to show its sources and to record a rating."""
    cited = list(dict.fromkeys(c.id for c in a.citations))
    return {"message_id": mid, "question": a.question, "lang": detect_language(a.question), "language": a.language,
            "answer": a.answer, "abstained": a.abstained, "cited": [] if a.abstained else cited,
            "citations": [c.to_dict() for c in a.citations], "suggestions": [dict(x) for x in a.suggestions],
            "hits": [{k: v for k, v in h.to_dict().items() if k != "text"} for h in a.hits], "index": index_hash}


class SourcePanel:
    """Renders a chat message's sources (top-k retrieved sections, cited ones highlighted) and its text."""

    def __init__(self, r: Retriever):
        self.r = r
        corpus = r.index.corpus_dir
        self.files = {}
        for name, rec in r.index.manifest["corpus"].items():
            if rec["lang"] not in ("glossary", "toc") and (corpus / name).is_file():
                try:
                    self.files[name] = read_text(corpus / name)
                except RagError:
                    pass  # shown as "(corpus file not readable)"
        self.multi = len(r.chapters) > 1
        m = r.index.manifest
        self.index_hash = hashlib.sha256(json.dumps(
            [m["encoder"]["id"], m["format_version"], sorted((k, v["sha256"]) for k, v in m["corpus"].items())]
        ).encode()).hexdigest()[:16]

    def chapter_title(self, chapter: str, lang: str) -> str:
        return self.r.index.chapter_title(chapter, lang)

    def label(self, key: str, title: str, lang: str) -> str:
        """'§5.3 title', with the chapter first when the index has several ('第五章 卷积神经网络（CNN） §5.3 title')."""
        chapter, _, section = key.partition("/")
        head = f"{self.chapter_title(chapter, lang)} " if self.multi else ""
        return f"{head}§{section} {title}".strip()

    def section_choices(self) -> list[tuple[str, str]]:
        """(label, qualified id) of every section, for the 👎 picker."""
        return [(self.label(key, section_title(self.r, key, "zh"), "zh"), key) for key in self.r.section_keys]

    def chapter_choices(self) -> list[tuple[str, str]]:
        return [(f"{cid} {self.chapter_title(cid, 'zh')}", cid) for cid in self.r.chapters]

    def examples(self) -> list[str]:
        """Example questions for the index served: the bundled chapter's, else section titles."""
        if self.r.chapters == ["ch10"] and "迁移学习" in self.chapter_title("ch10", "zh"):
            return EXAMPLES
        seen, out = set(), []
        for key in self.r.section_keys:  # the first numbered section of each chapter, as titled in Chinese
            ch, _, sid = key.partition("/")
            title = section_title(self.r, key, "zh")
            if ch not in seen and re.match(r"\d", sid) and len(title) >= 4:
                seen.add(ch)
                out.append(re.sub(r"[（(][^）)]*[）)]\s*$", "", title).strip())
        return out[:6]

    def render_message(self, a: Answer, mid: str) -> str:
        """The chat message for an answer: quotes rendered as (safe) markdown with clickable citations."""
        lang = a.language
        if a.abstained:
            if not a.suggestions:  # e.g. a question in another language: the answer says what to do
                return f"**{html.escape(a.answer)}**"
            f = answer_frames(self.r, lang)
            links = " · ".join(self._link(mid, s["id"], s["title"], lang) for s in a.suggestions)
            return f"**{html.escape(f['abstain'])}**\n\n{html.escape(f['suggest'])} {links}"
        frame, _, _ = a.answer.partition("\n")
        lines = [f"**{html.escape(frame)}**", ""]
        last = None
        for c in a.citations:
            if last is not None and c.id != last.id:
                lines += [self._cite_line(mid, last, lang), ""]
            lines.append(_quote(c.quote))
            if c.original is not None:
                label = FRAMES[lang]["original"] + ("：" if lang == "zh" else ":")
                lines += [">", _quote(c.original.quote, label=f"*{label}* ")]
            lines.append(">")
            last = c
        lines.append(self._cite_line(mid, last, lang))
        return "\n".join(lines)

    def _cite_line(self, mid: str, c, lang: str) -> str:
        return "— " + self._link(mid, c.id, c.title, lang)

    def _link(self, mid: str, key: str, title: str, lang: str) -> str:
        return f"[{md_escape(self.label(key, title, lang))}](#{anchor(mid, key)})"

    def _block(self, sec: Section | None, spans, tags: list[str], score: float | None, open_: bool) -> str:
        text = self.files.get(sec.source) if sec else None
        if text is None:
            body = "(corpus file not readable)"
        else:
            start, end = sec.start, sec.end
            while start < end and text[start] in "\r\n":
                start += 1
            body = _marked_md(text[start:end].rstrip("\r\n"), start, spans)
        head = html.escape(self.label(sec.key, sec.title, self.r.index.lang_of(sec.source))) if sec else "?"
        sc = f'<span class="score">score {score:.2f}</span>' if score is not None else ""
        tag = "".join(f'<span class="tag">{html.escape(t)}</span>' for t in tags)
        return (f'<details{" open" if open_ else ""}>\n<summary>{head}{sc}{tag}</summary>\n\n{body}\n\n</details>\n')

    def render_sources(self, m: dict) -> str:
        """The sources of one message (an answer_meta dict) as safe markdown with HTML blocks."""
        zh = m["language"] == "zh"
        mid = m["message_id"]
        cites: dict[str, list[dict]] = {}
        for c in m["citations"]:
            cites.setdefault(c["id"], []).append(c)
        help_ = ("score：该节与问题的匹配程度（0–1，综合语义相似度、共同词语和节标题）；越高越相关。"
                 "回答引用的句子以高亮显示。" if zh else
                 "score: how well each retrieved section matches the question, from 0 to 1 (meaning "
                 "similarity, shared words and the section title); higher is closer. Quoted sentences are "
                 "highlighted.")
        parts = [f'<div class="msg-sources msg-{mid}">\n',
                 f"#### {FRAMES[m['language']]['sources']}: {md_escape(m['question'])}\n",
                 f"[↑ {'回到对话' if zh else 'Back to the chat'}](#chat)\n",
                 f'<p class="score-help">{html.escape(help_)}</p>\n']
        for h in m["hits"]:
            key = h["id"]
            cs = cites.get(key, [])
            lang = cs[0]["lang"] if cs else m["language"]
            sec = self.r.index.find_section(key, lang)
            tags = [("引用" if zh else "cited")] if cs else []
            originals = [c["original"] for c in cs if c.get("original")]
            if originals:
                tags.append("English translation")
            blocks = [self._block(sec, [(c["start"], c["end"]) for c in cs], tags, h["score"], bool(cs))]
            if originals:
                orig = self.r.index.find_section(key, "zh")
                blocks.append(self._block(orig, [(o["start"], o["end"]) for o in originals],
                                          ["中文原文 (original)"], None, True))
            parts.append(f'<div class="src {anchor(mid, key)}">\n\n{"".join(blocks)}\n</div>\n')
        if not m["hits"]:
            parts.append("（没有找到相关章节）" if zh else "(no matching section)")
        parts.append("\n</div>")
        return "\n".join(parts)


def _quote(text: str, label: str = "") -> str:
    """A quote as a markdown blockquote, shown as answers show it (text.shown_quote), escaped."""
    lines = [html.escape(line, quote=False) for line in shown_quote(text).split("\n")]
    return "\n".join(f"> {label if n == 0 else ''}{line}" for n, line in enumerate(lines))


def previous_turns(store: dict) -> list[dict]:
    """The conversation so far, oldest first, as answer(history=...) takes it (the last few turns)."""
    turns = [{"question": m["question"], "answer": m["answer"], "citations": m["citations"], "relevant": m["cited"]}
             for m in store.get("meta", {}).values()]
    return turns[-HISTORY_TURNS:]


def chat_bytes(store: dict) -> int:
    """The size of the chat as the page sends it with a question (JSON, UTF-8)."""
    return len(json.dumps(store, ensure_ascii=False).encode("utf-8"))


def trimmed(chat: list[dict], meta: dict, dropped: int = 0) -> dict:
    """The store for chat and meta: the oldest turns (question + answer) dropped while there are more than
    MAX_MESSAGES messages or CHAT_BUDGET bytes (never the newest turn); `dropped` counts them."""
    def store():
        live = set(re.findall(r"#src-(m[0-9a-f]+)-", json.dumps(chat, ensure_ascii=False)))
        return {"chat": chat, "meta": {k: v for k, v in meta.items() if k in live}, "dropped": dropped}

    st = store()
    while len(chat) > 2 and (len(chat) > MAX_MESSAGES or chat_bytes(st) > CHAT_BUDGET):
        chat, dropped = chat[2:], dropped + 1
        st = store()
    return st


def shown(store: dict) -> list[dict]:
    """The chat as the page shows it: opened by a note when older turns were dropped."""
    n = store.get("dropped", 0)
    return ([{"role": "assistant", "content": DROPPED_NOTE.format(n=n)}] if n else []) + list(store.get("chat", []))


def ask_in_chat(panel: SourcePanel, message, store: dict, k=5, mode="hybrid", lang="auto", chapters=None):
    """One question in a chat: the new store (chat messages, per-message data, how many of the oldest turns
    were dropped) and the new message's id (None for an error message). The previous turn goes to answer(),
    so follow-ups follow it."""
    chat, meta, dropped = list(store.get("chat", [])), dict(store.get("meta", {})), store.get("dropped", 0)
    try:
        a = answer(message, panel.r, lang=lang, k=int(k), mode=mode, chapters=list(chapters) if chapters else None,
                   history=previous_turns(store))
    except (RagError, TypeError, ValueError) as e:
        msg = str(e) if isinstance(e, RagError) else f"bad input ({e}). Type a question."
        chat += [{"role": "user", "content": md_escape(str(message or ""))},
                 {"role": "assistant", "content": f"**error:** {md_escape(msg)}"}]
        return trimmed(chat, meta, dropped), None
    mid = "m" + secrets.token_hex(6)
    meta[mid] = answer_meta(a, mid, panel.index_hash)
    chat += [{"role": "user", "content": md_escape(a.question)},
             {"role": "assistant", "content": panel.render_message(a, mid)}]
    return trimmed(chat, meta, dropped), mid


def build_ui(r: Retriever, feedback_path: Path):
    """The Gradio Blocks page."""
    import gradio as gr

    panel = SourcePanel(r)

    def respond(message: str, history: list[dict] | None = None, k: int = 5, mode: str = "hybrid",
                lang: str = "auto") -> tuple[list[dict], str]:
        """Answer a question: returns the chat history with the answer, and the answer's sources (markdown)."""
        history = list(history or [])
        first = history[0] if history and isinstance(history[0], dict) else {}
        note = re.fullmatch(r"\*(\d+) earlier question.*", str(first.get("content", "")))
        store = {"chat": history[1:], "dropped": int(note.group(1))} if note else {"chat": history}
        store, mid = ask_in_chat(panel, message, store, k, mode, lang)
        return shown(store), panel.render_sources(store["meta"][mid]) if mid else ""

    title = (f"## {panel.chapter_title(r.chapters[0], 'zh')} — 问答 Q&A" if not panel.multi else
             f"## 问答 Q&A — {len(r.chapters)} 章 chapters")
    with gr.Blocks(title="Q&A 问答") as demo:
        gr.Markdown(title + "\n\nAsk in Chinese or English. Answers quote the book and cite its sections; click a "
                    "citation to read the section. 问中文或英文皆可，回答引用原文并注明章节，点击引用可查看原文。")
        # Encrypted with a per-process secret unless RAG_STATE_SECRET is set (replicas must share one).
        store = gr.BrowserState({"chat": [], "meta": {}, "dropped": 0}, storage_key="rag-chat",
                                secret=os.environ.get("RAG_STATE_SECRET") or None)
        pending = gr.State(None)  # the message whose 👎 waits for a reason
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=320):
                chat = gr.Chatbot(label="Chat 对话", height=560, sanitize_html=True, elem_id="chat",
                                  latex_delimiters=LATEX, autoscroll=False, buttons=["copy"])
                with gr.Row(equal_height=True):
                    box = gr.Textbox(placeholder="什么是负迁移？ / What is negative transfer?", show_label=False,
                                     scale=4, elem_id="question", max_lines=4)
                    lang = gr.Radio(LANG_CHOICES, value="auto", label="Answer language 回答语言", scale=3,
                                    elem_id="lang", min_width=270)
                    send = gr.Button("Ask 提问", variant="primary", scale=1, elem_id="ask", min_width=80)
                chapters = gr.Dropdown(panel.chapter_choices(), value=[], multiselect=True, elem_id="chapters",
                                       label="Only these chapters 只搜索这些章（空 = 全部）", visible=panel.multi)
                gr.Examples(panel.examples(), inputs=box, label="Examples 示例")
                new_chat = gr.Button("New chat 新对话", elem_id="new-chat", size="sm")
                with gr.Column(visible=False, elem_id="why", variant="panel") as why_box:
                    reason = gr.Radio(REASON_CHOICES, value=None, elem_id="reason",
                                      label="What was wrong with this answer? 这个回答哪里不对？")
                    pick = gr.Dropdown(panel.section_choices(), value=None, elem_id="pick", allow_custom_value=False,
                                       label="Which section answers it? 哪一节回答了这个问题？")
                    comment = gr.Textbox(label="Comment (optional; needed for 'something else') 说明", max_lines=3,
                                         elem_id="comment")
                    with gr.Row():
                        why_send = gr.Button("Send feedback 提交", variant="primary", elem_id="why-send")
                        why_cancel = gr.Button("Cancel 取消", elem_id="why-cancel")
                note = gr.Markdown("", elem_id="note")
            with gr.Column(scale=2, min_width=300):
                with gr.Accordion("Retrieval settings 检索设置", open=False):
                    k = gr.Slider(1, 10, value=5, step=1, label="Sections retrieved 检索节数 (k)")
                    mode = gr.Radio(list(MODES), value="hybrid", label="Retrieval mode 检索方式")
                sources = gr.Markdown("", elem_id="sources", latex_delimiters=LATEX, sanitize_html=True)
                show_id = gr.Textbox(elem_id="show-msg", elem_classes=["hidden-ctl"], show_label=False)
                show_btn = gr.Button("show", elem_id="show-msg-btn", elem_classes=["hidden-ctl"])

        def submit(message, st, k_, mode_, lang_, chapters_):
            st, mid = ask_in_chat(panel, message, st or {}, k_, mode_, lang_, chapters_)
            return shown(st), panel.render_sources(st["meta"][mid]) if mid else "", "", st

        ev = dict(fn=submit, inputs=[box, store, k, mode, lang, chapters], outputs=[chat, sources, box, store],
                  api_visibility="private")
        # A new answer is shown from its question down (a long one does not hide its opening lines).
        scroll_js = """() => { const wrap = document.querySelector('#chat .bubble-wrap');
            const rows = wrap ? wrap.querySelectorAll('.user-row') : [];
            if (rows.length) wrap.scrollTop += rows[rows.length - 1].getBoundingClientRect().top
                                               - wrap.getBoundingClientRect().top - 8; }"""
        send.click(**ev).then(None, js=scroll_js)
        box.submit(**ev).then(None, js=scroll_js)
        gr.api(respond, api_name="respond")  # for gradio_client: message, history, k, mode, lang

        def show(mid, st):
            m = (st or {}).get("meta", {}).get(mid)
            return panel.render_sources(m) if m else gr.update()

        show_btn.click(show, [show_id, store], [sources], api_visibility="private")

        def restore(st):
            st = st or {}
            meta = st.get("meta", {})
            if not st.get("chat"):  # nothing to restore: leave alone a question asked meanwhile
                return gr.update(), gr.update()
            return shown(st), panel.render_sources(list(meta.values())[-1]) if meta else ""

        demo.load(restore, [store], [chat, sources], api_visibility="private")

        def clear():  # the one clear behaviour: the "new chat" button and the chat's trash icon
            return [], "", {"chat": [], "meta": {}, "dropped": 0}, None, gr.update(visible=False), ""

        for trigger in (new_chat.click, chat.clear):
            trigger(clear, None, [chat, sources, store, pending, why_box, note], api_visibility="private")

        def rated_message(st, data) -> dict | None:
            """The rated message's record, found by the message id in its citation links."""
            found = re.search(r"#src-(m[0-9a-f]+)-", json.dumps(data.value, ensure_ascii=False))
            return (st or {}).get("meta", {}).get(found.group(1)) if found else None

        def save(record: dict, done: str) -> str:
            """Append a rating; the note says whether it was saved (a full disk is not a crash)."""
            try:
                append_feedback(feedback_path, record)
            except (OSError, RagError) as e:
                return f"**error:** could not save the feedback to {md_escape(str(feedback_path))} ({md_escape(str(e))})."
            return done

        def on_like(st, data: gr.LikeData):
            m = rated_message(st, data)
            if m is None:
                return None, gr.update(visible=False), "Only answers can be rated. 只能评价回答。"
            if data.liked is True:
                return None, gr.update(visible=False), save(message_feedback_record(m, "up"), "Thanks! 谢谢反馈。")
            if data.liked is False:
                return m["message_id"], gr.update(visible=True), "What was wrong? Choose below; nothing is " \
                                                                  "recorded until you send. 请选择原因后提交。"
            return None, gr.update(visible=False), save(message_feedback_record(m, "withdrawn"),
                                                        "Rating withdrawn. 已撤回评价。")

        chat.like(on_like, [store], [pending, why_box, note], api_visibility="private").then(
            lambda: (None, None, ""), None, [reason, pick, comment], api_visibility="private")

        def on_why(mid, reason_, pick_, comment_, st):
            m = (st or {}).get("meta", {}).get(mid) if mid else None
            keep = (mid, gr.update(visible=True))
            if m is None:
                return None, gr.update(visible=False), "That answer is no longer in the chat. 该回答已不在对话中。"
            if not reason_:
                return *keep, "Choose what was wrong first. 请先选择原因。"
            if reason_ == "different_section" and not pick_:
                return *keep, "Choose the section that answers it. 请选择回答该问题的章节。"
            if reason_ == "other" and not (comment_ or "").strip():
                return *keep, "Say what was wrong in the comment. 请在说明中写明原因。"
            record = message_feedback_record(m, "down", reason_, [pick_] if reason_ == "different_section" else None,
                                             (comment_ or "").strip())
            return None, gr.update(visible=False), save(record, "Thanks! 谢谢反馈。")

        why_send.click(on_why, [pending, reason, pick, comment, store], [pending, why_box, note],
                       api_visibility="private")
        why_cancel.click(lambda: (None, gr.update(visible=False), "Nothing recorded. 未记录。"), None,
                         [pending, why_box, note], api_visibility="private")
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
            return await _json(send, 405, f"{scope['method']} is not allowed on {path}; use {allowed[0]}. See /docs.",
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
                               + _too_big_advice(path))
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
                                   + _too_big_advice(path))
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
                    detail = (f"not found: {path}. The API has GET /api/search, POST /api/ask and GET "
                              "/api/health; the chat page is at /. See /docs.") if status == 404 else \
                        f"method {scope['method']} is not allowed here; see /docs for each route's method"
                extra = [(k, v) for k, v in start.get("headers", []) if k.lower() == b"allow"]
                return await _json(send, status, str(detail), extra)
            await send(message)

        await self.app(scope, replay, send_json_errors)


def _too_big_advice(path: str) -> str:
    """What to do about a body over the limit, by route."""
    if path == "/api/ask":
        return ("Send a shorter question, and as history only the previous turn or two: a follow-up is resolved "
                "against the last turn alone, and a turn needs only its question and citations "
                '(e.g. {"question": "...", "history": [{"question": "...", "citations": [{"id": "ch10/10.14"}]}]}).')
    if path.startswith("/api/"):
        return "Send a shorter question."
    return "The chat sent with this question is too long: start a new chat with the 'New chat' button."


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

    app = FastAPI(title="ch10-rag", description="Bilingual extractive Q&A over the indexed chapters.",
                  version=r.index.manifest.get("package_version", ""))
    pool = pool or QuestionPool()

    class Turn(BaseModel):
        question: str
        citations: list[dict] = []  # as returned by /api/ask (only "id", else "section", is read)

    class AskBody(BaseModel):
        question: str
        lang: str = "auto"
        k: int = 5
        mode: str = "hybrid"
        chapters: list[str] | None = None
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
    async def search(q: str = Query(..., description="the question"), k: int = 5, mode: str = "hybrid",
                     chapters: list[str] | None = Query(None, description="limit to these chapters, e.g. ch05")):
        hits = await pool.run(q, r.search, q, k=k, mode=mode, chapters=chapters)
        return [h.to_dict() for h in hits]

    @app.post("/api/ask", summary="Answer with cited quotes (the `rag ask --json` object)")
    async def ask(body: AskBody):
        history = [t.model_dump() for t in body.history]
        a = await pool.run(body.question, answer, body.question, r, lang=body.lang, k=body.k, mode=body.mode,
                           chapters=body.chapters, history=history)
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
    return Guard(gr.mount_gradio_app(build_api(r), demo, path="/", css=CSS, head=HEAD, footer_links=["api"]), hosts)


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


def check_port(host: str, port: int) -> None:
    """RagError now if host:port cannot be listened on (e.g. taken), before anything is loaded.

    The port is bound and released; the server binds it again when it starts. (Handing this
    socket to uvicorn instead made the chat page's events unreliable: the browser test lost
    updates in most runs.)
    """
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise RagError(f"--host {host!r} is not an address of this machine ({e.strerror}). "
                       "Use 127.0.0.1 (this machine only) or 0.0.0.0 (all interfaces).") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
            sock.listen(1)
        except OSError as e:
            raise RagError(f"cannot listen on {host}:{port} ({e.strerror}). Another program (or another rag "
                           "serve) may be using the port: pick another with --port.") from None


def serve(index_dir: Path, corpus_dir: Path, host: str = "127.0.0.1", port: int = 7860,
          feedback_path: Path | None = None) -> None:
    """Load (building or rebuilding if needed) the index, then serve until interrupted."""
    from .feedback import check_feedback_path
    from .retriever import load_fresh

    t0 = time.perf_counter()
    fb = Path(feedback_path or default_feedback_path())
    check_feedback_path(fb)
    check_port(host, port)  # fail on a busy port now, not after loading
    r = load_fresh(index_dir, corpus_dir)
    answer("什么是迁移学习？", r)  # warm up the encoder and the sentence statistics
    import uvicorn

    app = create_app(r, fb, allowed_hosts(host))
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", http=_protocol(),
                            timeout_keep_alive=KEEP_ALIVE, limit_concurrency=MAX_REQUESTS,
                            h11_max_incomplete_event_size=16 * 1024)
    print(f"ready in {time.perf_counter() - t0:.1f} s: http://{host}:{port}  "
          f"(API: /api/search, /api/ask, /api/health; docs: /docs; feedback: {fb})", flush=True)
    uvicorn.Server(config).run()
