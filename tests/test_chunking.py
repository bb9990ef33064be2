from conftest import REPO
from rag.chunking import chunk_sections, split_blocks, split_sentences
from rag.corpus import parse_sections, read_text

CHAPTER = REPO / "corpus" / "ch10_transfer_learning.zh.md"


def _chunks(max_chars=600):
    text = read_text(CHAPTER)
    return text, chunk_sections(text, parse_sections(text, CHAPTER.name), "zh", max_chars=max_chars)


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


def test_split_blocks_and_sentences():
    t = "第一段第一句。第二句！\n\n- 列表一\n- 列表二\n续行\n"
    blocks = [t[s:e] for s, e in split_blocks(t, 0, len(t))]
    assert blocks == ["第一段第一句。第二句！", "- 列表一", "- 列表二\n续行"]
    sents = [t[s:e] for s, e in split_sentences(t, 0, 11)]
    assert sents == ["第一段第一句。", "第二句！"]
    en = "One sentence. Another one? Yes!"
    assert [en[s:e] for s, e in split_sentences(en, 0, len(en))] == ["One sentence.", "Another one?", "Yes!"]


def test_align_sentences_pairs_by_position():
    from rag.chunking import align_sentences

    theirs = [(0, 10), (10, 20), (20, 30)]
    assert align_sentences([(0, 5), (5, 9), (9, 12)], theirs) == theirs  # as many: one to one
    # two of ours over three of theirs (by length): each takes the ones whose middle falls in its share
    assert align_sentences([(0, 50), (50, 100)], theirs) == [(0, 10), (10, 30)]
    assert align_sentences([(0, 10), (10, 20), (20, 30), (30, 40)], [(0, 40)]) == [(0, 40)] * 4
