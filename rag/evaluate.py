"""Question sets and retrieval/answer metrics (pure functions on plain dicts).

qrels: {qid: {section: relevance}}    run: {qid: {section: score}}
A question with no relevant section is one the chapter does not answer: retrieval metrics
skip it; abstention metrics use it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from .types import RagError

LANGS = ("zh", "en")
METRICS = ("hit@1", "hit@3", "hit@5", "mrr@10", "ndcg@10", "recall@5")


# ---------------------------------------------------------------- question sets

def read_questions(path: Path) -> list[dict]:
    """A JSONL question set, or a BEIR directory (queries.jsonl + qrels/test.tsv)."""
    path = Path(path)
    if path.is_dir():
        return read_beir(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise RagError(f"cannot read question set {path} ({type(e).__name__}). Pass a UTF-8 JSONL file.") from None
    questions = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            q = json.loads(line)
            questions.append({"id": str(q["id"]), "question": str(q["question"]),
                              "lang": q.get("lang") or _lang(q["question"]),
                              "relevant": [str(s) for s in q.get("relevant", [])],
                              **({"split": q["split"]} if "split" in q else {})})
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise RagError(f"{path}:{n}: not a question line ({type(e).__name__}: {e}). Each line must be "
                           '{"id": ..., "question": ..., "lang": "zh"|"en", "relevant": [section, ...]}') from None
    if not questions:
        raise RagError(f"{path} has no questions.")
    return questions


def _lang(text: str) -> str:
    from .retriever import detect_language

    return detect_language(text)


def read_beir(directory: Path) -> list[dict]:
    """Questions from BEIR's layout: queries.jsonl ({_id, text}) and qrels/test.tsv."""
    qrels: dict[str, list[str]] = {}
    tsv = directory / "qrels" / "test.tsv"
    try:
        for n, line in enumerate(tsv.read_text(encoding="utf-8").splitlines()):
            parts = line.split("\t")
            if n == 0 and parts[0] == "query-id":
                continue
            if len(parts) >= 3 and float(parts[2]) > 0:
                qrels.setdefault(parts[0], []).append(parts[1])
        questions = []
        for line in (directory / "queries.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                q = json.loads(line)
                meta = q.get("metadata") or {}
                questions.append({"id": q["_id"], "question": q["text"], "lang": meta.get("lang") or _lang(q["text"]),
                                  "relevant": qrels.get(q["_id"], []),
                                  **({"split": meta["split"]} if "split" in meta else {})})
    except (OSError, ValueError, KeyError) as e:
        raise RagError(f"{directory} is not a BEIR question set ({type(e).__name__}). It needs queries.jsonl "
                       "and qrels/test.tsv.") from None
    return questions


def write_beir(questions: list[dict], directory: Path) -> None:
    """Write questions in BEIR's layout (unanswerable ones have no qrels rows)."""
    (directory / "qrels").mkdir(parents=True, exist_ok=True)
    with open(directory / "queries.jsonl", "w", encoding="utf-8") as f:
        for q in questions:
            meta = {"lang": q["lang"], **({"split": q["split"]} if "split" in q else {})}
            f.write(json.dumps({"_id": q["id"], "text": q["question"], "metadata": meta}, ensure_ascii=False) + "\n")
    with open(directory / "qrels" / "test.tsv", "w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for q in questions:
            for s in q["relevant"]:
                f.write(f"{q['id']}\t{s}\t1\n")


def to_qrels(questions: list[dict]) -> dict[str, dict[str, int]]:
    return {q["id"]: {s: 1 for s in q["relevant"]} for q in questions if q["relevant"]}


# ---------------------------------------------------------------- metrics

def _ranked(scores: dict[str, float]) -> list[str]:
    return [d for d, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))]


def hit_at(qrel: dict[str, int], scores: dict[str, float], k: int) -> float:
    return float(any(qrel.get(d, 0) > 0 for d in _ranked(scores)[:k]))


def mrr_at(qrel: dict[str, int], scores: dict[str, float], k: int) -> float:
    for i, d in enumerate(_ranked(scores)[:k], 1):
        if qrel.get(d, 0) > 0:
            return 1.0 / i
    return 0.0


def recall_at(qrel: dict[str, int], scores: dict[str, float], k: int) -> float:
    rel = {d for d, r in qrel.items() if r > 0}
    return len(rel & set(_ranked(scores)[:k])) / len(rel) if rel else 0.0


def ndcg_at(qrel: dict[str, int], scores: dict[str, float], k: int) -> float:
    dcg = sum(qrel.get(d, 0) / math.log2(i + 1) for i, d in enumerate(_ranked(scores)[:k], 1))
    ideal = sorted((r for r in qrel.values() if r > 0), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 1) for i, r in enumerate(ideal, 1))
    return dcg / idcg if idcg else 0.0


_FUNCS = {"hit": hit_at, "mrr": mrr_at, "recall": recall_at, "ndcg": ndcg_at}


def evaluate(qrels: dict, run: dict, metrics=METRICS) -> dict[str, float]:
    """Mean of each metric ('name@k') over the questions in qrels; a missing run entry scores 0."""
    out = {}
    for m in metrics:
        name, k = m.split("@")
        f = _FUNCS[name]
        vals = [f(qrel, run.get(qid, {}), int(k)) for qid, qrel in qrels.items()]
        out[m] = sum(vals) / len(vals) if vals else 0.0
    return out


def per_query(qrels: dict, run: dict, metric: str) -> dict[str, float]:
    name, k = metric.split("@")
    return {qid: _FUNCS[name](qrel, run.get(qid, {}), int(k)) for qid, qrel in qrels.items()}


def abstention_scores(questions: list[dict], abstained: dict[str, bool]) -> dict[str, float]:
    """Precision and recall of abstaining, with unanswerable questions as the positives."""
    pos = {q["id"] for q in questions if not q["relevant"]}
    said = {qid for qid, a in abstained.items() if a}
    tp = len(pos & said)
    return {"abstain_precision": tp / len(said) if said else 1.0,
            "abstain_recall": tp / len(pos) if pos else 1.0,
            "abstain_rate_answerable": len(said - pos) / max(1, len(abstained.keys() - pos))}
