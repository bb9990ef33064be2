from conftest import REPO
from rag.chunking import block_sentences, chunk_sections, split_sentences
from rag.corpus import parse_blocks, parse_sections, read_text
from rag.text import display

CHAPTER = REPO / "corpus" / "ch10_transfer_learning.zh.md"


def _chunks(max_chars=600):
    text = read_text(CHAPTER)
    return text, chunk_sections(text, parse_sections(text, CHAPTER.name), parse_blocks(text)[1], "zh",
                                max_chars=max_chars)


def test_every_chunk_is_an_exact_slice_of_its_file():
    text, chunks = _chunks()
    for c in chunks:
        assert text[c.start:c.end] == c.text
        assert c.text == c.text.strip()


def test_long_section_is_split_and_short_ones_are_whole():
    text, chunks = _chunks()
    by_section = {}
    for c in chunks:
        by_section.setdefault(c.section, []).append(c)
    assert len(by_section["10.8"]) >= 3  # ~2,000 characters
    assert all(c.title == "多任务学习有什么意义？" for c in by_section["10.8"])
    assert len(by_section["10.14"]) == 1
    assert all(len(c.text) <= 600 for c in chunks)


def test_chunks_cover_every_sentence_of_their_section():
    text, chunks = _chunks(max_chars=200)
    sections = parse_sections(text, CHAPTER.name)
    for sec in sections:
        body = "".join(text[sec.start:sec.end].split())
        covered = "".join("".join(c.text.split()) for c in chunks if c.section == sec.id)
        assert covered == body


def test_blocks_and_sentences():
    t = "第一段第一句。第二句！\n\n- 列表一\n- 列表二\n续行\n"
    blocks = parse_blocks(t)[1]
    assert [(b.kind, t[b.start:b.end]) for b in blocks] == [
        ("paragraph", "第一段第一句。第二句！"), ("item", "- 列表一"), ("item", "- 列表二\n续行")]
    assert [t[s:e] for s, e in block_sentences(t, blocks[0])] == ["第一段第一句。", "第二句！"]
    assert [t[s:e] for s, e in block_sentences(t, blocks[2])] == ["列表二\n续行"]  # the marker is not quoted
    en = "One sentence. Another one? Yes!"
    assert [en[s:e] for s, e in split_sentences(en, 0, len(en))] == ["One sentence.", "Another one?", "Yes!"]


def test_sentence_never_ends_inside_math_or_contains_markup():
    t = "Use $a. b$ here. A picture ![x](img/a.png) then text.<br/>Next&emsp;one.\u200bLast.\n"
    spans = block_sentences(t, parse_blocks(t)[1][0])
    assert [t[s:e] for s, e in spans] == ["Use $a. b$ here.", "A picture", "then text.", "Next&emsp;one.", "Last."]


def test_sentence_does_not_end_inside_bold():
    t = "**Rule one. Rule two.** Then more.\n"
    spans = block_sentences(t, parse_blocks(t)[1][0])
    assert [t[s:e] for s, e in spans] == ["**Rule one. Rule two.**", "Then more."]


def test_zero_width_space_inside_math_is_part_of_the_math():
    t = "$1\\times1\u200b$卷积的作用主要为以下两点：\n"
    spans = block_sentences(t, parse_blocks(t)[1][0])
    assert [t[s:e] for s, e in spans] == ["$1\\times1\u200b$卷积的作用主要为以下两点："]
    # the book's ch05 §5.8: the quote kept neither the math nor the sentence whole
    t = "其中的MLP子网络恰恰可以用$1\\times1\u200b$的卷积进行代替。下一句\u200b在外面。\n"
    spans = block_sentences(t, parse_blocks(t)[1][0])
    assert [t[s:e] for s, e in spans] == ["其中的MLP子网络恰恰可以用$1\\times1\u200b$的卷积进行代替。", "下一句", "在外面。"]
    assert display(t[spans[0][0]:spans[0][1]]) == "其中的MLP子网络恰恰可以用$1\\times1$的卷积进行代替。"
    # an image link inside math still leaves the math out whole (a quote never holds an image)
    t = "甲$x![i](a.png)$乙。\n"
    assert [t[s:e] for s, e in block_sentences(t, parse_blocks(t)[1][0])] == ["甲", "乙。"]


def test_a_figure_caption_line_is_left_out_of_sentences_but_kept_in_chunks():
    # as the book's ch08 writes it: an image, a blank line, then the figure's number glued to the text
    t = ("## 1.1 锚点\n\n![](img/a.png)\n\n图8.1.19\nFaster R-CNN使用更多的锚点。它部署9个锚点框。\n\n"
         "Figure 4.9 GoogLeNet network structure\nAs shown in Figure 4.9, it is wide.\n\n"
         "表2-2是混淆矩阵，做以下说明：\n图1显示了结构。\n\n表5.2 卷积提取的特征类型\n\n| 卷积层次 | 特征类型 |\n| :-: | :-: |\n| 浅层卷积 | 边缘特征 |\n")
    blocks = parse_blocks(t)[1]
    quotes = [t[s:e] for b in blocks for s, e in block_sentences(t, b) if b.kind != "heading"]
    assert quotes == ["Faster R-CNN使用更多的锚点。", "它部署9个锚点框。", "As shown in Figure 4.9, it is wide.",
                      "表2-2是混淆矩阵，做以下说明：\n图1显示了结构。",  # lines with punctuation are text
                      "表5.2 卷积提取的特征类型", "卷积层次 | 特征类型", "浅层卷积 | 边缘特征"]  # a table's caption stays (answers quote tables)
    sections = parse_sections(t, "zh/ch01_x.md")
    assert "图8.1.19" in chunk_sections(t, sections, blocks, "zh")[0].text
