"""Debian's chromium for the browser tests: where it is, how it is launched, where screenshots go.

Playwright (pip) drives it through ``executable_path``; Playwright's own browser download is
never used. The flags turn off what would reach the network, so a page that needed it fails.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).parent / "artifacts"

needs_chromium = pytest.mark.skipif(not CHROMIUM.exists() and shutil.which("chromium") is None,
                                    reason="needs Debian's chromium: apt-get install -y chromium")


def executable() -> str:
    return str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium"))
