"""Execute tutorial notebooks from scratch, in place (to commit their outputs) or into another folder.

usage: python tutorials/execute.py [--out DIR] [NOTEBOOK.ipynb ...]    (default: every tutorial)

Each notebook runs with ``tutorials/`` as its working directory, so its data paths
(``../../shared/data``) resolve wherever this script is started from. Set ``OMP_NUM_THREADS`` to fix
the number of CPU threads (a seeded result is bit-identical for a given thread count).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def execute(notebook: Path, out: Path, *, timeout: int = 1800) -> float:
    """Run every cell of ``notebook`` in a fresh kernel, write the executed notebook to ``out``, return seconds."""
    import nbformat
    from nbclient import NotebookClient

    book = nbformat.read(notebook, as_version=4)
    start = time.perf_counter()
    NotebookClient(
        book, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}
    ).execute()
    nbformat.write(book, out)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("notebooks", nargs="*", type=Path, default=sorted(HERE.glob("*.ipynb")))
    parser.add_argument("--out", type=Path, help="folder for the executed copies (default: in place)")
    args = parser.parse_args()
    for notebook in args.notebooks:
        out = notebook if args.out is None else args.out / notebook.name
        print(f"{notebook.name}: {execute(notebook, out):.0f} s")


if __name__ == "__main__":
    main()
