"""Build an index with the fast fake encoder (a subprocess for the build fault-injection tests).

usage: python tests/fault_build.py CORPUS INDEX [SEED]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import FakeEncoder  # noqa: E402
from rag.index import build_index  # noqa: E402

if __name__ == "__main__":
    build_index(Path(sys.argv[1]), Path(sys.argv[2]), FakeEncoder())
