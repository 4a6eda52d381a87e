"""Open the built HTML in headless Chromium and check that every tutorial page shows its figures.

usage: python docs/check_html.py [docs/_build/html] [--screenshots DIR]

For each page under ``tutorials/``, Chromium renders the page (``--dump-dom``, after scripts ran);
the check fails when a page has no figure, or when a figure's ``src`` is not a PNG in the build.
Every API page must show a rendered signature (not the raw autodoc directive).
With ``--screenshots`` it also saves a screenshot of every tutorial page for a person to look at.
Needs Debian's ``chromium`` (``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

PNG = b"\x89PNG\r\n\x1a\n"


def chromium(*args: str) -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        sys.exit("chromium not found: apt-get install chromium")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files", *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("html", nargs="?", type=Path, default=Path("docs/_build/html"))
    parser.add_argument("--screenshots", type=Path)
    args = parser.parse_args()
    pages = sorted((args.html / "tutorials").glob("*.html"))
    if not pages:
        sys.exit(f"no tutorial pages under {args.html / 'tutorials'}: build the docs first")
    failed = False
    for page in pages:
        dom = chromium("--dump-dom", page.resolve().as_uri())
        sources = re.findall(r'<img[^>]*\ssrc="([^"]+)"', dom)
        bad = [
            s for s in sources if not (page.parent / s).is_file() or (page.parent / s).read_bytes()[:8] != PNG
        ]
        print(f"{page.name}: {len(sources)} figures, {len(bad)} missing")
        failed |= not sources or bool(bad)
        if args.screenshots:
            args.screenshots.mkdir(parents=True, exist_ok=True)
            shot = (args.screenshots / f"{page.stem}.png").resolve()
            chromium(
                f"--screenshot={shot}",
                "--window-size=1280,2400",
                "--hide-scrollbars",
                page.resolve().as_uri(),
            )
    for page in sorted((args.html / "generated").glob("*.html")):
        dom = chromium("--dump-dom", page.resolve().as_uri())
        rendered = re.search(r'<dl class="py (function|class)', dom) and ".. auto" not in dom
        print(f"{page.name}: {'rendered' if rendered else 'NOT RENDERED'}")
        failed |= not rendered
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
