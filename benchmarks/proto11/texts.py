"""The text lists every component embeds (one place, so embed.py and eval use the same order)."""
from __future__ import annotations

import data

ALL = data.book_sections() + data.proj_sections()
TOC = data.toc()
TITLES = [s.title for s in ALL]
# English title of a section: the TOC's for book zh sections, the en file's own for en sections
EN_TITLES = [TOC.get((s.source, s.line)) if s.lang == "zh" else s.title for s in ALL]
HEADS = [f"{s.title}\n{s.body[:200]}" for s in ALL]
CHUNKS, CHUNK_SEC = [], []
for i, s in enumerate(ALL):
    for c in data.chunks(s.body):
        CHUNKS.append(c)
        CHUNK_SEC.append(i)
BQ = data.book_questions()
PQ = data.proj_questions()
QUESTIONS = [q["question"] for q in BQ + PQ]
EN_IDX = [i for i, t in enumerate(EN_TITLES) if t]
EN_TEXTS = [EN_TITLES[i] for i in EN_IDX]

# e5 over chunks is too dear for the whole book in this prototype: a subset of chapters
E5_CHAPTERS = {"ch05", "ch06", "ch07", "ch09", "ch11", "ch13", "ch14", "ch16", "ch19", "proj"}
SUB_IDX = [k for k, i in enumerate(CHUNK_SEC) if ALL[i].qid.split("/")[0] in E5_CHAPTERS]
SUB_CHUNKS = [CHUNKS[k] for k in SUB_IDX]
TCHUNKS = [f"{ALL[i].title}\n{c}" for c, i in zip(CHUNKS, CHUNK_SEC)]

if __import__("os").environ.get("ALIGN") == "1":
    # en sections take the id of the zh section whose English TOC title is most similar (USE cosine,
    # same chapter), instead of their own heading number, which drifts from the zh numbering
    from embed import embed
    V = embed("use", "entitles", EN_TEXTS)
    row = {i: k for k, i in enumerate(EN_IDX)}
    zh_rows = [i for i, s in enumerate(ALL) if s.lang == "zh" and s.corpus == "book"]
    moved = 0
    for i, s in enumerate(ALL):
        if s.lang == "en" and s.corpus == "book":
            cands = [j for j in zh_rows if ALL[j].qid.split("/")[0] == s.qid.split("/")[0]]
            sims = V[[row[j] for j in cands]] @ V[row[i]]
            best = cands[int(sims.argmax())]
            if sims.max() > 0.5 and ALL[best].qid != s.qid:
                s.qid = ALL[best].qid
                moved += 1
    print(f"ALIGN: {moved} en sections re-assigned", flush=True)
