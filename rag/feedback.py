"""Feedback log: thumbs up/down on answers, appended as question-set lines that `rag eval` reads."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: the in-process lock still orders our own writers
    fcntl = None

_LOCK = threading.Lock()


def default_feedback_path() -> Path:
    """Under the user's data directory ($XDG_DATA_HOME or ~/.local/share), never inside the package."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "ch10-rag" / "feedback.jsonl"


def feedback_record(question: str, lang: str, relevant: list[str], vote: str, cited: list[str]) -> dict:
    """A question-set line ({id, question, lang, relevant}) with what the user said about the answer."""
    now = time.time()
    return {"id": f"fb-{int(now * 1000)}-{os.getpid()}-{threading.get_ident() % 10000}", "question": question,
            "lang": lang, "relevant": list(relevant), "feedback": vote, "cited": list(cited),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}


def append_feedback(path: Path, record: dict) -> None:
    """Append one JSON line with a single write under a lock (thread and process safe); never rewrites."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
    with _LOCK:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if fcntl:
                fcntl.flock(fd, fcntl.LOCK_EX)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)  # closing releases the flock
