"""Near-duplicate sections: char-5-gram Jaccard over normalised bodies, pair counts per threshold."""
import json
import numpy as np
import evaluate as E
import texts as T

rows, units, _ = E.units_of({"book", "proj"})
import sys
cont = len(sys.argv) > 1
jac = E.near_duplicates(rows, containment=cont)
np.save(T.data.CACHE / ("cont.npy" if cont else "jac.npy"), jac)
out = {}
for th in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
    a, b = np.nonzero(np.triu(jac > th))
    ib = [(x, y) for x, y in zip(a, b) if T.ALL[rows[x]].corpus == "book" and T.ALL[rows[y]].corpus == "book"]
    cross = [(x, y) for x, y in zip(a, b) if {T.ALL[rows[x]].corpus, T.ALL[rows[y]].corpus} == {"book", "proj"}]
    out[th] = {"book_pairs": len(ib), "book_proj_pairs": len(cross)}
print(json.dumps(out))
a, b = np.nonzero(np.triu(jac > 0.6))
from collections import Counter
print(Counter((T.ALL[rows[x]].qid.split("/")[0], T.ALL[rows[y]].qid.split("/")[0]) for x, y in zip(a, b)))
for x, y in list(zip(a, b)):
    if np.random.default_rng(int(x)).random() < 0.08:
        print(f"{jac[x,y]:.2f}", T.ALL[rows[x]].qid, T.ALL[rows[x]].title[:30], "|", T.ALL[rows[y]].qid, T.ALL[rows[y]].title[:30])
# borderline 0.4-0.6
a, b = np.nonzero(np.triu((jac > 0.4) & (jac <= 0.6)))
for x, y in list(zip(a, b))[:12]:
    print(f"border {jac[x,y]:.2f}", T.ALL[rows[x]].qid, T.ALL[rows[x]].title[:30], "|", T.ALL[rows[y]].qid, T.ALL[rows[y]].title[:30])
