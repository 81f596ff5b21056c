"""Driving `ddream serve`'s page in headless Chromium (Selenium), as a person would: press Generate,
draw a stroke on the sketchpad, press Reconstruct; draw on the Edit tab, press Edit and Complete.
The browser test uses it, and so does the README's screenshot:

    ddream serve --state-dir STATE &   # then
    python tests/browser.py http://127.0.0.1:7860 docs/serve.png

Chromium and its driver come from Debian's `chromium` and `chromium-driver` packages; Selenium is in
the test extra.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

WAIT_S = 60


def find_chromium() -> tuple[str, str] | None:
    """(browser, driver) paths, or None when this machine has no Chromium."""
    browser = next(
        (shutil.which(b) for b in ("chromium", "chromium-browser") if shutil.which(b)), None
    )
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def open_browser(width: int = 1280, height: int = 1000):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    found = find_chromium()
    if found is None:
        raise RuntimeError("no chromium / chromedriver on PATH")
    browser, driver = found
    opts = Options()
    opts.binary_location = browser
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
    ):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=opts)


def _wait(driver, what, timeout: float = WAIT_S):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(what)


def _image_in(driver, elem_id: str):
    """The <img> that Gradio puts inside the component `elem_id` once it has a value."""
    from selenium.webdriver.common.by import By

    return _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, f"#{elem_id} img"))[0]


def open_tab(driver, name: str) -> None:
    from selenium.webdriver.common.by import By

    tabs = _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "button[role='tab']"))
    next(t for t in tabs if t.text.strip() == name).click()


def generate(driver) -> dict:
    """Press Generate; returns the grid <img>'s natural size and the caption."""
    from selenium.webdriver.common.by import By

    open_tab(driver, "Generate")
    driver.find_element(By.ID, "generate-button").click()
    img = _image_in(driver, "generate-grid")
    _wait(driver, lambda d: d.find_element(By.ID, "generate-caption").text.strip())
    _wait(driver, lambda d: d.execute_script("return arguments[0].naturalWidth", img) > 0)
    return {
        "width": driver.execute_script("return arguments[0].naturalWidth", img),
        "caption": driver.find_element(By.ID, "generate-caption").text,
    }


def draw_and_reconstruct(driver) -> dict:
    """Pick the brush, draw a stroke (a '1') on the sketchpad, press Reconstruct; returns the
    caption under the reconstruction."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    open_tab(driver, "Draw")
    brush = _wait(
        driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#sketch button[aria-label='Brush']")
    )[0]
    brush.click()
    canvas = driver.find_elements(By.CSS_SELECTOR, "#sketch canvas")[0]
    stroke = ActionChains(driver).move_to_element_with_offset(canvas, 0, -100).click_and_hold()
    for _ in range(20):
        stroke.move_by_offset(1, 10)
    stroke.release().perform()
    time.sleep(0.3)  # the canvas hands its layers to the component on pointer-up
    driver.find_element(By.ID, "draw-button").click()
    _image_in(driver, "draw-recon")
    caption = _wait(driver, lambda d: d.find_element(By.ID, "draw-caption").text.strip())
    return {"caption": caption}


def edit_and_complete(driver) -> dict:
    """On the Edit tab: draw a '7', press Edit (to 8), then Complete (the top half kept); returns
    both captions."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    open_tab(driver, "Edit")
    brush = _wait(
        driver,
        lambda d: d.find_elements(By.CSS_SELECTOR, "#edit-sketch button[aria-label='Brush']"),
    )[0]
    brush.click()
    canvas = driver.find_elements(By.CSS_SELECTOR, "#edit-sketch canvas")[0]
    stroke = ActionChains(driver).move_to_element_with_offset(canvas, -60, -90).click_and_hold()
    for _ in range(12):
        stroke.move_by_offset(10, 0)
    for _ in range(18):
        stroke.move_by_offset(-4, 10)
    stroke.release().perform()
    time.sleep(0.3)  # the canvas hands its layers to the component on pointer-up
    driver.find_element(By.ID, "edit-button").click()
    _image_in(driver, "edit-out")
    edited = _wait(driver, lambda d: d.find_element(By.ID, "edit-caption").text.strip())
    driver.find_element(By.ID, "complete-button").click()
    _image_in(driver, "complete-out")
    completed = _wait(driver, lambda d: d.find_element(By.ID, "complete-caption").text.strip())
    return {"edit": edited, "complete": completed}


def screenshot(url: str, out: Path) -> None:
    """The Generate tab after one press, as the README shows it."""
    driver = open_browser(1280, 900)
    try:
        driver.get(url)
        generate(driver)
        time.sleep(1.0)  # let the trajectory GIF load too
        driver.save_screenshot(str(out))
    finally:
        driver.quit()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python tests/browser.py URL OUT.png")
    screenshot(sys.argv[1], Path(sys.argv[2]))
    print(f"wrote {sys.argv[2]}")
