"""Bilingual extractive Q&A over a textbook chapter: offline embeddings, FAISS + BM25, cited quotes."""

__version__ = "0.1.0"

from .answer import answer  # noqa: E402
from .index import build_index, load_index  # noqa: E402
from .retriever import Retriever  # noqa: E402
from .types import (  # noqa: E402
    Answer, Chunk, Citation, DamagedIndexError, Hit, IndexMissingError, RagError, Section, StaleIndexError,
)

__all__ = ["Retriever", "answer", "build_index", "load_index", "Answer", "Chunk", "Citation", "Hit", "Section",
           "RagError", "IndexMissingError", "StaleIndexError", "DamagedIndexError", "__version__"]
