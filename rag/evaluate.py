"""Question sets and retrieval/answer metrics (pure functions on plain dicts).

qrels: {qid: {section id: relevance}}    run: {qid: {section id: score}}  (chapter-qualified ids, ch05/5.3)
A question with no relevant section is one the chapter does not answer: retrieval metrics
skip it; abstention metrics use it.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path

from .retriever import detect_language
from .types import RagError

LANGS = ("zh", "en")
DEFAULT_QUESTIONS = Path(__file__).resolve().parent.parent / "eval" / "questions.jsonl"
log = logging.getLogger(__name__)
METRICS = ("hit@1", "hit@3", "hit@5", "mrr@10", "ndcg@10", "recall@5")


# ---------------------------------------------------------------- question sets

def read_questions(path: Path) -> list[dict]:
    """A JSONL question set (or feedback log), or a BEIR directory (queries.jsonl + qrels/test.tsv).

    Lines are split on "\\n" only. A damaged line (not UTF-8, not JSON, not a question object)
    is skipped with a warning that counts them; it never makes the whole file unreadable.
    Records with a `message_id` (feedback) supersede earlier ones with the same id; the latest
    one wins, and a latest one with `"withdrawn": true` removes the question.
    """
    path = Path(path)
    if path.is_dir():
        return read_beir(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise RagError(f"cannot read question set {path} ({e.strerror or type(e).__name__}). "
                       "Pass a UTF-8 JSONL file.") from None
    records, damaged = [], []
    for n, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip():
            continue
        try:
            records.append((n, json.loads(raw.decode("utf-8"))))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            damaged.append((n, type(e).__name__))
    latest = {}
    for i, (n, q) in enumerate(records):
        if isinstance(q, dict) and isinstance(q.get("message_id"), (str, int)):
            latest[str(q["message_id"])] = i
    questions = []
    for i, (n, q) in enumerate(records):
        if isinstance(q, dict) and isinstance(q.get("message_id"), (str, int)):
            if latest[str(q["message_id"])] != i or q.get("withdrawn") is True:
                continue
        problem = _question_problem(q)
        if problem:
            damaged.append((n, problem))
            continue
        questions.append({"id": str(q["id"]), "question": q["question"],
                          "lang": q.get("lang") or detect_language(q["question"]),
                          "relevant": list(q.get("relevant", [])),
                          **({"split": q["split"]} if "split" in q else {})})
    if damaged:
        damaged.sort()
        shown = "; ".join(f"line {n}: {why}" for n, why in damaged[:5])
        log.warning("%s: skipped %d damaged line(s) (%s%s). Each line must be {\"id\": ..., \"question\": ..., "
                    "\"lang\": \"zh\"|\"en\", \"relevant\": [section, ...]}", path, len(damaged), shown,
                    "; ..." if len(damaged) > 5 else "")
    if not questions:
        raise RagError(f"{path} has no questions" + (f" ({len(damaged)} damaged line(s) skipped, first: line "
                                                     f"{damaged[0][0]}: {damaged[0][1]})" if damaged else "") + ".")
    return questions


def _question_problem(q) -> str | None:
    """Why a parsed line is not a question, or None."""
    if not isinstance(q, dict):
        return f"a JSON {type(q).__name__}, not an object"
    if not isinstance(q.get("id"), (str, int)) or isinstance(q.get("id"), bool):
        return "no 'id'"
    if not isinstance(q.get("question"), str) or not q["question"].strip():
        return "no 'question' text"
    rel = q.get("relevant", [])
    if not isinstance(rel, list) or not all(isinstance(x, str) for x in rel):
        return f"'relevant' must be a list of section ids, e.g. [\"10.14\"], not {json.dumps(rel)[:40]}"
    if q.get("lang") not in (None, *LANGS):
        return f"'lang' must be zh or en, not {q['lang']!r}"
    return None


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
                questions.append({"id": q["_id"], "question": q["text"], "lang": meta.get("lang") or detect_language(q["text"]),
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


def resolve_relevant(questions: list[dict], keys) -> list[dict]:
    """The questions with every `relevant` id chapter-qualified against an index's section keys.

    A qualified id (`ch05/5.3`) must name a section of the index; a bare one (`5.3`) is accepted
    when exactly one chapter has it, and is an error listing the candidates otherwise.
    """
    keys = list(keys)
    known = set(keys)
    by_bare: dict[str, list[str]] = {}
    for key in keys:
        by_bare.setdefault(key.split("/", 1)[1], []).append(key)
    out = []
    for q in questions:
        rel = []
        for sid in q["relevant"]:
            if sid in known:
                rel.append(sid)
                continue
            cands = by_bare.get(sid, [])
            if len(cands) == 1:
                rel.append(cands[0])
            elif cands:
                raise RagError(f"question {q['id']}: section {sid!r} is ambiguous in this index; write one of "
                               f"{', '.join(cands)}")
            else:
                raise RagError(f"question {q['id']}: no section {sid!r} in this index. Use a chapter-qualified "
                               f"id such as {keys[0] if keys else 'ch05/5.3'}")
        out.append({**q, "relevant": rel})
    return out


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


# ---------------------------------------------------------------- running a question set

def run_eval(questions: list[dict], retriever, modes=("hybrid", "dense", "lexical"), k: int = 10,
             progress: bool = False) -> dict:
    """Retrieval metrics per mode and language, answer metrics, timings, per-section and per-question results."""
    import time

    from .answer import answer

    questions = resolve_relevant(questions, retriever.section_keys)
    qrels_all = to_qrels(questions)
    runs: dict[str, dict] = {m: {} for m in modes}
    times: dict[str, list[float]] = {m: [] for m in (*modes, "answer")}
    answers = {}
    n = len(questions)
    answer("什么是迁移学习？", retriever)  # warm-up: timings are of warm queries
    for i, q in enumerate(questions, 1):
        for m in modes:
            t = time.perf_counter()
            hits = retriever.search(q["question"], k=k, mode=m)
            times[m].append(time.perf_counter() - t)
            runs[m][q["id"]] = {h.id: h.score for h in hits}
        t = time.perf_counter()
        a = answer(q["question"], retriever)
        times["answer"].append(time.perf_counter() - t)
        answers[q["id"]] = a
        if progress:
            bar = "#" * (30 * i // n)
            print(f"\revaluating [{bar:<30}] {i}/{n}", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)

    groups = {"zh": [q for q in questions if q["lang"] == "zh"], "en": [q for q in questions if q["lang"] == "en"],
              "all": questions}
    retrieval = {m: {g: evaluate(to_qrels(qs), runs[m]) | {"n": len(to_qrels(qs))} for g, qs in groups.items()}
                 for m in modes}
    answer_metrics = {}
    for g, qs in groups.items():
        answerable = [q for q in qs if q["relevant"]]
        correct = [q for q in answerable if not answers[q["id"]].abstained and answers[q["id"]].citations
                   and answers[q["id"]].citations[0].id in q["relevant"]]
        answer_metrics[g] = {"accuracy": len(correct) / len(answerable) if answerable else 0.0,
                             "n": len(answerable), "unanswerable": len(qs) - len(answerable),
                             **abstention_scores(qs, {q["id"]: answers[q["id"]].abstained for q in qs})}
    sections: dict[str, dict] = {}
    for sec in sorted({s for q in questions for s in q["relevant"]}, key=_section_order):
        sub = {qid: rel for qid, rel in qrels_all.items() if sec in rel}
        sections[sec] = {"n": len(sub), **{m: evaluate(sub, runs[m], ("hit@1", "mrr@10")) for m in modes}}
    per_question = []
    for q in questions:
        a = answers[q["id"]]
        per_question.append({
            "id": q["id"], "question": q["question"], "lang": q["lang"], "relevant": q["relevant"],
            "retrieved": {m: _ranked(runs[m][q["id"]])[:5] for m in modes},
            "answer": {"abstained": a.abstained, "cited": list(dict.fromkeys(c.id for c in a.citations))},
        })
    timing = {m: {"mean_ms": 1000 * sum(v) / len(v), "p50_ms": 1000 * sorted(v)[len(v) // 2]}
              for m, v in times.items() if v}
    return {"n_questions": len(questions), "k": k, "modes": list(modes), "retrieval": retrieval,
            "answers": answer_metrics, "sections": sections, "timing": timing, "per_question": per_question}


def _section_order(key: str):
    chapter, _, section = key.rpartition("/")
    parts = section.split(".")
    return (chapter, 0, [int(p) for p in parts], "") if all(p.isdigit() for p in parts) else (chapter, 1, [], section)


def failures(results: dict, mode: str = "hybrid") -> list[dict]:
    """Questions whose first hit (retrieval) or first citation (answer) is wrong, or that abstained wrongly."""
    out = []
    for q in results["per_question"]:
        got = q["retrieved"].get(mode, [])
        a = q["answer"]
        if q["relevant"]:
            if not got or got[0] not in q["relevant"]:
                out.append({**q, "kind": f"{mode} retrieval"})
            elif a["abstained"] or not a["cited"] or a["cited"][0] not in q["relevant"]:
                out.append({**q, "kind": "answer"})
        elif not a["abstained"]:
            out.append({**q, "kind": "answered, should abstain"})
    return out


def flat_metrics(results: dict) -> dict[str, float]:
    """Every headline number as 'mode/lang/metric' (retrieval) or 'answer/lang/metric'."""
    flat = {}
    for m, by_lang in results["retrieval"].items():
        for g, metrics in by_lang.items():
            flat.update({f"{m}/{g}/{k}": v for k, v in metrics.items() if k != "n"})
    for g, metrics in results["answers"].items():
        flat.update({f"answer/{g}/{k}": v for k, v in metrics.items() if k not in ("n", "unanswerable")})
    return flat


def compare(results: dict, baseline: dict) -> tuple[list[tuple[str, float, float]], list[tuple[str, str, str]]]:
    """(metric, baseline, now) for metrics that changed; (question id, was, now) for questions whose top hit changed."""
    now, before = flat_metrics(results), flat_metrics(baseline)
    metrics = [(k, before[k], now[k]) for k in sorted(now) if k in before and abs(now[k] - before[k]) > 1e-9]
    old = {q["id"]: q for q in baseline.get("per_question", [])}
    questions = []
    for q in results["per_question"]:
        b = old.get(q["id"])
        if not b:
            continue
        for m in q["retrieved"]:
            if m in b["retrieved"] and q["relevant"]:
                was = bool(b["retrieved"][m]) and b["retrieved"][m][0] in q["relevant"]
                is_ = bool(q["retrieved"][m]) and q["retrieved"][m][0] in q["relevant"]
                if was != is_:
                    questions.append((q["id"], m, "fixed" if is_ else "broken"))
    return metrics, questions


def check_floors(results: dict, floors: dict[str, float]) -> list[str]:
    """Messages for every metric below its floor (an unknown metric name is an error)."""
    flat = flat_metrics(results)
    unknown = [k for k in floors if k not in flat]
    if unknown:
        raise RagError(f"unknown metric(s) {', '.join(unknown)}; names look like hybrid/all/mrr@10 or "
                       f"answer/zh/accuracy. Known: {', '.join(sorted(flat))}")
    return [f"{k} = {flat[k]:.3f} is below the floor {v:.3f}" for k, v in floors.items() if flat[k] < v]
