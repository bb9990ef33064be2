"""Properties of the text layer (load -> sections -> chunks -> sentences) on arbitrary input.

For any unicode text (surrogates, control characters, BOM, CR/LF/CRLF line endings, markdown
fragments): nothing but RagError is raised, every span is exact, no non-blank text is lost, and
every pass is linear in the size of its input.
"""

import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag.chunking import chunk_sections, sentence_spans
from rag.corpus import Report, parse_blocks, parse_sections, read_text
from rag.text import display, markup_spans, normalize
from rag.types import RagError

PIECES = ["\r\n", "\r", "\n", "\n\n", "\ufeff", "\u200b", "# ", "## 1.1 ", "### 1.1.1 ", "#### 1.1 ", "## 1.1 ",
          "## Summary\n", "## 参考文献\n", "```\n", "~~~", "    ", "\t", "| a | b |\n|---|---|\n", "|", "$", "$$",
          "\\times", "![i](img/a.png)", "<br />", "<center>", "&emsp;", "&amp;", "- ", "* ", "1. ", "> ", "[x](y)",
          "`", "**", "_", "。", "！", "？", "；", "!", "?", ".", " ", "=\n", "---\n", "\x00", "\x0b", "\x1c", "\u2028",
          "\ud800", "\udfff", "迁移学习", "word"]
TEXTS = st.lists(st.one_of(st.sampled_from(PIECES), st.text(st.characters(blacklist_categories=()), max_size=4)),
                 max_size=60).map("".join)


def pipeline(text: str, source: str = "zh/ch01_x.md"):
    report = Report()
    parsed = parse_blocks(text)
    sections = parse_sections(text, source, report, parsed=parsed)
    blocks = parsed[1]
    chunks = chunk_sections(text, sections, blocks, "zh")
    sentences = [sp for s in sections for sp in sentence_spans(text, s, blocks)]
    return report, sections, blocks, chunks, sentences


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXTS)
def test_text_layer_keeps_every_span_and_all_text(text):
    try:
        report, sections, blocks, chunks, sentences = pipeline(text)
    except RagError:
        return
    for c in chunks:
        assert text[c.start:c.end] == c.text and c.text.strip()
    for a, z, _, _ in sentences:
        assert 0 <= a < z <= len(text)
        quote = text[a:z]
        assert quote == quote.strip() and "\u200b" not in display(quote) and "\ufeff" not in display(quote)
        # no image link, HTML tag, or zero-width character outside math, code, links and bold
        assert not markup_spans(text, a, z)
    # No non-blank text is lost: each non-blank character of a text block inside a section is in
    # a chunk, and a block outside every section is a reported preamble or table of contents.
    covered = np.zeros(len(text) + 1, dtype=bool)
    for c in chunks:
        covered[c.start:c.end] = True
    in_section = np.zeros(len(text) + 1, dtype=bool)
    for s in sections:
        in_section[s.start:s.end] = True
    skipped = {"text before first heading", "table of contents", "only headings"} & set(report.counts)
    for b in blocks:
        if b.kind == "heading" or not normalize(text[b.start:b.end]):
            continue  # a heading, or markup only (an entity, a tag, an image link)
        chars = [i for i in range(b.start, b.end) if not text[i].isspace() and text[i] not in "\u200b\ufeff"]
        if not chars:
            continue
        if in_section[chars[0]]:
            lost = "".join(text[i] for i in chars if not covered[i])  # only markup may be left out
            assert not normalize(lost).strip(" &;#"), (text[b.start:b.end], b, lost)
        else:
            assert skipped, (text[b.start:b.end], b)


@settings(max_examples=200, deadline=None)
@given(TEXTS)
def test_reading_any_bytes_gives_text_or_a_clear_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("c") / "ch01_x.md"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        assert read_text(path) == text  # exactly as stored: BOM, CR and CRLF kept
    except RagError as e:
        assert "UTF-8" in str(e) or "empty" in str(e)


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_line_endings_and_bom_lose_nothing(newline):
    lines = ["# 第一章", "", "## 1.1 甲", "", "甲的正文。", "", "## 1.2 乙", "", "乙的正文。第二句。", ""]
    text = "\ufeff" + newline.join(lines)
    report, sections, blocks, chunks, sentences = pipeline(text)
    assert [(s.id, s.title) for s in sections] == [("1.1", "甲"), ("1.2", "乙")]
    assert [text[a:z] for a, z, _, _ in sentences] == ["甲的正文。", "乙的正文。", "第二句。"]
    assert not report.counts


def test_first_heading_after_a_bom_is_a_heading():
    text = "\ufeff## 1.1 标题\n正文。\n"
    assert [s.id for s in pipeline(text)[1]] == ["1.1"]


def test_same_unnumbered_headings_do_not_merge():
    text = "# 第一章\n\n## Summary\n\n甲。\n\n## 1.1 节\n\n乙。\n\n## Summary\n\n丙。\n"
    report, sections, *_ = pipeline(text)
    assert [s.id for s in sections] == ["Summary", "1.1", "Summary~2"]
    assert report.counts["reused heading"] == 1


def _seconds(text: str) -> float:
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        pipeline(text)
        normalize(text)
        best = min(best, time.perf_counter() - t)
    return best


@pytest.mark.parametrize("unit", ["!", " ", "# " + " " * 50 + "x\n", "$", "*", "[", "<", "&", "。", "a.", "|", "\u200b",
                                  "- a\n", "> ", "`", "![x](", "\r"])
def test_every_text_pass_is_linear(unit):
    n = max(1, 12_000 // len(unit))
    small, big = "## 1.1 标题\n" + unit * n, "## 1.1 标题\n" + unit * (2 * n)
    a, b = _seconds(small), _seconds(big)
    assert b < 3.5 * a + 0.05, f"{unit!r}: {a:.3f}s for {len(small)} chars, {b:.3f}s for twice as many"


def test_sixty_kb_of_exclamation_marks_is_fast():
    t = time.perf_counter()
    pipeline("## 1.1 标题\n" + "!" * 60_000)
    assert time.perf_counter() - t < 2.0
