"""A screenshot of a self-contained HTML page (a run's or a study's report) in headless Chromium.

    python benchmarks/screenshot.py studies-out/seed/report.html docs/images/study_report_seed.png --height 2400

Debian's Chromium (``/usr/bin/chromium``), driven by Playwright with the flags this machine needs
(no sandbox as root, no GPU, no background networking). ``--height`` clips the page (0: all of it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import sync_playwright

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("page")
    ap.add_argument("out")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=0, help="clip to this many pixels from the top (0: the whole page)")
    args = ap.parse_args()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        page = browser.new_page(viewport={"width": args.width, "height": 900})
        page.goto(Path(args.page).resolve().as_uri())
        page.wait_for_load_state("load")
        if args.height:
            page.screenshot(path=args.out, clip={"x": 0, "y": 0, "width": args.width, "height": args.height},
                            full_page=True)
        else:
            page.screenshot(path=args.out, full_page=True)
        browser.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
