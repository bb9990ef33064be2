"""Language profiles: everything that differs between Chinese and English questions and answers.

One place for the script patterns, the question-language rule, stop words and function
characters, the words that make a sentence lean on the one before it, the question types and
follow-up markers, and the sentences that frame an answer. The rest of the package asks this
module instead of keeping its own copies.
"""

from __future__ import annotations

import re

LANGS = ("zh", "en")

# ---------------------------------------------------------------- scripts

CJK = "\u3400-\u9fff\uf900-\ufaff"  # Han ideographs (a character class body)
CJK_CHAR = re.compile(f"[{CJK}]")
CJK_RUN = re.compile(f"[{CJK}]+")
KANA_HANGUL = re.compile("[\u3040-\u30ff\u31f0-\u31ff\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")
LATIN_LETTER = re.compile("[A-Za-z]")
# One Han character carries about as much as three Latin letters (an English word averages ~5
# letters, its Chinese rendering ~1.7 characters).
HAN_WEIGHT = 3
_EN_WORD = re.compile(r"[A-Za-z']+")


def script_counts(text: str) -> tuple[int, int, int]:
    """(Han characters, Latin letters, kana and hangul) in text."""
    return len(CJK_CHAR.findall(text)), len(LATIN_LETTER.findall(text)), len(KANA_HANGUL.findall(text))


def question_language(text: str) -> str:
    """'zh' or 'en': the language of the question's frame, else of the majority of its script.

    The frame is told by function words: Chinese function characters (的 是 什 么 吗 ...) against
    English stop words (what, does, is ...), so "What does 负迁移 mean?" is English and
    "什么是 transfer learning" Chinese. On a tie the script with the larger share wins, a Han
    character weighing HAN_WEIGHT Latin letters. Text with kana or hangul and no Latin majority is
    'other' (Japanese or Korean; the corpus has no such text). Text with neither script is 'en'.
    """
    han, latin, other = script_counts(text)
    if other and other + han >= latin:
        return "other"
    zh_frame = sum(ch in FUNCTION_CHARS for ch in text)
    en_frame = sum(w.lower() in STOP_EN for w in _EN_WORD.findall(text))
    if zh_frame != en_frame:
        return "zh" if zh_frame > en_frame else "en"
    return "zh" if HAN_WEIGHT * han > latin else "en"


def detect_language(text: str) -> str:
    """The language to match text against: question_language, with Japanese/Korean as 'zh' if it has Han."""
    lang = question_language(text)
    return lang if lang != "other" else ("zh" if CJK_CHAR.search(text) else "en")


# ---------------------------------------------------------------- words

STOP_ZH = frozenset(
    "的 了 是 在 和 与 及 或 也 就 都 而 又 被 把 对 从 向 为 以 于 之 其 这 那 个 些 有 没有 一个 一种 一些 "
    "什么 哪些 怎么 怎样 如何 为什么 吗 呢 吧 啊 呀 么 我 你 他 她 它 我们 你们 他们 它们 自己 "
    "可以 能 会 要 得 地 着 过 请问 请 说 讲 中 里 上 下 时 时候 所以 因为 但是 但 如果 那么 "
    "这个 那个 这些 那些 这种 还 更 很 非常 一 二 三 多少 几".split()
)
STOP_EN = frozenset(
    "a an the and or but if then than so of to in on at by for from with without into onto about "
    "as is are was were be been being do does did doing have has had having can could should would "
    "will shall may might must it its this that these those there here what which who whom whose "
    "when where why how i me my we our you your he him his she her they them their not no nor "
    "any all some such very also just only more most other own same too s t don chapter book "
    "tell explain describe please say says said".split()
)
# Words that frame an English question as a definition ("Define X."), like "explain" above; they
# say nothing about its subject, so coverage (answer.py) leaves them out. Not stop words: BM25 keeps them.
DEFINITION_FRAME_EN = ("define", "definition")
# Characters that carry no topic: a character pair containing one says nothing about coverage.
FUNCTION_CHARS = frozenset("的了是在和与及或也就都而又被把对从向为以于之其这那个些有吗呢吧啊呀么我你他她它们什怎哪谁几")

# ---------------------------------------------------------------- sentences of the corpus

# A sentence that leans on the one before it: an ordinal, a connective or a pronoun first.
NEEDS_CONTEXT = {
    "zh": re.compile(r"^(?:第[二三四五六七八九十]|其次|再次|另一|此外|所以|因此|这|那|它|其|但|而|然而|不然|同时|例如|比如)"),
    "en": re.compile(r"^(?:Second|Third|Another|Also|So\b|This\b|These\b|That\b|Those\b|It\b|Its\b|They\b|"
                     r"But\b|Therefore\b|Then\b|However\b|Otherwise\b|For example\b|For instance\b|Thus\b)",
                     re.I),
}
SHORT_SENTENCE = {"zh": 12, "en": 30}  # shorter than this (characters) and it cannot stand alone
# A defining sentence: "X是/指/即 ...", "X: ..." or "X means / refers to / is ...".
DEFINING = {
    "zh": re.compile(r"指的是|是指|^[^，。]{1,30}?(?:指|即|是)|\*\*[:：]|[:：]\*\*|^[^，。]{1,40}[:：]"),
    "en": re.compile(r"\b(?:is|are|means|refers to|is defined as|is called)\b|\*\*[:：]|^[^,.]{1,60}:", re.I),
}


_HEAD_END = re.compile(r"[:：,，。.;；]|是|指|\b(?:is|are|means|refers)\b")


def head(text: str) -> str:
    """The start of a sentence up to its first defining word or punctuation: what it is about."""
    m = _HEAD_END.search(text, 1)
    return text[:m.start()] if m else text[:40]


def subject(text: str) -> str:
    """What a sentence is about: its head (see `head`), emphasis and opening brackets aside."""
    return head(text.lstrip("*（( "))


def char_pairs(text: str) -> frozenset[str]:
    """The distinct pairs of adjacent characters of a (Chinese) text: the units of its coverage."""
    return frozenset(map(str.__add__, text, text[1:]))


def is_question_sentence(text: str) -> bool:
    """A sentence that asks (ends in ？ or ?, closing brackets aside)."""
    return text.rstrip(" *)）]”’").endswith(("?", "？"))


def is_lead_in(text: str) -> bool:
    """A sentence that introduces what follows ("...的原因主要有：", "Here are some advantages:")."""
    return text.rstrip(" *").endswith((":", "："))


def is_label(text: str) -> bool:
    """A bare list label or caption ("按迁移情景分类", "Basic definitions"): short and unpunctuated."""
    t = text.strip(" *")
    return len(t) <= 24 and not re.search(r"[，。,.;；:：!?！？()（）$]", t)


# ---------------------------------------------------------------- questions

QUESTION_TYPES = ("definition", "reason", "list", "comparison", "yesno", "bookquestions", "keyword")
_TYPES = {
    "zh": [
        ("bookquestions", re.compile(r"(?:哪些|什么|列出).{0,6}问题.{0,4}(?:没|未|开放|提出|列)|(?:开放|未解决|提出).{0,4}问题")),
        ("comparison", re.compile(r"区别|不同|差别|差异|异同|比较|对比|优缺点|优劣|好坏|关系|联系|还是|和.{1,12}哪个")),
        ("list", re.compile(r"哪些|哪几|有几|几种|几类|分类|种类|类型|分为|例子|举例|列举|都有")),
        ("definition", re.compile(r"什么是|是什么|什麼是|是什麼|指什么|指的是|什么意思|含义|定义|叫什么|是啥")),
        ("reason", re.compile(r"为什么|为何|原因|怎么|如何|怎样|为啥|何时|什么时候|什么情况|办法|方法|作用|用处|意义|好处|坏处|缺点|优点")),
        ("yesno", re.compile(r"(?:吗|么|是否|能否|可否|是不是|能不能|可不可以|有没有)[？?]?$|^(?:是否|能否)")),
    ],
    "en": [
        ("bookquestions", re.compile(r"\b(?:open|unanswered|raised?|lists?)\b.{0,30}\bquestions?\b|\bquestions\b.{0,30}\b(?:raise|list|ask)", re.I)),
        ("comparison", re.compile(r"\b(?:differen\w*|differ|compare\w*|comparison|versus|vs\.?|relate\w*|relationship|"
                                  r"pros and cons|advantages and disadvantages|better|or)\b", re.I)),
        ("list", re.compile(r"\b(?:kinds|types|categories|classes) of\b|^(?:list|name)\b|\bgive (?:an |some )?examples?\b|"
                            r"\bwhat (?:are|kinds|types)\b.{0,30}\b(?:kinds|types|categories|problems|questions|reasons|"
                            r"examples|steps|ways|advantages|disadvantages)\b", re.I)),
        ("definition", re.compile(r"(?:^|\s)(?:what(?:'s| is| are)\b(?! the (?:reason|cause|benefit|point))|define\b|definition\b)|"
                                  r"\bwhat does .+ mean\b|\bmeaning of\b|\bdefinition\b", re.I)),
        ("reason", re.compile(r"\b(?:why|how|reasons?|causes?|when|purpose|benefits?|drawbacks?|advantages?|"
                              r"disadvantages?|avoid|help)\b", re.I)),
        ("yesno", re.compile(r"^(?:is|are|can|could|does|do|did|should|will|would|was|were|has|have)\b", re.I)),
    ],
}


def question_type(question: str, lang: str) -> str:
    """The first matching type of QUESTION_TYPES (in the profile's order), else 'keyword'."""
    for name, pattern in _TYPES["zh" if lang == "zh" else "en"]:
        if pattern.search(question.strip()):
            return name
    return "keyword"


# A follow-up that leans on the previous turn: a pronoun or a "what about" opening.
ANAPHORA = {
    "zh": re.compile(r"^(?:那|那么|而|还有|另外)|它|其|这个|那个|这种|该|呢[？?]?$|^为什么[？?]?$|^怎么办[？?]?$"),
    "en": re.compile(r"^(?:and|what about|how about|and what about|so|then|why\??$)|\b(?:it|its|they|their|them|this|"
                     r"that|these|those|one)\b", re.I),
}


def is_anaphoric(question: str, lang: str) -> bool:
    """Whether the question points back at an earlier turn ("它的缺点呢？", "What about its drawbacks?")."""
    return bool(ANAPHORA["zh" if lang == "zh" else "en"].search(question.strip()))


# ---------------------------------------------------------------- answer frames

# "{scope}" is what the index holds: one chapter, or a book (several chapters); see frames().
SCOPES = {"zh": {"chapter": "本章", "book": "本书"}, "en": {"chapter": "chapter", "book": "book"}}
FRAMES = {
    "zh": {"answer": "{scope}在{sections}中这样回答：", "abstain": "{scope}中没有找到直接回答这个问题的内容。",
           "suggest": "可以看看最接近的章节：", "original": "原文", "suggested": "建议查看", "sources": "来源",
           "list_sep": "；", "sep": "",
           "unsupported": "请用中文或英文提问（{scope}只有中文原文和英文译文）。Please ask in Chinese or English."},
    "en": {"answer": "The {scope} answers this in {sections}:",
           "translated": "The {scope} answers this in {sections} (quoted from the English translation of the "
                         "{scope}, each with its Chinese original):",
           "cross": "The {scope} answers this in {sections} (quoted in the original Chinese; the chapter has "
                    "no English translation):",
           "mixed": "The {scope} answers this in {sections} (quoted from the English translation where the "
                    "chapter has one, else in the original Chinese):",
           "abstain": "Nothing in the {scope} answers this directly.", "suggest": "The closest sections are:",
           "original": "Chinese original", "suggested": "Suggested sections", "sources": "Sources",
           "list_sep": "; ", "sep": " ",
           "unsupported": "Please ask in Chinese or English (the {scope} is in Chinese, with an English "
                          "translation). 请用中文或英文提问。"},
}


def frames(lang: str, chapters: int = 1) -> dict[str, str]:
    """The answer frames in lang for an index of that many chapters: "本章 / The chapter" for one,
    "本书 / The book" for several."""
    scope = SCOPES[lang]["chapter" if chapters <= 1 else "book"]
    return {key: text.replace("{scope}", scope) for key, text in FRAMES[lang].items()}
