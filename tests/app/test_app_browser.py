"""The app end to end in a real headless browser: ``axiomcam serve`` with the pretrained
MobileNetV2 started as a user starts it, Debian's Chromium driven by Playwright.

Set ``AXIOMCAM_SCREENSHOT=docs/app.png`` to write the README's screenshot from this test.
Outside CI the test is skipped when Chromium or Playwright is missing (``make setup``
installs both where it can); in CI (``CI=true``) their absence is a failure.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PIL import Image

from axiomcam.app.explorer import MAX_SIDE
from axiomcam.images import sample_image

CHROMIUM = "/usr/bin/chromium"
# no connection of Chromium's own (updates, safe browsing, sync): the page alone talks
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]
WAIT_MS = 120_000
#: every URL the page asked for, in every test of this module
REQUESTED: list[str] = []


def _missing_browser() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing (apt-get install chromium; scripts/setup.sh does it as root)"
    return None


@pytest.fixture(scope="module")
def server_url():
    """``axiomcam serve --port 0`` in a subprocess; its address from the line it prints."""
    process = subprocess.Popen(
        [sys.executable, "-m", "axiomcam", "serve", "--model", "mobilenet_v2", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout],
                     daemon=True).start()
    try:
        url = None
        while url is None:
            try:
                line = lines.get(timeout=120)
            except queue.Empty:
                raise AssertionError("axiomcam serve printed no address in 120 s") from None
            match = re.search(r"open (http://127\.0\.0\.1:\d+/)", line)
            url = match.group(1) if match else None
            assert process.poll() is None, f"axiomcam serve exited: {line}"
        yield url
    finally:
        process.terminate()
        process.wait(30)


@pytest.fixture(scope="module")
def page(server_url):
    missing = _missing_browser()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser test must run in CI: {missing}")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900},
                                      accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.on("request", lambda request: REQUESTED.append(request.url))
        page.goto(server_url)
        page.wait_for_selector("#layer option", state="attached")
        try:
            yield page
        finally:
            context.close()
            browser.close()


def jpeg(path: Path, image: Image.Image) -> Path:
    image.save(path, quality=92)
    return path


def test_upload_explain_two_methods_and_see_maps_and_axiom_numbers(page, server_url,
                                                                  tmp_path):
    # the default layer is marked and selected
    assert page.input_value("#layer") == "features.18"
    assert "default" in page.inner_text("#layer option:checked")
    page.set_input_files("#upload", str(jpeg(tmp_path / "chelsea.jpg",
                                             sample_image("chelsea"))))
    page.wait_for_selector("#top5 li >> nth=4", state="attached")
    top = page.locator("#top5 li").all_inner_texts()
    assert "cat" in top[0]  # Egyptian / tiger / tabby cat
    assert page.input_value("#target") == page.get_attribute("#top5 li >> nth=0", "data-index")
    # an inner layer, where Grad-CAM and XGrad-CAM differ (at features.18 they are equal)
    page.select_option("#layer", "features.17.conv.1")
    checked = page.eval_on_selector_all("#methods input:checked",
                                        "boxes => boxes.map(b => b.value)")
    assert checked == ["gradcam", "xgradcam"]
    page.click("#run")
    page.wait_for_function(
        "document.querySelectorAll('#results .card img.heat').length === 2 && "
        "[...document.querySelectorAll('#results img')].every(i => i.complete && "
        "i.naturalWidth > 0) && document.querySelector('#progress-box').hidden")
    assert page.inner_text("#message") == ""
    titles = page.locator("#results .card h3").all_inner_texts()
    assert titles == ["Grad-CAM", "XGrad-CAM"]
    numbers = {}
    for method in ("gradcam", "xgradcam"):
        card = page.locator(f"#results .card[data-method='{method}']")
        numbers[method] = {key: float(card.locator(f"dd[data-key='{key}']").inner_text())
                           for key in ("conservation-error", "sensitivity-error",
                                       "bias-share", "deletion-auc")}
        # the map is drawn at the image's own size over the image
        size = card.locator("img.heat").evaluate("i => [i.naturalWidth, i.naturalHeight]")
        assert size == [451, 300]
    # XGrad-CAM's weights are the ones that satisfy the sensitivity axiom best (the paper's
    # claim, lower on every composite image in docs/evaluation.md)
    assert numbers["xgradcam"]["sensitivity-error"] < numbers["gradcam"]["sensitivity-error"]
    assert numbers["xgradcam"]["bias-share"] == numbers["gradcam"]["bias-share"]
    assert all(0 <= values["deletion-auc"] <= 1 for values in numbers.values())

    # the opacity slider changes every map at once, without asking the server
    before = len(REQUESTED)
    page.fill("#opacity", "0.8")
    assert page.eval_on_selector_all("#results img.heat", "i => i.map(x => x.style.opacity)") \
        == ["0.8", "0.8"]
    assert len(REQUESTED) == before

    # a download is the overlay at the chosen opacity, at the image's size
    with page.expect_download() as download_info:
        page.click("#results .card[data-method='xgradcam'] a.download-overlay")
    download = download_info.value
    assert re.fullmatch(r"chelsea_xgradcam_\d+-[\w-]+_features-17-conv-1_overlay_a0\.80\.png",
                        download.suggested_filename)
    saved = Image.open(download.path())
    assert saved.size == (451, 300) and saved.format == "PNG"

    page.fill("#opacity", "0.5")
    page.screenshot(path=str(tmp_path / "app.png"), full_page=True)
    if os.environ.get("AXIOMCAM_SCREENSHOT"):
        shutil.copyfile(tmp_path / "app.png", os.environ["AXIOMCAM_SCREENSHOT"])


def test_a_non_image_upload_shows_its_message_and_the_app_goes_on(page, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    page.set_input_files("#upload", str(notes))
    page.wait_for_function("document.querySelector('#message').textContent.length > 0")
    assert "'notes.txt' is not an image PIL can read" in page.inner_text("#message")
    assert page.is_disabled("#run")
    page.click("#samples button[data-sample='coffee']")
    page.wait_for_function("document.querySelector('#message').textContent === '' && "
                           "document.querySelectorAll('#top5 li').length === 5")
    assert "espresso" in page.locator("#top5 li").all_inner_texts()[0]


def test_a_huge_image_is_downscaled_with_a_notice(page, tmp_path):
    big = sample_image("coffee").resize((MAX_SIDE * 2, MAX_SIDE * 4 // 3))
    page.set_input_files("#upload", str(jpeg(tmp_path / "big.jpg", big)))
    page.wait_for_function("document.querySelector('#notice').textContent.length > 0")
    notice = page.inner_text("#notice")
    assert f"{MAX_SIDE * 2}\N{MULTIPLICATION SIGN}{MAX_SIDE * 4 // 3}" in notice
    assert f"downscaled to {MAX_SIDE}\N{MULTIPLICATION SIGN}{MAX_SIDE * 2 // 3}" in notice
    page.wait_for_function("document.querySelector('#preview').naturalWidth > 0")
    assert page.eval_on_selector("#preview", "i => i.naturalWidth") == MAX_SIDE


def test_a_class_that_does_not_exist_shows_its_message(page, tmp_path):
    page.click("#samples button[data-sample='chelsea']")
    page.wait_for_function("document.querySelector('#preview').alt === 'chelsea' && "
                           "!document.querySelector('#run').disabled")
    page.fill("#target", "unicorn")
    page.click("#run")
    page.wait_for_function("document.querySelector('#message').textContent.length > 0")
    assert "unknown class name 'unicorn'" in page.inner_text("#message")
    # a name works as well as a pick from the list, and Enter explains
    page.select_option("#layer", "features.18")
    page.fill("#target", "tabby")
    page.press("#target", "Enter")
    page.wait_for_function("document.querySelector('#explaining').textContent"
                           ".startsWith('tabby (281), p ') && "
                           "document.querySelector('#progress-box').hidden")
    assert page.inner_text("#message") == ""
    assert page.locator("#results .card img.heat").count() == 2


def test_the_counterfactual_toggle_explains_the_evidence_against_the_class(page):
    page.click("#samples button[data-sample='chelsea']")
    page.wait_for_function("document.querySelector('#preview').alt === 'chelsea' && "
                           "!document.querySelector('#run').disabled")
    page.select_option("#layer", "features.18")
    page.fill("#target", "tabby")
    page.check("#counterfactual")
    try:
        page.click("#run")
        page.wait_for_function("document.querySelector('#explaining').textContent"
                               ".startsWith('against tabby (281), p ') && "
                               "document.querySelector('#progress-box').hidden")
        assert page.inner_text("#message") == ""
        assert "(counterfactual maps)" in page.inner_text("#explaining")
        titles = page.locator("#results .card h3").all_inner_texts()
        assert titles == ["Grad-CAM (counterfactual)", "XGrad-CAM (counterfactual)"]
    finally:
        page.uncheck("#counterfactual")


def test_the_page_asked_nothing_of_any_other_address(page, server_url):
    assert REQUESTED, "no request was recorded"
    foreign = [url for url in REQUESTED
               if not (url.startswith(server_url) or url.startswith(("data:", "blob:")))]
    assert foreign == []
