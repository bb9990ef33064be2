"""Dev CV table for every configuration, then one final test run of the chosen fusion.

    OMP_NUM_THREADS=1 PYTHONPATH=<worktree> python run.py dev|test
"""
from __future__ import annotations

import json
import sys

import numpy as np

import evaluate as E
import texts as T

GROUPS = ("zh", "en-tr", "en-other")
ALLQ = T.BQ + T.PQ


def book_split(split):
    qsel = [i for i, q in enumerate(T.BQ) if q["split"] == split and q["relevant"]]
    C, units = E.components({"book"}, qsel)
    qs = [T.BQ[i] for i in qsel]
    return C, units, qs


def fmt(h, m):
    return f"{h.mean():.3f} / {m.mean():.3f}" if len(h) else "-"


CONFIGS = {
    "a) USE chunk": ["use_chunk"],
    "a) USE chunk + USE title": ["use_chunk", "use_title"],
    "a') USE title+chunk": ["use_tchunk"],
    "a') USE title+chunk + USE title": ["use_tchunk", "use_title"],
    "b) e5 title": ["e5_title"],
    "c) e5 title+200": ["e5_head"],
    "c) e5 title+200 + e5 title": ["e5_head", "e5_title"],
    "e) USE en-TOC title": ["use_entitle"],
    "e) e5 en-TOC title": ["e5_entitle"],
    "f) BM25 chunk (raw query)": ["bm25_chunk"],
    "f) BM25 chunk (en query + mined zh terms)": ["bm25_chunk_tr"],
    "f) BM25 en-TOC title": ["bm25_entitle"],
    "f) BM25 whole section (tr)": ["bm25_sec_tr"],
    "f) BM25 section title (zh/en file)": ["bm25_title"],
    "f) BM25 chunk_tr + section_tr": ["bm25_chunk_tr", "bm25_sec_tr"],
    "f) BM25 chunk_tr + BM25 en-TOC": ["bm25_chunk_tr", "bm25_entitle"],
    "g1) all dense": ["use_chunk", "use_title", "e5_title", "e5_head", "use_entitle", "e5_entitle"],
    "g2) all dense + BM25": ["use_chunk", "use_title", "e5_title", "e5_head", "use_entitle", "e5_entitle",
                             "bm25_chunk_tr", "bm25_entitle"],
    "g3) g2 without e5": ["use_chunk", "use_title", "use_entitle", "bm25_chunk_tr", "bm25_entitle"],
    "g4) g2 without en-TOC": ["use_chunk", "use_title", "e5_title", "e5_head", "bm25_chunk_tr"],
    "g5) g2 without translation (raw BM25)": ["use_chunk", "use_title", "e5_title", "e5_head", "use_entitle",
                                              "e5_entitle", "bm25_chunk", "bm25_entitle"],
    "g8) g2 + BM25 section + BM25 title": ["use_chunk", "use_title", "e5_title", "e5_head", "use_entitle",
                                           "e5_entitle", "bm25_chunk_tr", "bm25_entitle", "bm25_sec_tr", "bm25_title"],
    "g6) g2 without e5 title+200": ["use_chunk", "use_title", "e5_title", "use_entitle", "e5_entitle",
                                    "bm25_chunk_tr", "bm25_entitle"],
    "g9) g6 without USE title": ["use_chunk", "e5_title", "use_entitle", "e5_entitle", "bm25_chunk_tr", "bm25_entitle"],
    "g10) g6 without e5 (zh) title": ["use_chunk", "use_title", "use_entitle", "e5_entitle", "bm25_chunk_tr", "bm25_entitle"],
    "g11) g6 without USE en-TOC": ["use_chunk", "use_title", "e5_title", "e5_entitle", "bm25_chunk_tr", "bm25_entitle"],
    "g12) g6 + BM25 whole section": ["use_chunk", "use_title", "e5_title", "use_entitle", "e5_entitle", "bm25_chunk_tr",
                                     "bm25_entitle", "bm25_sec_tr"],
    "g13) g6 with USE title+chunk for USE chunk": ["use_tchunk", "use_title", "e5_title", "use_entitle", "e5_entitle",
                                                   "bm25_chunk_tr", "bm25_entitle"],
    "F1) USE chunk+title, e5 en-TOC, BM25 chunk_tr + en-TOC": ["use_chunk", "use_title", "e5_entitle", "bm25_chunk_tr", "bm25_entitle"],
    "F2) F1 with USE title+chunk": ["use_tchunk", "use_title", "e5_entitle", "bm25_chunk_tr", "bm25_entitle"],
    "F3) F1 with both USE chunk kinds": ["use_chunk", "use_tchunk", "use_title", "e5_entitle", "bm25_chunk_tr", "bm25_entitle"],
    "F4) F1 without e5 (USE en-TOC instead)": ["use_chunk", "use_title", "use_entitle", "bm25_chunk_tr", "bm25_entitle"],
    "g7) g2 without USE chunk": ["use_title", "e5_title", "e5_head", "use_entitle", "e5_entitle",
                                 "bm25_chunk_tr", "bm25_entitle"],
}


def dev():
    C, units, qs = book_split("dev")
    C = {k: v for k, v in C.items()}
    grp = np.array([q["group"] for q in qs])
    lang = np.array([q["lang"] for q in qs])
    G = E.gold_mask(qs, units, None)
    print(f"dev questions: {dict(zip(*np.unique(grp, return_counts=True)))}; units {len(units)}")
    rows = []
    results = {}
    for norm in ("z", "minmax"):
        Z = {k: E.normalise(v, norm) for k, v in C.items()}
        for name, names in CONFIGS.items():
            if any(n not in Z for n in names):
                continue
            if len(names) == 1 and norm == "minmax":
                continue
            # per query language: CV separately within zh and within en questions
            hit, rr = np.zeros(len(qs)), np.zeros(len(qs))
            wl = {}
            for L in ("zh", "en"):
                m = lang == L
                if len(names) == 1:
                    h, r = E.metrics(E.ranks(Z[names[0]][m], G[m]))
                    w = [{names[0]: 1.0}]
                else:
                    h, r, w = E.cv({k: v[m] for k, v in Z.items()}, G[m], names, strata=(grp[m] == "en-tr").astype(int))
                hit[m], rr[m] = h, r
                wl[L] = w
            cells = [fmt(hit[grp == g], rr[grp == g]) for g in GROUPS]
            tag = name if len(names) == 1 else f"{name} [{norm}]"
            rows.append(f"| {tag} | " + " | ".join(cells) + " |")
            results[tag] = {"per_lang_weights": wl}
            if len(names) > 1 and name.startswith(("g2", "g6", "F1")):
                # one parameter set for both languages
                h, r, w = E.cv(Z, G, names, strata=np.searchsorted(GROUPS, grp))
                cells = [fmt(h[grp == g], r[grp == g]) for g in GROUPS]
                rows.append(f"| {name} [{norm}, one set for zh+en] | " + " | ".join(cells) + " |")
                results[tag + " one-set"] = {"weights": w}
    print("| config | zh hit@1 / MRR@10 | en ch01-04 | en other |\n|---|---|---|---|")
    print("\n".join(rows))
    json.dump(results, open(E.T.data.CACHE / "dev_weights.json", "w"), indent=1, default=float)


if __name__ == "__main__" and sys.argv[1] == "dev":
    {"dev": dev}[sys.argv[1]]()


def dup_onehot(units, rule):
    """Unit -> near-duplicate group (one-hot, U x U) from the union of sections rows in the corpus."""
    rows, u2, _ = E.units_of({"book", "proj"})
    jac = np.load(E.T.data.CACHE / "jac.npy")
    cont = np.load(E.T.data.CACHE / "cont.npy")
    M = (jac > 0.6) | (cont > 0.8) if rule == "both" else (jac > 0.6)
    groups_all = E.dup_groups(u2, rows, M.astype(float), 0.5)
    gid = dict(zip(u2, groups_all))
    g = np.array([gid[u] for u in units])
    _, g = np.unique(g, return_inverse=True)
    onehot = np.zeros((len(units), g.max() + 1), np.float32)
    onehot[np.arange(len(units)), g] = 1
    return g, onehot


def report(hit, rr, mask):
    h, hl, hh = E.boot(hit[mask])
    m, ml, mh = E.boot(rr[mask])
    return f"{h:.3f} [{hl:.2f}-{hh:.2f}] / {m:.3f} [{ml:.2f}-{mh:.2f}] (n={mask.sum()})"


def test(names, norm, weights=None):
    """Fit per-language weights on all of book dev (or take them as JSON); evaluate once on book
    test and on chapter 10."""
    names = names.split(",")
    C, units, qs = book_split("dev")
    Z = {k: E.normalise(v, norm) for k, v in C.items()}
    lang = np.array([q["lang"] for q in qs])
    G = E.gold_mask(qs, units, None)
    W = ({L: E.fit({k: v[lang == L] for k, v in Z.items()}, G[lang == L], names) for L in ("zh", "en")}
         if weights is None else json.loads(weights))
    print("weights fitted on all dev:", json.dumps(W))
    out = [f"weights (fitted on book dev, {norm} normalisation): {json.dumps(W)}", "",
           "| set | corpus | dedup | group | hit@1 [95% CI] / MRR@10 [95% CI] |", "|---|---|---|---|---|"]

    def run(qs_, C_, units_, setname, corpus, dedup):
        Z_ = {k: E.normalise(v, norm) for k, v in C_.items()}
        lang_ = np.array([q["lang"] for q in qs_])
        groups, onehot = (dup_onehot(units_, dedup) if dedup else (None, None))
        G_ = E.gold_mask(qs_, units_, groups)
        hit, rr = np.zeros(len(qs_)), np.zeros(len(qs_))
        for L in ("zh", "en"):
            m = lang_ == L
            if m.any():
                h, r = E.metrics(E.ranks(E.fuse({k: v[m] for k, v in Z_.items()}, W[L]), G_[m], onehot))
                hit[m], rr[m] = h, r
        grp = np.array([q["group"] for q in qs_])
        for g in sorted(set(grp)):
            out.append(f"| {setname} | {corpus} | {dedup or 'no'} | {g} | {report(hit, rr, grp == g)} |")

    Ct, ut, qt = book_split("test")
    for dd in (None, "both"):
        run(qt, Ct, ut, "book test", "book", dd)
    off = len(T.BQ)
    for split in ("dev", "test"):
        psel = [off + i for i, q in enumerate(T.PQ) if q["split"] == split and q["relevant"]]
        pqs = [ALLQ[i] for i in psel]
        Cp, up = E.components({"proj"}, psel)
        run(pqs, Cp, up, f"ch10 {split}", "ch10 alone", None)
        Cb, ub = E.components({"book", "proj"}, psel)
        for dd in (None, "jaccard", "both"):
            run(pqs, Cb, ub, f"ch10 {split}", "book + ch10", dd)
    print("\n".join(out))
    (E.T.data.CACHE / f"test_{norm}_{'given' if weights else 'fit'}.md").write_text("\n".join(out))


if __name__ == "__main__" and sys.argv[1] == "test":
    test(sys.argv[2], sys.argv[3], *sys.argv[4:])


def sub():
    """e5 over chunks on a subset of chapters (the book restricted to T.E5_CHAPTERS), dev questions there."""
    qsel = [i for i, q in enumerate(T.BQ) if q["split"] == "dev" and q["relevant"]
            and all(r.split("/")[0] in T.E5_CHAPTERS for r in q["relevant"])]
    C, units = E.components({"sub"}, qsel)
    qs = [T.BQ[i] for i in qsel]
    grp = np.array([q["group"] for q in qs])
    lang = np.array([q["lang"] for q in qs])
    G = E.gold_mask(qs, units, None)
    base = ["use_chunk", "use_title", "e5_title", "e5_head", "use_entitle", "e5_entitle", "bm25_chunk_tr", "bm25_entitle"]
    cfgs = {"e5 chunk": ["e5_chunk"], "e5 chunk + e5 title": ["e5_chunk", "e5_title"], "USE chunk": ["use_chunk"],
            "BM25 chunk_tr": ["bm25_chunk_tr"], "e5 title+200": ["e5_head"],
            "g2 (no e5 chunk)": base, "g2 + e5 chunk": base + ["e5_chunk"],
            "F2": ["use_tchunk", "use_title", "e5_entitle", "bm25_chunk_tr", "bm25_entitle"],
            "F2 + e5 chunk": ["use_tchunk", "use_title", "e5_entitle", "bm25_chunk_tr", "bm25_entitle", "e5_chunk"],
            "g2 - e5 title+200 + e5 chunk": [b for b in base if b != "e5_head"] + ["e5_chunk"]}
    print(f"subset {sorted(T.E5_CHAPTERS)}: {len(units)} units, questions {dict(zip(*np.unique(grp, return_counts=True)))}")
    print("| config (subset) | zh | en ch01-04 | en other |\n|---|---|---|---|")
    Z = {k: E.normalise(v, "z") for k, v in C.items()}
    for name, names in cfgs.items():
        hit, rr = np.zeros(len(qs)), np.zeros(len(qs))
        for L in ("zh", "en"):
            m = lang == L
            if len(names) == 1:
                h, r = E.metrics(E.ranks(Z[names[0]][m], G[m]))
            else:
                h, r, _ = E.cv({k: v[m] for k, v in Z.items()}, G[m], names)
            hit[m], rr[m] = h, r
        print(f"| {name} | " + " | ".join(fmt(hit[grp == g], rr[grp == g]) for g in GROUPS) + " |")


if __name__ == "__main__" and sys.argv[1] == "sub":
    sub()


def joint(names_list):
    """CV on book dev + chapter-10 dev (chapter inside the book, near-duplicates merged) jointly."""
    C, units, qs = book_split("dev")
    off = len(T.BQ)
    psel = [off + i for i, q in enumerate(T.PQ) if q["split"] == "dev" and q["relevant"]]
    pqs = [ALLQ[i] for i in psel]
    Cp, up = E.components({"book", "proj"}, psel)
    Ca, ua = E.components({"proj"}, psel)
    groups, onehot = dup_onehot(up, "both")
    out = []
    for norm in ("z",):
        blocks = []
        for Cx, ux, qx, gr, oh in ((C, units, qs, None, None), (Cp, up, pqs, groups, onehot)):
            Z = {k: E.normalise(v, norm) for k, v in Cx.items()}
            blocks.append((Z, E.gold_mask(qx, ux, gr), oh, np.array([q["lang"] for q in qx]),
                           np.array([q["group"] for q in qx])))
        Za = {k: E.normalise(v, norm) for k, v in Ca.items()}
        Ga = E.gold_mask(pqs, ua, None)
        la = np.array([q["lang"] for q in pqs])
        for k in sorted(Za):
            for L in ("zh", "en"):
                h, r = E.metrics(E.ranks(Za[k][la == L], Ga[la == L]))
                out.append(f"single on ch10 alone dev {k} {L}: {h.mean():.3f}/{r.mean():.3f}")
        for names in names_list:
            res = {}
            for L in ("zh", "en"):
                bl = [(Z, G, oh, lang == L, grp) for Z, G, oh, lang, grp in blocks]
                rng = np.random.default_rng(11)
                folds = [rng.permutation(m.sum()) % 5 for _, _, _, m, _ in bl]
                hits = [np.zeros(m.sum()) for _, _, _, m, _ in bl]
                for f in range(5):
                    def sub(b, fo, keep):
                        Z, G, oh, m, _ = b
                        sel = np.flatnonzero(m)[keep]
                        return {k: v[sel] for k, v in Z.items()}, G[sel], oh
                    trb = [sub(b, fo, fo != f) for b, fo in zip(bl, folds)]
                    w = fit_multi(trb, names)
                    for bi, (b, fo) in enumerate(zip(bl, folds)):
                        Z, G, oh = sub(b, fo, fo == f)
                        hits[bi][fo == f] = E.metrics(E.ranks(E.fuse(Z, w), G, oh))[0]
                wall = fit_multi([sub(b, fo, np.ones(len(fo), bool)) for b, fo in zip(bl, folds)], names)
                res[L] = (hits, wall)
            line = [",".join(names), norm]
            for bi, nm in enumerate(("book", "ch10-in-book")):
                for L in ("zh", "en"):
                    hb = res[L][0][bi]
                    grp = blocks[bi][4][blocks[bi][3] == L]
                    for g in sorted(set(grp)):
                        line.append(f"{nm}:{g}={hb[grp == g].mean():.3f}")
            out.append(" | ".join(line) + f" | weights(all) zh={res['zh'][1]} en={res['en'][1]}")
    print("\n".join(out))


def fit_multi(blocks, names, passes=2):
    def obj(w):
        s = n = 0
        for Z, G, oh in blocks:
            h, m = E.metrics(E.ranks(E.fuse(Z, w), G, oh))
            s += (h + 0.5 * m).sum()
            n += len(h)
        return s / max(n, 1)
    best = max(names, key=lambda k: obj({k: 1.0}))
    w = {k: 0.0 for k in names}
    w[best] = 1.0
    cur = obj(w)
    for _ in range(passes):
        for k in names:
            for v in E.GRID:
                t = dict(w, **{k: v})
                if any(t.values()):
                    o = obj(t)
                    if o > cur + 1e-9:
                        cur, w = o, t
    return {k: v for k, v in w.items() if v}


if __name__ == "__main__" and sys.argv[1] == "joint":
    joint([n.split(",") for n in sys.argv[2:]])
