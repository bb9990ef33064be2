import json
import os
import subprocess
import sys

from conftest import REPO, SMALL_ZH


def rag(*args, cwd=REPO):
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run([sys.executable, "-m", "rag.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def test_search_json():
    out = rag("search", "什么是负迁移？", "-k", "3", "--json")
    assert out.returncode == 0, out.stderr
    hits = json.loads(out.stdout)
    assert hits[0]["section"] == "10.14"
    assert set(hits[0]) >= {"section", "chapter", "id", "title", "text", "score", "source", "start", "end"}
    assert hits[0]["id"] == f"{hits[0]['chapter']}/{hits[0]['section']}"


def test_errors_are_one_line_with_status_2(tmp_path):
    for args, message in [
        (("search", "   "), "empty"),
        (("search", "q", "-k", "0"), "k must be"),
        (("search", "q", "--mode", "fuzzy"), "unknown mode"),
        (("search", "q", "--index", str(tmp_path / "none")), "no index at"),
        (("build", "--corpus", str(tmp_path / "none"), "--index", str(tmp_path / "i")), "does not exist"),
        (("build", "--corpus", str(REPO / "corpus"), "--index", str(tmp_path / "i"), "--model", "nope/nope"),
         "not available offline"),
    ]:
        out = rag(*args)
        assert out.returncode == 2, (args, out.stderr)
        assert out.stderr.startswith("error: ") and message in out.stderr, out.stderr
        assert "Traceback" not in out.stderr


def test_build_then_search_and_auto_rebuild_when_stale(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "animals.zh.md").write_text(SMALL_ZH, encoding="utf-8")
    index = tmp_path / "index"
    out = rag("build", "--corpus", str(corpus), "--index", str(index))
    assert out.returncode == 0, out.stderr
    assert "3 chunks in 3 sections" in out.stdout
    (corpus / "animals.zh.md").write_text(SMALL_ZH.replace("金毛", "柯基"), encoding="utf-8")
    out = rag("search", "柯基", "--index", str(index), "--json", "-k", "1")
    assert out.returncode == 0, out.stderr
    assert "changed since the build; rebuilding" in out.stderr
    hits = json.loads(out.stdout)
    assert hits[0]["section"] == "1.2" and "柯基" in hits[0]["text"]


def test_odd_questions_through_the_cli():
    for q in ["🙂🙂", "a\x01b 负迁移", "什麼是負遷移？", "<script>x</script> negative transfer"]:
        out = rag("ask", q, "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["answer"]
    out = rag("ask", "迁移" * 1500)
    assert out.returncode == 2 and "limit is 2000" in out.stderr


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    command = next(line for line in ci.splitlines() if "pytest" in line)
    assert command in readme
