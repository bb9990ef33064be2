import pytest

from conftest import REPO, SEED
from rag.corpus import Report, file_language, find_chapters, parse_sections, read_text
from rag.types import RagError

CHAPTER = REPO / "corpus" / "ch10_transfer_learning.zh.md"


def test_bundled_chapter_sections():
    text = read_text(CHAPTER)
    ids = [s.id for s in parse_sections(text, CHAPTER.name)]
    # 10.12 does not exist in the book; the table of contents is not a section; the
    # reference list is its own part.
    assert ids == [f"10.{i}" for i in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15)] + ["Reference"]


def test_sub_block_belongs_to_10_15():
    text = read_text(CHAPTER)
    sec = {s.id: s for s in parse_sections(text, CHAPTER.name)}["10.15"]
    body = text[sec.start:sec.end]
    assert "什么情况下可以使用迁移学习？" in body
    assert "对抗网络是如何进行迁移的？" in body  # the open questions too
    assert "Reference" not in body


@pytest.mark.skipif(not SEED.exists(), reason=f"seed chapter not found at {SEED}")
def test_chapter_is_the_seed_verbatim():
    # Only heading markers were added, leading blank lines dropped and one final newline kept.
    md = CHAPTER.read_text(encoding="utf-8")
    unmarked = "\n".join(line.lstrip("#").lstrip() if line.startswith("#") else line for line in md.split("\n"))
    assert unmarked.strip("\n") == SEED.read_text(encoding="utf-8").strip("\n")


def test_unnumbered_headings_and_sub_blocks():
    from conftest import SMALL_ZH

    secs = parse_sections(SMALL_ZH, "a.md")
    assert [s.id for s in secs] == ["1.1", "1.2", "参考文献"]
    assert "金毛" in SMALL_ZH[secs[1].start:secs[1].end]


def test_file_without_headings_is_one_section():
    report = Report()
    secs = parse_sections("只有一段文字。\n", "notes.md", report)
    assert [(s.id, s.start, s.end) for s in secs] == [("notes", 0, 8)]
    assert "no markdown headings" in report.examples["no headings"][0]


def test_bad_files_get_clear_errors(tmp_path):
    bad = tmp_path / "gbk.md"
    bad.write_bytes("## 1.1 标题\n迁移".encode("gbk"))
    with pytest.raises(RagError, match="not UTF-8.*Re-save it as UTF-8"):
        read_text(bad)
    empty = tmp_path / "empty.md"
    empty.write_text("  \n", encoding="utf-8")
    with pytest.raises(RagError, match="is empty"):
        read_text(empty)
    with pytest.raises(RagError, match="does not exist"):
        find_chapters(tmp_path / "nope")
    (tmp_path / "only.txt").write_text("x")
    sub = tmp_path / "sub"
    sub.mkdir()
    with pytest.raises(RagError, match="no .md files"):
        find_chapters(sub)


def test_file_language():
    assert file_language("ch.en.md", "什么") == "en"
    assert file_language("ch.md", "迁移学习") == "zh"
    assert file_language("ch.md", "transfer learning") == "en"


def test_translation_has_the_same_sections():
    zh_text, en_text = read_text(CHAPTER), read_text(REPO / "corpus" / "ch10_transfer_learning.en.md")
    assert "English translation" in en_text.split("\n# ", 1)[0]  # the header says it is a translation
    zh = [s.id for s in parse_sections(zh_text, "zh")]
    en = [s.id for s in parse_sections(en_text, "en")]
    assert zh == en


def test_a_tab_indented_header_row_belongs_to_the_table_below():
    from rag.corpus import parse_blocks

    text = "## 1.1 区别\n\n\t迁移学习\t传统机器学习\n数据分布\t不需要同分布\t同分布\n建模\t可以重用\t分别建模\n\n\tcode\n\n正文。\n"
    blocks = [(b.kind, text[b.start:b.end]) for b in parse_blocks(text)[1]]
    assert ("paragraph", "迁移学习\t传统机器学习\n数据分布\t不需要同分布\t同分布\n建模\t可以重用\t分别建模") in blocks
    assert ("code", "\tcode") in blocks  # an indented block without cells stays code
    # a header row with a blank line before the rows is not joined to them
    text = "## 1.1 区别\n\n\ta\tb\n\nc\td\n"
    assert [b.kind for b in parse_blocks(text)[1]] == ["heading", "code", "paragraph"]


def test_tab_indented_chinese_prose_is_text_and_indented_code_stays_code():
    from rag.corpus import parse_blocks

    text = "## 2.9 生成与判别\n\n \t生成方法的特点：它学习联合分布。\n\n例如：\n\n    x = f(y)\n    return x\n"
    blocks = [(b.kind, text[b.start:b.end].strip()) for b in parse_blocks(text)[1]]
    assert blocks == [("heading", "## 2.9 生成与判别"), ("paragraph", "生成方法的特点：它学习联合分布。"),
                      ("paragraph", "例如："), ("code", "x = f(y)\n    return x")]
