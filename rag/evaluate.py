"""Question sets and retrieval/answer metrics (pure functions on plain dicts).

qrels: {qid: {section id: relevance}}    run: {qid: {section id: score}}  (chapter-qualified ids, ch05/5.3)
A question with no relevant section is one the chapter does not answer: retrieval metrics
skip it; abstention metrics use it. A near-duplicate of a relevant section (the same content in
another place, found at build time, see dedup.py) counts as relevant too: a search shows one
section of such a group and lists the others in `also_in`.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path

from .feedback import latest_ratings
from .lang import NEEDS_CONTEXT, detect_language, is_label, is_lead_in, question_language
from .types import RagError, sections_named

LANGS = ("zh", "en")
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_QUESTIONS = ROOT / "eval" / "questions.jsonl"
# Where evidence `source` paths are looked up: the chapter's corpus, then the shipped book.
EVIDENCE_ROOTS = (ROOT / "corpus", ROOT / "book")
BOOTSTRAP = 1000  # resamples for the 95% intervals
log = logging.getLogger(__name__)
METRICS = ("hit@1", "hit@3", "hit@5", "mrr@10", "ndcg@10", "recall@5")


# ---------------------------------------------------------------- question sets

def read_questions(path: Path, evidence_roots=EVIDENCE_ROOTS) -> list[dict]:
    """A JSONL question set (or feedback log), or a BEIR directory (queries.jsonl + qrels/test.tsv).

    Optional fields kept: split, kind, heading_copy, history, evidence. Lines are split on "\n"
    only. A damaged line (not UTF-8, not JSON, not a question object) is skipped with a warning
    that counts them; it never makes the whole file unreadable. Of a feedback log only the latest
    rating of each message counts (feedback.latest_ratings). Every evidence span is checked
    against its file: a span that does not match is a RagError (the set is out of date with the
    corpus).
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
    counted = {id(q) for q in latest_ratings([q for _, q in records])}  # a feedback log: latest rating of each message
    questions, files = [], {}
    for n, q in records:
        if id(q) not in counted:
            continue
        problem = _question_problem(q)
        if problem:
            damaged.append((n, problem))
            continue
        rec = {"id": str(q["id"]), "question": q["question"], "lang": q.get("lang") or detect_language(q["question"]),
               "relevant": list(q.get("relevant", []))}
        for key in ("split", "kind", "heading_copy"):  # history and evidence below
            if key in q:
                rec[key] = q[key]
        if q.get("history"):
            rec["history"] = [{"question": t["question"], "relevant": list(t.get("relevant", []))} for t in q["history"]]
        if q.get("evidence"):
            rec["evidence"] = [{k: e[k] for k in ("source", "start", "end", "text")} for e in q["evidence"]]
        for e in rec.get("evidence", []):
            text = _evidence_file(e["source"], evidence_roots, files)
            if text is None:
                raise RagError(f"{path}:{n}: evidence source {e['source']!r} not found under "
                               f"{', '.join(str(r) for r in evidence_roots)}.")
            if text[e["start"]:e["end"]] != e["text"]:
                raise RagError(f"{path}:{n}: evidence of {rec['id']} does not match {e['source']}"
                               f"[{e['start']}:{e['end']}] (the file has {text[e['start']:e['end']][:40]!r}, the "
                               f"question set {e['text'][:40]!r}). Recompute the span with eval/tools/find_span.py.")
        questions.append(rec)
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
        return f"'relevant' must be a list of section ids, e.g. [\"ch10/10.14\"], not {json.dumps(rel)[:40]}"
    if q.get("lang") not in (None, *LANGS):
        return f"'lang' must be zh or en, not {q['lang']!r}"
    history = q.get("history") or []
    if not isinstance(history, list) or not all(
            isinstance(t, dict) and isinstance(t.get("question"), str) and isinstance(t.get("relevant", []), list)
            and all(isinstance(x, str) for x in t.get("relevant", [])) for t in history):
        return "'history' must be a list of {\"question\": ..., \"relevant\": [...]}"
    evidence = q.get("evidence") or []
    if not isinstance(evidence, list) or not all(
            isinstance(e, dict) and isinstance(e.get("source"), str) and isinstance(e.get("text"), str)
            and all(isinstance(e.get(f), int) and not isinstance(e.get(f), bool) and e[f] >= 0 for f in ("start", "end"))
            for e in evidence):
        return "'evidence' must be a list of {\"source\", \"start\", \"end\", \"text\"}"
    return None


def _evidence_file(source: str, roots, cache: dict) -> str | None:
    if source not in cache:
        cache[source] = None
        for root in roots:
            p = Path(root) / source
            if p.is_file():
                with open(p, encoding="utf-8", newline="") as f:
                    cache[source] = f.read()
                break
    return cache[source]


_EXTRA = ("split", "kind", "heading_copy", "history", "evidence")  # optional fields, kept in BEIR's metadata


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
                                  **{k: meta[k] for k in _EXTRA if k in meta}})
    except (OSError, ValueError, KeyError) as e:
        raise RagError(f"{directory} is not a BEIR question set ({type(e).__name__}). It needs queries.jsonl "
                       "and qrels/test.tsv.") from None
    return questions


def write_beir(questions: list[dict], directory: Path) -> None:
    """Write questions in BEIR's layout (unanswerable ones have no qrels rows)."""
    (directory / "qrels").mkdir(parents=True, exist_ok=True)
    with open(directory / "queries.jsonl", "w", encoding="utf-8") as f:
        for q in questions:
            meta = {"lang": q["lang"], **{k: q[k] for k in _EXTRA if k in q}}
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
    out = []
    for q in questions:
        rel = []
        for sid in q["relevant"]:
            cands = sections_named(sid, keys)
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


def with_duplicates(questions: list[dict], duplicates: dict[str, tuple[str, ...]]) -> list[dict]:
    """The questions with the near-duplicates of their relevant sections added to `relevant`."""
    return [{**q, "relevant": list(dict.fromkeys(d for s in q["relevant"] for d in (s, *duplicates.get(s, ()))))}
            for q in questions]


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


# ---------------------------------------------------------------- answer evidence

def _spans(quote: dict) -> list[tuple[str, int, int]]:
    """The corpus spans a quote stands for: its own, and its original's for a translated quote."""
    out = [(quote["source"], quote["start"], quote["end"])]
    if quote.get("original"):
        o = quote["original"]
        out.append((o["source"], o["start"], o["end"]))
    return out


def _overlap(a: tuple[str, int, int], b: tuple[str, int, int]) -> bool:
    return a[0] == b[0] and a[1] < b[2] and b[1] < a[2]


def is_gold(quote: dict, evidence: list[dict]) -> bool:
    """Whether a quote (or its aligned original) overlaps a gold evidence span."""
    gold = [(e["source"], e["start"], e["end"]) for e in evidence]
    return any(_overlap(x, g) for x in _spans(quote) for g in gold)


def is_context(quote: dict, following: dict | None, evidence: list[dict]) -> bool:
    """A non-gold quote is necessary context when the next quote is gold, from the same file and
    section, and either this one introduces it (a lead-in ending in a colon, or a bare list label)
    or the gold one cannot stand alone (it opens with a connective or pronoun of its language)."""
    if following is None or not is_gold(following, evidence) or is_gold(quote, evidence):
        return False
    if (following["source"], following.get("section")) != (quote["source"], quote.get("section")):
        return False
    text = following["quote"].lstrip("*（( ")
    lang = "zh" if question_language(text) == "zh" else "en"
    return is_lead_in(quote["quote"]) or is_label(quote["quote"]) or bool(NEEDS_CONTEXT[lang].match(text))


def evidence_scores(quotes: list[dict], evidence: list[dict]) -> dict:
    """One answer against its gold evidence (quotes in the answer's order, as Citation.to_dict()s).

    hit: 1 if a quote is gold; recall: share of gold spans some quote overlaps; precision: share
    of quotes that are gold or necessary context (None without quotes); length: characters quoted.
    """
    gold = [(e["source"], e["start"], e["end"]) for e in evidence]
    found = [any(_overlap(x, g) for q in quotes for x in _spans(q)) for g in gold]
    good = [is_gold(q, evidence) or is_context(q, quotes[i + 1] if i + 1 < len(quotes) else None, evidence)
            for i, q in enumerate(quotes)]
    return {"hit": float(any(is_gold(q, evidence) for q in quotes)),
            "recall": sum(found) / len(gold) if gold else 0.0,
            "precision": sum(good) / len(good) if good else None,
            "length": float(sum(len(q["quote"]) for q in quotes))}


def bootstrap_ci(items: list, stat, n: int = BOOTSTRAP, seed: int = 0) -> list[float]:
    """Percentile 95% interval of stat(items) over n resamples of the items (with replacement)."""
    import random

    if not items:
        return [0.0, 0.0]
    rng = random.Random(seed)
    vals = sorted(stat([items[rng.randrange(len(items))] for _ in items]) for _ in range(n))
    return [round(vals[int(0.025 * (n - 1))], 4), round(vals[int(0.975 * (n - 1))], 4)]


def _mean(xs) -> float:
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else 0.0


def answer_scores(records: list[dict]) -> dict:
    """Answer metrics with 95% bootstrap intervals over per-question records
    {answerable, abstained, first_ok, hit, recall, precision, length}."""
    ans = [r for r in records if r["answerable"]]
    answered = [r for r in ans if not r["abstained"]]

    def abst_precision(rs):
        said = [r for r in rs if r["abstained"]]
        return sum(not r["answerable"] for r in said) / len(said) if said else 1.0

    def abst_recall(rs):
        neg = [r for r in rs if not r["answerable"]]
        return sum(r["abstained"] for r in neg) / len(neg) if neg else 1.0

    def abst_answerable(rs):
        pos = [r for r in rs if r["answerable"]]
        return sum(r["abstained"] for r in pos) / len(pos) if pos else 0.0

    stats = {
        "accuracy": (ans, lambda rs: _mean(float(r["first_ok"]) for r in rs)),
        "evidence_hit": ([r for r in ans if r["has_evidence"]], lambda rs: _mean(r["hit"] for r in rs)),
        "evidence_recall": ([r for r in ans if r["has_evidence"]], lambda rs: _mean(r["recall"] for r in rs)),
        "quote_precision": ([r for r in answered if r["has_evidence"]], lambda rs: _mean(r["precision"] for r in rs)),
        "length_chars": (answered, lambda rs: _mean(r["length"] for r in rs)),
        "abstain_precision": (records, abst_precision),
        "abstain_recall": (records, abst_recall),
        "abstain_rate_answerable": (records, abst_answerable),
    }
    out = {name: stat(items) for name, (items, stat) in stats.items()}
    out["ci"] = {name: bootstrap_ci(items, stat) for name, (items, stat) in stats.items() if name != "length_chars"}
    out["n"], out["unanswerable"] = len(ans), len(records) - len(ans)
    return out


def _bare(a, corpus_dir: Path | None, texts: dict) -> bool:
    """An answer made only of the book's own questions, bare labels or headings."""
    from .lang import is_question_sentence

    def heading(c) -> bool:
        if corpus_dir is None:
            return False
        text = _evidence_file(c.source, (corpus_dir,), texts) or ""
        return text[text.rfind("\n", 0, c.start) + 1:c.start].lstrip().startswith("#")

    return bool(a.citations) and all(is_question_sentence(c.quote) or is_label(c.quote) or heading(c)
                                     for c in a.citations)


# ---------------------------------------------------------------- running a question set

def run_eval(questions: list[dict], retriever, modes=("hybrid", "dense", "lexical"), k: int = 10,
             progress: bool = False) -> dict:
    """Retrieval metrics per mode and language, answer metrics, timings, per-section and per-question results.

    Questions that copy a heading (`heading_copy`) are reported in their own group, follow-ups
    (`history`) in two groups: answered with the previous turn's answer as history, and without.
    """
    import time

    from .abstain import probability
    from .answer import analyse, answer
    from .lang import question_type

    questions = with_duplicates(resolve_relevant(questions, retriever.section_keys), retriever.duplicates)
    standalone = [q for q in questions if not q.get("history")]
    followups = [q for q in questions if q.get("history")]
    main = [q for q in standalone if not q.get("heading_copy")]
    copies = [q for q in standalone if q.get("heading_copy")]
    runs: dict[str, dict] = {m: {} for m in modes}
    times: dict[str, list[float]] = {m: [] for m in (*modes, "answer")}
    answers, probs, follow_with, follow_without = {}, {}, {}, {}
    n = len(questions)
    answer("什么是迁移学习？", retriever)  # warm-up: timings are of warm queries
    for i, q in enumerate(questions, 1):
        if q.get("history"):
            prev = [answer(t["question"], retriever) for t in q["history"]]
            follow_with[q["id"]] = answer(q["question"], retriever, history=prev)
            follow_without[q["id"]] = answer(q["question"], retriever)
        else:
            for m in modes:
                t = time.perf_counter()
                hits = retriever.search(q["question"], k=k, mode=m)
                times[m].append(time.perf_counter() - t)
                runs[m][q["id"]] = {h.id: h.score for h in hits}
            t = time.perf_counter()
            a = answer(q["question"], retriever)
            times["answer"].append(time.perf_counter() - t)
            answers[q["id"]] = a
            if question_language(q["question"]) != "other":
                probs[q["id"]] = probability(analyse(q["question"], retriever).features)
        if progress:
            bar = "#" * (30 * i // n)
            print(f"\revaluating [{bar:<30}] {i}/{n}", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)

    def record(q, a) -> dict:
        ev = evidence_scores([c.to_dict() for c in a.citations], q.get("evidence", [])) if not a.abstained else \
            {"hit": 0.0, "recall": 0.0, "precision": None, "length": 0.0}
        return {"answerable": bool(q["relevant"]), "abstained": a.abstained, "has_evidence": bool(q.get("evidence")),
                "first_ok": bool(q["relevant"]) and not a.abstained and bool(a.citations)
                and a.citations[0].id in q["relevant"], **ev}

    groups = {"zh": [q for q in main if q["lang"] == "zh"], "en": [q for q in main if q["lang"] == "en"],
              "all": main}
    retrieval = {m: {g: evaluate(to_qrels(qs), runs[m]) | {"n": len(to_qrels(qs))} for g, qs in groups.items()}
                 for m in modes}
    if copies:
        for m in modes:
            retrieval[m]["heading_copy"] = evaluate(to_qrels(copies), runs[m]) | {"n": len(to_qrels(copies))}
    answer_metrics = {g: answer_scores([record(q, answers[q["id"]]) for q in qs]) for g, qs in groups.items()}
    if copies:
        answer_metrics["heading_copy"] = answer_scores([record(q, answers[q["id"]]) for q in copies])
    if followups:
        answer_metrics["followup"] = answer_scores([record(q, follow_with[q["id"]]) for q in followups])
        answer_metrics["followup_nohistory"] = answer_scores([record(q, follow_without[q["id"]]) for q in followups])
    qrels_all = to_qrels(main)
    sections: dict[str, dict] = {}
    for sec in sorted({s for q in main for s in q["relevant"]}, key=_section_order):
        sub = {qid: rel for qid, rel in qrels_all.items() if sec in rel}
        sections[sec] = {"n": len(sub), **{m: evaluate(sub, runs[m], ("hit@1", "mrr@10")) for m in modes}}
    corpus_dir = getattr(getattr(retriever, "index", None), "corpus_dir", None)
    texts: dict = {}
    bare = [q["id"] for q in standalone if question_type(q["question"], q["lang"]) != "bookquestions"
            and _bare(answers[q["id"]], corpus_dir, texts)]
    bare += [q["id"] for q in followups if _bare(follow_with[q["id"]], corpus_dir, texts)]
    per_question = []
    for q in questions:
        a = follow_with.get(q["id"]) or answers[q["id"]]
        rec = record(q, a)
        per_question.append({
            "id": q["id"], "question": q["question"], "lang": q["lang"], "relevant": q["relevant"],
            "group": "followup" if q.get("history") else "heading_copy" if q.get("heading_copy") else q["lang"],
            "retrieved": {m: _ranked(runs[m][q["id"]])[:5] for m in modes if q["id"] in runs[m]},
            "answer": {"abstained": a.abstained, "cited": list(dict.fromkeys(c.id for c in a.citations)),
                       "evidence_hit": rec["hit"], "quote_precision": rec["precision"],
                       "p_answerable": round(probs[q["id"]], 4) if q["id"] in probs else None},
        })
    timing = {m: {"mean_ms": 1000 * sum(v) / len(v), "p50_ms": 1000 * sorted(v)[len(v) // 2]}
              for m, v in times.items() if v}
    return {"n_questions": len(questions), "k": k, "modes": list(modes), "retrieval": retrieval,
            "answers": answer_metrics, "sections": sections, "timing": timing, "per_question": per_question,
            "bare_answers": bare, "reliability": reliability([(probs[q["id"]], bool(q["relevant"]))
                                                              for q in main if q["id"] in probs])}


def reliability(pairs: list[tuple[float, bool]], bins: int = 5) -> list[dict]:
    """Predicted P(answerable) against the observed share answerable, in equal-width bins."""
    out = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = [(p, y) for p, y in pairs if lo <= p < hi or (b == bins - 1 and p == 1.0)]
        if inside:
            out.append({"lo": lo, "hi": hi, "n": len(inside), "mean_p": _mean(p for p, _ in inside),
                        "answerable": _mean(float(y) for _, y in inside)})
    return out


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
            if q.get("group") != "followup" and (not got or got[0] not in q["relevant"]):
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
        flat.update({f"answer/{g}/{k}": v for k, v in metrics.items() if k not in ("n", "unanswerable", "ci")})
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
