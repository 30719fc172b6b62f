"""What a reader sees, in a real browser: headless Chromium driven by Playwright.

    python tools/build_site.py && pytest browser_tests -n 0   # what .ci/run does after the suite

Not part of `pytest --nbval` (the suite's 4-minute budget): .ci/run runs it after the suite. It needs
Debian's `chromium` (Playwright cannot download its own browser on the course's machines) and the
packages of docs/requirements.txt; without them it fails and says how to install them, rather than
passing without having looked at anything.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "build" / "site"
SCREENSHOTS = ROOT / "build" / "screenshots"  # ignored by git: look at them, never commit them
# Flags that keep Chromium off the network (this machine has none) and out of a shared profile.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


def chromium_path() -> str:
    for candidate in (os.environ.get("COURSE_CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser"),
                      "/usr/bin/chromium"):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.fail("No Chromium found. Install it with `sudo apt-get install chromium` (Debian/Ubuntu), or point "
                "COURSE_CHROMIUM at a Chromium or Chrome executable; then run `pytest browser_tests -n 0` again.",
                pytrace=False)


@pytest.fixture(scope="session")
def browser_context():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is not installed: pip install -r docs/requirements.txt", pytrace=False)
    executable = chromium_path()
    profile = tempfile.mkdtemp(prefix="course-chromium-")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=executable, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900})
        yield context
        context.close()
    shutil.rmtree(profile, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def site_url():
    if not (SITE / "index.html").exists():
        pytest.fail("No built site in build/site: run `python tools/build_site.py` first.", pytrace=False)
    handler = functools.partial(QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *_args) -> None:  # one line per file served would drown the test's output
        pass


@pytest.fixture(scope="session")
def jupyterlab_url():
    """A JupyterLab server on a copy of the notebooks (JupyterLab saves what it opens; the committed
    files must not change), with the package and data linked beside them as in a clone."""
    work = Path(tempfile.mkdtemp(prefix="course-lab-"))
    shutil.copytree(ROOT / "notebooks", work / "notebooks")
    for name in ("course_utils", "data"):
        (work / name).symlink_to(ROOT / name)
    # Render every cell (JupyterLab 4 draws only the cells in view by default), and start from no
    # saved workspace, so the test sees the whole notebook the same way each time.
    tracker = work / ".settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text('{"windowingMode": "none"}', encoding="utf-8")
    news = work / ".settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text('{"fetchNews": "false"}', encoding="utf-8")  # no "get notified about news?" over the cells
    port = free_port()
    environment = {**os.environ, "COURSE_MODE": "smoke", "JUPYTER_CONFIG_DIR": str(work / ".jupyter"),
                   "JUPYTER_RUNTIME_DIR": str(work / ".runtime")}
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--IdentityProvider.token=",
         "--ServerApp.allow_root=True", "--ServerApp.disable_check_xsrf=True", f"--ServerApp.root_dir={work}",
         f"--LabApp.user_settings_dir={work / '.settings'}", f"--LabApp.workspaces_dir={work / '.workspaces'}",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=environment, cwd=work)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/api/status", timeout=2)
            break
        except OSError:
            if process.poll() is not None:
                pytest.fail(f"JupyterLab did not start:\n{process.stdout.read().decode()[-3000:]}", pytrace=False)
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("JupyterLab did not answer within 120 s", pytrace=False)
    yield url, work
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    shutil.rmtree(work, ignore_errors=True)
