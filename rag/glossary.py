"""A bilingual glossary of the chapter's terms (corpus/glossary.tsv): Chinese <TAB> English|variants."""

from __future__ import annotations

import re
from pathlib import Path

from .types import RagError

GLOSSARY_FILE = "glossary.tsv"


def read_glossary(path: Path) -> list[tuple[str, list[str]]]:
    """(Chinese term, English variants) pairs; an absent file is an empty glossary."""
    if not path.is_file():
        return []
    pairs = []
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as e:
        raise RagError(f"cannot read the glossary {path} ({e.strerror or e}). Fix its permissions, or remove it.") \
            from None
    except UnicodeDecodeError as e:
        raise RagError(f"the glossary {path} is not UTF-8 text (bad byte at offset {e.start}). Re-save it as "
                       "UTF-8.") from None
    for n, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise RagError(f"{path}:{n}: expected 'Chinese<TAB>English|variants', got {line!r}.")
        pairs.append((parts[0].strip(), [v.strip() for v in parts[1].split("|") if v.strip()]))
    return pairs


def translations(question: str, glossary: list[tuple[str, list[str]]]) -> list[str]:
    """The other-language terms of the glossary terms found in a question (longest terms first).

    An English term is found as whole words (a plural -s/-es too): "ip" is not in "tip".
    """
    q = question.lower()
    out = []
    for zh, en in sorted(glossary, key=lambda p: -len(p[0])):
        if zh in question:
            out.append(en[0])
        for variant in en:
            v = variant.lower()
            if v in q and re.search(rf"(?<![a-z0-9]){re.escape(v)}(?:e?s)?(?![a-z0-9])", q):
                out.append(zh)
                break
    return out

