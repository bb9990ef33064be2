"""Per-component query latency (warm, one query at a time, OMP_NUM_THREADS=1)."""
import json
import time
import numpy as np
import evaluate as E
import texts as T
from embed import encoder

qs = [q["question"] for q in T.BQ[:40]]
res = {}
for name in ("use", "e5"):
    enc = encoder(name)
    enc(["warm"], True)
    t = []
    for q in qs:
        t0 = time.process_time(); enc([q], True); t.append(time.process_time() - t0)
    res[f"{name} query encode (CPU ms)"] = float(np.median(t) * 1000)
tok = E.tokenizer()
tok("热身 warm")
t = []
for q in qs:
    t0 = time.perf_counter(); tok(E.translate(q)); t.append(time.perf_counter() - t0)
res["jieba tokenize + translate"] = float(np.median(t) * 1000)
from rag.lexical import BM25Scorer, build_bm25
import tempfile
from pathlib import Path
with tempfile.TemporaryDirectory() as d:
    t0 = time.process_time(); build_bm25([tok(x) for x in E.TITLED], Path(d)); res["BM25 build CPU s (tokenize+index chunks)"] = time.process_time() - t0
    sc = BM25Scorer(Path(d))
    toks = [tok(q) for q in qs]
    t = []
    for x in toks:
        t0 = time.perf_counter(); sc.scores(x); t.append(time.perf_counter() - t0)
    res["BM25 score (1989 chunks)"] = float(np.median(t) * 1000)
V = np.random.default_rng(0).standard_normal((2000, 512)).astype(np.float32)
q = V[0]
t0 = time.perf_counter()
for _ in range(100):
    V @ q
res["dense matmul 2000x512"] = (time.perf_counter() - t0) * 10
print(json.dumps(res, indent=1))
json.dump(res, open(T.data.CACHE / "latency.json", "w"), indent=1)
