"""End to end in a real browser: `factorkit serve` on a tiny trained run, driven by Playwright through
Debian's Chromium — upload a PNG, move a slider, see the edit change, download it; upload a
non-image and read the message. Skipped (one line) where Chromium or Playwright is missing, except
under CI (``CI`` set), where it must run."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import factorkit as fk

from .test_serve import free_port, wait_listening

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def _playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    missing = "playwright is not installed" if sync_playwright is None else (
        None if Path(CHROMIUM).exists() else f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"the browser test must run under CI: {missing}")
        pytest.skip(missing)
    return sync_playwright


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    sync_playwright = _playwright()
    root = tmp_path_factory.mktemp("serve")
    ds = fk.data.load("faces", "train", size=240)
    model = fk.models.build("mddae", ds, seed=0, conv=(8, 8, 16, 16), fc=(32,), z_dim=6)
    fk.train(model, ds, steps=3, out=root / "mdd", batch_size=8, num_workers=0, progress=False, checkpoint_every=0,
             image_every=0)
    model = fk.models.build("mixing", ds, seed=0, num_chunks=4, chunk_size=3, width=0.125, cls_width=0.05)
    fk.train(model, ds, steps=3, out=root / "mix", batch_size=8, num_workers=0, progress=False, checkpoint_every=0,
             image_every=0)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "factorkit", "serve", str(root), "--port", str(port),
                             "--judge", "off"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        wait_listening(port, proc)
        yield sync_playwright, f"http://127.0.0.1:{port}/", root
    finally:
        proc.terminate()
        proc.wait(10)


def test_upload_slide_download_and_a_bad_upload(served, tmp_path):
    sync_playwright, url, _ = served
    face = tmp_path / "face.png"
    Image.fromarray((fk.data.load("faces", "test", size=240).images_at([5])[0].permute(1, 2, 0).numpy() * 255)
                    .astype(np.uint8)).resize((100, 100)).save(face)
    notes = tmp_path / "notes.png"
    notes.write_text("this is not an image")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(accept_downloads=True)
        errors, outside = [], []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: None if r.url.startswith((url, "data:", "blob:")) else outside.append(r.url))
        page.goto(url)
        page.wait_for_function("document.getElementById('run').options.length == 2")
        page.select_option("#run", "1")  # while the first run's examples still load: the later pick wins
        page.wait_for_function("document.getElementById('about').textContent.startsWith('mixing')")
        page.wait_for_function("document.getElementById('examples').children.length >= 6")
        page.wait_for_timeout(800)
        assert page.locator("#examples img").count() == 6 and page.is_visible("#swap-panel")
        assert not page.is_visible("#edit-panel") and page.locator("#swap-controls input").count() == 4

        page.select_option("#run", "0")
        page.wait_for_function("document.getElementById('about').textContent.startsWith('mddae')")
        page.wait_for_function("document.getElementById('img-input').src.startsWith('data:image/png')")
        assert page.locator("#edit-controls input[type=range]").count() == 7  # one slider per attribute

        page.set_input_files("#file", str(face))
        page.wait_for_function("document.getElementById('message').textContent.includes('converted face.png')")
        assert "from 100x100 RGB to 64x64 RGB" in page.text_content("#message")
        before = page.get_attribute("#img-edit", "src")

        slider = page.locator("#edit-controls input[data-name=Smiling]")
        slider.fill("1.9")
        page.wait_for_function("document.getElementById('edit-caption').textContent.includes('Smiling = 1.9')")
        after = page.get_attribute("#img-edit", "src")
        assert after != before  # the edited image changed

        with page.expect_download() as info:
            page.click("#download")
        path = tmp_path / "download.png"
        info.value.save_as(path)
        got = np.asarray(Image.open(path))
        import base64

        shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(after.split(",", 1)[1]))))
        assert got.shape == (64, 64, 3) and np.array_equal(got, shown)  # the file is the edit on screen

        page.click("#reset")  # back to the reconstruction, the slider back where the model reads the image
        assert page.get_attribute("#img-edit", "src") == page.get_attribute("#img-rec", "src")
        assert abs(float(slider.input_value()) - 1.9) > 0.1

        page.evaluate("""(bytes) => {  // drag-and-drop of a file onto the drop zone
          const dt = new DataTransfer();
          dt.items.add(new File([new Uint8Array(bytes)], "dropped.png", {type: "image/png"}));
          document.getElementById("drop").dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
        }""", list(face.read_bytes()))
        page.wait_for_function("document.getElementById('message').textContent.includes('converted dropped.png')")

        kept = page.get_attribute("#img-edit", "src")
        page.set_input_files("#file", str(notes))
        page.wait_for_function("document.getElementById('message').textContent.includes('not a format PIL knows')")
        assert page.text_content("#message").startswith("Could not use notes.png:")
        assert page.get_attribute("#img-edit", "src") == kept  # the work on screen is kept
        assert not errors

        page.goto(url + "docs")  # the JSON API's Swagger UI renders offline
        page.wait_for_function("document.querySelectorAll('.opblock-summary-path').length >= 9", timeout=20000)
        assert "set attributes" in page.inner_text("body")
        assert not errors and not outside, outside
        browser.close()
