"""Fault injection on the bundled chapter (not part of the test suite): builds SIGKILLed at every phase.

    python benchmarks/faults.py [--rounds 200] [--out benchmarks/faults_results.json] [--fixed-window]

Two reader processes load and search the index in a loop while, round after round, a build of one of
four variants of corpus/ (fake encoder) is SIGKILLed, and every fifth round two builds run at once.
Kill times come from calibration builds timed under the same load (see tests/fault_worker.py): half
uniform over the whole build, half at a build step (each in turn) seen in the index directory (a new `.tmp-*`, the
version renamed into place, the `.CURRENT-<pid>` pointer, the `CURRENT` swap) plus a uniform delay.
Prints and writes a JSON summary: reads, reader errors, failed builds, corrupt indexes after a
round, data loss, and where the kills landed. docs/RELIABILITY.md reports the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from fault_worker import campaign  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "faults_results.json")
    ap.add_argument("--fixed-window", action="store_true",
                    help="the old kill window (0.2x-1.2x of one build timed before the readers), for comparison")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="rag-faults-") as work:
        result = campaign(Path(work), args.rounds, fixed_window=args.fixed_window, log=lambda s: print(s, file=sys.stderr, flush=True))
    text = json.dumps(result, ensure_ascii=False, indent=1)
    print(text)
    args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
