"""Presenting evaluation results: text tables, report.md, and a chart comparing modes by language."""

from __future__ import annotations

import json
from pathlib import Path

from .evaluate import METRICS, failures

ANSWER_METRICS = ("accuracy", "evidence_hit", "evidence_recall", "quote_precision", "abstain_precision",
                  "abstain_recall", "abstain_rate_answerable")
_HEADERS = ("first-citation acc", "evidence hit", "evidence recall", "quote precision", "abstain precision",
            "abstain recall", "abstains on answerable")


def _ci(a: dict, name: str) -> str:
    lo, hi = a.get("ci", {}).get(name, (None, None))
    return f"{a[name]:.3f}" if lo is None else f"{a[name]:.3f} [{lo:.2f}, {hi:.2f}]"


def _table(header: list[str], rows: list[list], markdown: bool) -> str:
    cells = [[f"{c:.3f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells])
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header)] + [fmt.format(*r) for r in cells])


def tables(results: dict, markdown: bool = False) -> str:
    """Retrieval metrics per mode and language, answer metrics per language, per-section hit@1."""
    t = results["timing"]
    rows = [[m, g, r["n"], *(r[x] for x in METRICS), f"{t[m]['mean_ms']:.1f}"]
            for m, by_lang in results["retrieval"].items() for g, r in by_lang.items()]
    out = [f"Retrieval ({results['n_questions']} questions; metrics over the answerable ones)",
           _table(["mode", "lang", "n", *METRICS, "ms/q"], rows, markdown), ""]
    rows = [[g, a["n"], a["unanswerable"], *(_ci(a, x) for x in ANSWER_METRICS), f"{a.get('length_chars', 0):.0f}"]
            for g, a in results["answers"].items()]
    out += ["Answers, with bootstrap 95% intervals (definitions: eval/README.md)",
            _table(["group", "answerable", "unanswerable", *_HEADERS, "chars"], rows, markdown),
            f"answer() time: mean {t['answer']['mean_ms']:.1f} ms, p50 {t['answer']['p50_ms']:.1f} ms; "
            f"answers made only of the book's questions or bare headings: {len(results.get('bare_answers', []))}",
            ""]
    modes = results["modes"]
    rows = [[sec, s["n"], *(s[m]["hit@1"] for m in modes)] for sec, s in results["sections"].items()]
    out += ["Per section (hit@1)", _table(["section", "n", *modes], rows, markdown)]
    return "\n".join(out)


def failure_lines(results: dict) -> str:
    lines = []
    for f in failures(results):
        got = f["answer"]["cited"] if f["kind"].startswith("answer") else f["retrieved"]["hybrid"][:3]
        lines.append(f"  [{f['kind']}] {f['id']} {f['question']!r}: expected {f['relevant'] or 'abstain'}, got {got}")
    misses = [f"  [no gold sentence quoted] {q['id']} {q['question']!r}: cited {q['answer']['cited']}"
              for q in results["per_question"] if q["relevant"] and not q["answer"]["abstained"]
              and q["answer"].get("evidence_hit") == 0.0]
    return "Failures (hybrid)\n" + ("\n".join(lines + misses) if lines or misses else "  none")


def write_report(results: dict, directory: Path, title: str) -> None:
    """report.md, results.json and modes.png in directory."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "results.json").write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    chart(results, directory / "modes.png")
    md = [f"# {title}", "", tables(results, markdown=True), "", "![modes by language](modes.png)", ""]
    if results.get("reliability"):
        reliability_plot(results["reliability"], directory / "reliability.png")
        rows = [[f"{b['lo']:.1f}-{b['hi']:.1f}", b["n"], b["mean_p"], b["answerable"]] for b in results["reliability"]]
        md += ["Abstention model reliability (predicted P(answerable) against the observed share)", "",
               _table(["bin", "n", "mean predicted", "observed answerable"], rows, True), "",
               "![reliability](reliability.png)", ""]
    md += ["```", failure_lines(results), "```", ""]
    (directory / "report.md").write_text("\n".join(md), encoding="utf-8")


def reliability_plot(bins: list[dict], path: Path) -> None:
    """Predicted against observed P(answerable), with the diagonal of perfect calibration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1)
    ax.plot([b["mean_p"] for b in bins], [b["answerable"] for b in bins], "o-")
    for b in bins:
        ax.annotate(str(b["n"]), (b["mean_p"], b["answerable"]), fontsize=7, xytext=(3, -9), textcoords="offset points")
    ax.set_xlabel("predicted P(answerable)")
    ax.set_ylabel("observed share answerable")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def chart(results: dict, path: Path) -> None:
    """Grouped bars: hit@1 and MRR@10 of each mode, per language."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    langs = ["zh", "en", "all"]
    modes = results["modes"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, metric in zip(axes, ("hit@1", "mrr@10")):
        width = 0.8 / len(modes)
        for i, m in enumerate(modes):
            vals = [results["retrieval"][m][g][metric] for g in langs]
            bars = ax.bar([x + i * width for x in range(len(langs))], vals, width, label=m)
            ax.bar_label(bars, fmt="%.2f", fontsize=7)
        ax.set_xticks([x + width * (len(modes) - 1) / 2 for x in range(len(langs))], langs)
        ax.set_title(metric)
        ax.set_ylim(0, 1.08)
    axes[0].legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
