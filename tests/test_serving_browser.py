"""The kws serve page in a real headless Chromium (Debian's, driven by Playwright): a WAV upload
shows the right label, a non-WAV upload shows an error, the microphone path records (Chromium's
fake capture device plays a fixture clip), encodes 16 kHz WAV in JS and shows a prediction."""
from __future__ import annotations

import os
import re
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from test_serving_helpers import FIXTURE_WORD, write_fixture_clip

CHROMIUM = os.environ.get("KWS_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
START_TIMEOUT_S = 60
UI_TIMEOUT_MS = 20000
LISTENING = re.compile(r"listening on (http://[\d.]+:\d+/)")

pytest.importorskip("keras")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install playwright)")
if not Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
    pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def serve_url(trained_run):
    """``kws serve`` on a free port (--port 0) with the fixture model; yields the page URL."""
    kws = Path(sys.executable).with_name("kws")
    cmd = [str(kws)] if kws.exists() else [sys.executable, "-m", "kws.cli"]
    proc = subprocess.Popen(cmd + ["serve", "--port", "0", "-m", str(trained_run)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True).start()
    seen, url = [], None
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while url is None:
            if time.monotonic() > deadline or (proc.poll() is not None and lines.empty()):
                pytest.fail("kws serve did not start:\n" + "".join(seen))
            try:
                line = lines.get(timeout=1.0)
            except queue.Empty:
                continue
            seen.append(line)
            match = LISTENING.search(line)
            url = match.group(1) if match else None
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_fixture_clip(tmp_path_factory.mktemp("browser_clips") / f"{FIXTURE_WORD}.wav")


@pytest.fixture(scope="module")
def browser(clip, tmp_path_factory):
    """Headless Debian Chromium; its fake microphone plays the fixture clip."""
    flags = CHROMIUM_FLAGS + ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                              f"--use-file-for-fake-audio-capture={clip}"]
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=flags)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, serve_url):
    context = browser.new_context()
    context.grant_permissions(["microphone"], origin=serve_url.rstrip("/"))
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(serve_url)
    yield page
    context.close()


def test_page_upload_shows_label(page, clip):
    sync_api.expect(page.locator("#model-info")).to_contain_text(FIXTURE_WORD)
    page.set_input_files("#file-input", str(clip))
    first = page.locator("#labels li .label-name").first
    sync_api.expect(first).to_have_text(FIXTURE_WORD)
    sync_api.expect(page.locator("#labels li")).to_have_count(3)
    sync_api.expect(page.locator("#error")).to_be_hidden()
    assert page.locator("#spectrogram").evaluate("c => c.width") > 1


def test_page_bad_upload_shows_error(page, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("this is not audio")
    page.set_input_files("#file-input", str(bad))
    error = page.locator("#error")
    sync_api.expect(error).to_be_visible()
    sync_api.expect(error).to_contain_text("not a readable audio file")
    assert "Traceback" not in error.inner_text()


def test_page_url_error_shown(page):
    page.fill("#url-input", "http://127.0.0.1:1/nothing.wav")  # this machine: refused without a connection
    page.click("#url-button")
    sync_api.expect(page.locator("#error")).to_contain_text("loopback address; refused")


def test_page_microphone_recording(page):
    page.click("#record-button")
    sync_api.expect(page.locator("#labels li")).to_have_count(3)
    sync_api.expect(page.locator("#error")).to_be_hidden()
    sync_api.expect(page.locator("#result-input")).to_have_text("recording")
    # the fake device loops the fixture clip; the loudest 1 s window of the recording holds the word
    sync_api.expect(page.locator("#labels li .label-name").first).to_have_text(FIXTURE_WORD)
