"""Worker processes for the build fault-injection tests (fast fake encoder, no model).

    python tests/fault_worker.py build CORPUS INDEX       build an index
    python tests/fault_worker.py read INDEX STOP OUT      load and search in a loop until STOP exists;
                                                          one line per load to OUT: chunk count or error
"""

import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import FakeEncoder  # noqa: E402
from rag.index import build_index, load_index  # noqa: E402
from rag.retriever import Retriever  # noqa: E402


def read(index: Path, stop: Path, out: Path) -> None:
    encoder = FakeEncoder()
    with open(out, "w", encoding="utf-8") as f:
        while not stop.exists():
            try:
                idx = load_index(index, check_corpus=False)
                hits = Retriever(idx, encoder).search("猫喜欢睡觉", k=3)
                assert hits and hits[0].section == "1.1", hits
                f.write(f"{len(idx.chunks)}\n")
            except BaseException:  # noqa: BLE001 - every failure is a finding
                f.write("ERROR " + traceback.format_exc().replace("\n", " | ") + "\n")
            f.flush()


if __name__ == "__main__":
    if sys.argv[1] == "build":
        build_index(Path(sys.argv[2]), Path(sys.argv[3]), FakeEncoder())
    else:
        read(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
