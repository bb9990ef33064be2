"""The matching view of markdown text (rag/text.py) and the tokens it gives."""

from conftest import REPO
from rag.index import version_dir
from rag.lexical import Tokenizer, load_lexicon
from rag.text import markup_spans, normalize


def test_normalize_makes_markup_readable():
    assert normalize("用$1\\times1$卷积，学习率$\\alpha$") == "用 1×1 卷积，学习率 α"
    assert normalize("&emsp;&emsp;**检测和分类**有<u>明显</u>区别\u200b。![图](img/a.png)<br />") == "检测和分类有 明显 区别。"
    assert normalize("用1\\*1卷积核替换3\\*3卷积") == "用1*1卷积核替换3*3卷积"  # an escape is text, not emphasis
    assert normalize("| 事项 | 特点 |\n| :--- | :--- |\n| 优点 | 快 |") == "事项 特点\n优点 快"
    assert normalize("[链接文字](http://x.y)") == "链接文字"


def test_products_match_however_they_are_written():
    tok = Tokenizer(load_lexicon(version_dir(REPO / "index") / "lexicon.txt"))
    ones = [tok(normalize(s)) for s in ("$1\\times1$卷积", "1x1卷积", "1乘1卷积", "1 x 1卷积", "1\\*1卷积")]
    assert all(t == ones[0] for t in ones) and "1x1" in ones[0]


def test_markup_spans_are_what_a_quote_must_not_contain():
    t = "甲![i](a.png)乙<br />丙\u200b丁"
    assert [t[s:e] for s, e in markup_spans(t, 0, len(t))] == ["![i](a.png)", "<br />", "\u200b"]


def test_display_shows_entities_as_characters_without_zero_width():
    from rag.text import display

    assert display("**Introduction**  \n&emsp;&emsp;很多backbone&lt;b&gt;\u200b。") == \
        "**Introduction**  \n\u2003\u2003很多backbone<b>。"
    assert display("A & B &amp; C &unknownentity; $1\\times1\u200b$") == "A & B & C &unknownentity; $1\\times1$"

