"""Debian's Chromium, headless, for the browser tests and screenshots.

    python tests/python/headless_chromium.py install             # install it if missing (root)
    python tests/python/headless_chromium.py screenshot URL PNG  # full-page screenshot of a page

The tests drive it through Playwright's Python package (pinned in requirements-dev.txt),
which talks to the browser we name (/usr/bin/chromium) and never downloads one of its
own. Run as root, `install` uses apt-get; otherwise it says what to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

# Headless and quiet: no sandbox (root), no GPU, and no background connections,
# which this machine's closed network would refuse.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
PACKAGES = ("chromium", "fonts-dejavu-core")


class ChromiumMissing(RuntimeError):
    pass


def find_chromium() -> str | None:
    """The browser to use: $CHROMIUM, or Debian's chromium on the PATH."""
    named = os.environ.get("CHROMIUM")
    if named:
        return named if Path(named).exists() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def ensure_chromium() -> str:
    """The path of Chromium, installed with apt-get first when missing and root."""
    found = find_chromium()
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise ChromiumMissing(
            "Chromium is not installed: install Debian's package, "
            "`sudo apt-get install -y chromium` (or set CHROMIUM to a Chromium binary)"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("installing Debian's chromium (apt-get)...", file=sys.stderr)
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *PACKAGES]):
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise ChromiumMissing(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    found = find_chromium()
    if not found:
        raise ChromiumMissing("apt-get installed chromium, but it is not on the PATH")
    return found


def launch(playwright: Playwright) -> Browser:
    """A headless Chromium, started with a fresh profile in a temporary directory."""
    return playwright.chromium.launch(
        executable_path=ensure_chromium(), headless=True, args=list(FLAGS)
    )


def screenshot(url: str, out: Path, width: int = 1280) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(url, wait_until="load")
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
        finally:
            browser.close()


def main(argv: list[str]) -> int:
    try:
        if argv[:1] == ["install"]:
            path = ensure_chromium()
            version = subprocess.run([path, "--version"], capture_output=True, text=True)
            print(f"chromium: {path} ({version.stdout.strip()})")
            return 0
        if argv[:1] == ["screenshot"] and len(argv) == 3:
            target = argv[1] if "://" in argv[1] else Path(argv[1]).resolve().as_uri()
            screenshot(target, Path(argv[2]))
            print(f"screenshot: {argv[2]}")
            return 0
    except ChromiumMissing as exc:
        print(f"headless_chromium: {exc}", file=sys.stderr)
        return 1
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
