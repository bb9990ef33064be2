"""A generated corpus of a few thousand chunks for store and candidate tests.

Sections are made of random sentences of the bundled chapter (corpus/, GPL-3.0 like the book it
comes from, see corpus/ and README.md): 12 Chinese and 12 English chapter files of 40 sections
each, titles taken from sentences too, chunked at 200 characters. Deterministic (seeded).
"""

from __future__ import annotations

import random
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_SENT = {"zh": re.compile(r"[^。！？\n]+[。！？]"), "en": re.compile(r"[A-Z][^.!?\n]{20,}[.!?]")}


def _sentences(lang: str) -> list[str]:
    text = (REPO / "corpus" / f"ch10_transfer_learning.{lang}.md").read_text(encoding="utf-8")
    body = "\n".join(line for line in text.splitlines() if not line.startswith(("#", ">", "|", "!", "[")))
    return sorted({s.strip(" -*") for s in _SENT[lang].findall(body) if len(s.strip()) > 8})


def write_corpus(root: Path, files: int = 12, sections: int = 40) -> Path:
    rng = random.Random(0)
    root.mkdir(parents=True, exist_ok=True)
    for lang, prefix in (("zh", "syna"), ("en", "synb")):
        pool = _sentences(lang)
        for f in range(files):
            parts = [f"# {prefix} {f}\n"]
            for s in range(sections):
                title = rng.choice(pool)[:40].rstrip("，,。. ")
                body = "\n\n".join(" ".join(rng.sample(pool, rng.randint(1, 3))) for _ in range(rng.randint(2, 4)))
                parts.append(f"## {f + 1}.{s + 1} {title}\n\n{body}\n")
            (root / f"{prefix}{f:02d}.{lang}.md").write_text("\n".join(parts), encoding="utf-8")
    return root
