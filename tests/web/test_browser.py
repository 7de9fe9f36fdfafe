"""The demo page in headless Chromium: drawing a digit, agreeing with the Python runtime, failing clearly.

Screenshots go to ``out/test-artifacts/`` (ignored by git) for a person to look at after a run.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest

from lite_runtime import Interpreter
from web_export import bundle
from web_export.testing import serve

ARTIFACTS = Path(__file__).resolve().parents[2] / "out" / "test-artifacts"
DESKTOP = {"width": 1100, "height": 800}
PHONE = {"width": 375, "height": 740}

# Strokes in pad coordinates (0..1), drawn as a person would: a "1" is one slightly slanted line,
# a "7" a bar across the top and a diagonal down, in one stroke.
DIGIT_STROKES = {
    "1": [[(0.53, 0.15), (0.47, 0.85)]],
    "7": [[(0.28, 0.2), (0.72, 0.2), (0.45, 0.85)]],
}


@pytest.fixture(scope="module")
def site(mnist_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("site")
    bundle(mnist_model, folder)
    with serve(folder) as url:
        yield url, folder


@pytest.fixture
def open_page(browser):
    """Opens a URL in a fresh context; checks afterwards that no script error escaped to the page."""
    contexts, errors = [], []

    def open_(url, viewport=DESKTOP, **options):
        context = browser.new_context(viewport=viewport, **options)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(error))
        page.goto(url)
        return page

    yield open_
    for context in contexts:
        context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def _wait_until_ready(page):
    page.evaluate("() => window.emberflow.ready.then(() => true)")


def _draw(page, strokes):
    box = page.locator("#pad").bounding_box()
    for stroke in strokes:
        points = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point, steps=15)
        page.mouse.up()


def _screenshot(page, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


@pytest.mark.parametrize("digit", sorted(DIGIT_STROKES))
def test_drawn_digit_is_recognized(open_page, site, digit):
    url, _ = site
    page = open_page(url)
    _wait_until_ready(page)

    _draw(page, DIGIT_STROKES[digit])
    result = page.evaluate("() => window.emberflow.settled()")

    _screenshot(page, f"draw-{digit}.png")
    assert result["label"] == digit, f"probabilities: {np.round(result['probabilities'], 3)}"
    assert sum(result["probabilities"]) == pytest.approx(1.0, abs=1e-5)
    assert page.inner_text("#label") == digit
    assert page.locator(".bar").count() == 10
    assert page.locator(".bar.best .bar-label").inner_text() == digit
    assert page.inner_text("#ms").endswith(" ms")
    assert "lite (float32)" in page.inner_text("#model-format")

    page.click("#clear")
    assert page.evaluate("() => window.emberflow.settled()") is None
    assert page.inner_text("#label") == "–"


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_page_agrees_with_the_python_runtime_on_real_mnist_images(
    open_page, site, mnist, mnist_model, tmp_path, quantize
):
    (x_train, _), (x_test, y_test) = mnist
    if quantize == "none":
        url, folder = site
        served = contextlib.nullcontext(url)
    else:
        folder = tmp_path
        bundle(mnist_model, folder, quantize=quantize, calibration=x_train[::20])
        served = serve(folder)
    images = x_test[::100]  # the subset is ordered digit by digit: one image of each
    expected = Interpreter(model_path=str(folder / "model.lite")).run([images])[0]
    expected /= expected.sum(axis=1, keepdims=True)  # the page rescales an int8 softmax's rounding away

    with served as url:
        page = open_page(url)
        _wait_until_ready(page)
        results = [
            page.evaluate("pixels => window.emberflow.predictPixels(pixels)", image.ravel().tolist())
            for image in images
        ]
        shown_format = page.inner_text("#model-format")

    np.testing.assert_allclose([r["probabilities"] for r in results], expected, atol=1e-5)
    assert [r["label"] for r in results] == [str(i) for i in expected.argmax(axis=1)]
    assert np.mean(expected.argmax(axis=1) == y_test[::100]) >= 0.8  # a sanity check on the model, not the page
    assert shown_format == f"lite ({'float32' if quantize == 'none' else quantize})"


def test_phone_layout_fits_and_draws_by_touch(open_page, site):
    url, _ = site
    page = open_page(url, viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    _wait_until_ready(page)

    touch = page.context.new_cdp_session(page)
    box = page.locator("#pad").bounding_box()
    path = [(box["x"] + 0.5 * box["width"], box["y"] + y * box["height"]) for y in np.linspace(0.15, 0.85, 15)]
    for kind, (x, y) in [("touchStart", path[0]), *[("touchMove", p) for p in path[1:]]]:
        touch.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": x, "y": y}]})
    touch.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    result = page.evaluate("() => window.emberflow.settled()")

    _screenshot(page, "phone.png")
    assert result is not None and result["label"] == "1"
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]


def test_missing_model_file_shows_a_clear_message(browser, mnist_model, tmp_path):
    bundle(mnist_model, tmp_path)
    (tmp_path / "model.lite").unlink()
    context = browser.new_context(viewport=DESKTOP)
    try:
        page = context.new_page()
        with serve(tmp_path) as url:
            page.goto(url)
            status = page.locator("#status.error")
            status.wait_for(state="visible", timeout=10_000)
            _screenshot(page, "missing-model.png")
            assert status.inner_text().startswith("The model could not be loaded:")
            assert page.evaluate("() => window.emberflow.ready.then(() => 'loaded', () => 'failed')") == "failed"
    finally:
        context.close()
