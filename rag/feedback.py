"""Feedback log: thumbs up/down on answers, appended as question-set lines that `rag eval` reads."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from .types import RagError

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
    """Append one JSON line: the whole record or nothing; never rewrites what is there.

    The line is ASCII (json.dumps escapes everything else, U+2028 and U+0085 included), so a
    reader splitting on "\\n" sees one record a line. It is written with a single write under
    a lock (thread and process safe). If a writer was killed mid-line, the next record starts
    on a new line, so only the torn record is lost; a short write (disk full) is cut back off.
    """
    path = Path(path)
    data = (json.dumps(record, ensure_ascii=True) + "\n").encode("ascii")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _LOCK:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                if fcntl:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data  # a torn line from a killed writer: keep ours whole
                try:
                    written = os.write(fd, data)
                except OSError:
                    os.ftruncate(fd, size)
                    raise
                if written != len(data):
                    os.ftruncate(fd, size)
                    raise OSError(28, "short write (disk full?)")
                os.fsync(fd)
            finally:
                os.close(fd)  # closing releases the flock
    except OSError as e:
        raise RagError(f"cannot write feedback to {path} ({e.strerror or e}). Choose a writable file with "
                       "rag serve --feedback FILE.") from None


def check_feedback_path(path: Path) -> None:
    """Raise RagError now (at start-up) if feedback could not be appended to path later."""
    path = Path(path)
    if path.is_dir():
        raise RagError(f"--feedback {path} is a directory; pass a file path, e.g. {path / 'feedback.jsonl'}.")
    parent = next((p for p in (path.parent, *path.parent.parents) if p.exists()), None)
    if path.exists():
        ok = os.access(path, os.W_OK)
    else:
        ok = parent is not None and parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)
    if not ok:
        raise RagError(f"cannot write feedback to {path} (not writable). Choose a writable file with "
                       "--feedback FILE.")


VOTES = ("up", "down", "withdrawn")
REASONS = ("different_section", "not_covered", "wrong_language", "other")


def message_feedback_record(message: dict, vote: str, reason: str | None = None, relevant: list[str] | None = None,
                            comment: str = "") -> dict:
    """A question-set line rating one chat message, with what it rates.

    `message` holds the rated message as the chat recorded it: message_id, question, lang (the
    question's), answer, cited (section ids), index (the index/corpus hash). The line carries
    `relevant` only when the rating says which sections answer the question: 👍 (the cited ones),
    👎 "a different section" (the one named) or "not covered" ([]). A later line with the same
    message_id supersedes it (see `latest_ratings`); `vote: "withdrawn"` takes a rating back.
    """
    if vote not in VOTES or (reason is not None and reason not in REASONS):
        raise ValueError(f"bad rating {vote!r}/{reason!r}")
    rec = feedback_record(message["question"], message["lang"], [], vote, message["cited"])
    del rec["relevant"]
    if vote == "up":
        rec["relevant"] = list(message["cited"])
    elif reason == "different_section":
        rec["relevant"] = list(relevant or [])
    elif reason == "not_covered":
        rec["relevant"] = []
    rec.update({"message_id": message["message_id"], "answer": message["answer"], "index": message["index"],
                **({"reason": reason} if reason else {}), **({"comment": comment} if comment else {})})
    return rec


def latest_ratings(records: list[dict]) -> list[dict]:
    """The records that count: per message_id only the last one, and only if it labels the question.

    Records without message_id (question sets, older feedback) all count, in order.
    """
    def mid(r):  # a message id, or None (also for one of a kind that cannot be a key, from a damaged line)
        m = r.get("message_id") if isinstance(r, dict) else None
        return m if isinstance(m, (str, int)) and not isinstance(m, bool) else None

    last = {mid(r): i for i, r in enumerate(records) if mid(r) is not None}
    return [r for i, r in enumerate(records)
            if mid(r) is None or (last[mid(r)] == i and r.get("feedback") != "withdrawn"
                                           and "relevant" in r)]
