"""Frozen dataclasses that flow through the pipeline: Section -> Chunk -> Hit -> Citation -> Answer."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


class RagError(ValueError):
    """A problem the user can fix; the message says how."""


class IndexMissingError(RagError):
    """The index directory does not exist or is not an index."""


class StaleIndexError(RagError):
    """The index was built from another corpus, encoder or format version."""


class DamagedIndexError(RagError):
    """An index file is truncated, edited or missing."""


def section_key(chapter: str, section: str) -> str:
    """The one name of a section everywhere: its chapter-qualified id, e.g. "ch05/5.3"."""
    return f"{chapter}/{section}"


def sections_named(sid: str, keys) -> list[str]:
    """The section keys an id from outside (a question set, a previous turn) names: itself when it
    is one of `keys`, else every key whose bare id it is ("10.3" -> ["ch10/10.3"]). Ids are
    resolved with this once, where they come in; inside, sections are compared by key."""
    keys = list(keys)
    return [sid] if sid in keys else [k for k in keys if k.split("/", 1)[1] == sid]


@dataclass(frozen=True)
class Block:
    """A leaf block of a markdown file: paragraph, item, quote, heading, row, code, html or math."""

    kind: str
    start: int
    end: int


@dataclass(frozen=True)
class Section:
    """A numbered part of a chapter file; `start`/`end` delimit its body in the file.

    `id` is the bare id (`5.3`, `13.5~2`, `Reference`), `key` the chapter-qualified one
    (`ch05/5.3`); `kind` is "text", "references" or "checklist" (the last two are searchable
    but not quoted in answers); `parents` are the titles of enclosing headings that have no text.
    """

    id: str
    title: str
    source: str
    start: int
    end: int
    chapter: str = ""
    kind: str = "text"
    parents: tuple[str, ...] = ()
    title_en: str = ""  # the reviewed English title (a corpus's toc.en.tsv), if any

    @property
    def key(self) -> str:
        return section_key(self.chapter, self.id)


@dataclass(frozen=True)
class Chunk:
    """A bounded piece of one section; `text == file_text[start:end]`."""

    id: int
    section: str
    title: str
    source: str
    start: int
    end: int
    text: str
    lang: str
    chapter: str = ""

    @property
    def key(self) -> str:
        return section_key(self.chapter, self.section)


@dataclass(frozen=True)
class Hit:
    """One section returned by a search, represented by its best chunk."""

    section: str
    title: str
    text: str
    score: float
    source: str
    start: int
    end: int
    lang: str = "zh"
    chunk: int = -1
    chapter: str = ""
    id: str = ""  # the qualified section id, e.g. "ch10/10.3"
    title_en: str = ""  # the section's English title, when the corpus has one
    also_in: tuple[str, ...] = ()  # qualified ids of near-duplicate sections (same content elsewhere)

    def to_dict(self) -> dict:
        """JSON-ready fields; `title_en` only when there is one."""
        d = asdict(self)
        d["also_in"] = list(self.also_in)
        if not self.title_en:
            del d["title_en"]
        return d


@dataclass(frozen=True)
class Citation:
    """A verbatim quote: `file_text[start:end] == quote`."""

    section: str
    title: str
    quote: str
    source: str
    start: int
    end: int
    lang: str
    original: Citation | None = None
    chapter: str = ""
    id: str = ""  # the qualified section id
    title_en: str = ""  # the section's English title, when the corpus has one

    def to_dict(self) -> dict:
        """JSON-ready fields; `original` only for a translated quote, `title_en` only when there is one."""
        d = {k: v for k, v in asdict(self).items() if k != "original" and (k != "title_en" or v)}
        if self.original is not None:
            d["original"] = self.original.to_dict()
        return d


@dataclass(frozen=True)
class Answer:
    """An extractive answer: a framed set of quotes, or an abstention with suggestions."""

    question: str
    language: str
    answer: str
    abstained: bool
    citations: tuple[Citation, ...] = ()
    suggestions: tuple[dict, ...] = field(default_factory=tuple)
    hits: tuple[Hit, ...] = field(default=(), repr=False)  # the retrieval behind it (not in to_dict)

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "language": self.language,
            "answer": self.answer,
            "abstained": self.abstained,
            "citations": [c.to_dict() for c in self.citations],
            "suggestions": [dict(s) for s in self.suggestions],
        }
