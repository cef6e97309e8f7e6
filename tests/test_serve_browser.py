"""The page in a real browser: headless Chromium (Debian's `chromium` + `chromium-driver`,
installed by .ci/run) driven by Selenium against the tiny model's server. Opens the page
at a phone's width, uploads an image, asks, sees the streamed answer, asks a second turn,
generates two images and sees them rendered; the page's JavaScript does all of that, so a
broken script fails the test (and any console error fails it too). The screenshot is a
test artefact: $SERVE_SCREENSHOT (if set) or the test's tmp dir.
"""

import os
import shutil

import PIL.Image
import pytest

from tests.test_serve_api import T, running_server, scene, serve_tiny

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
           "chromium-driver; .ci/run installs them)")]


@pytest.fixture(scope="module")
def browser():
  from selenium import webdriver
  from selenium.webdriver.chrome.service import Service
  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=412,915", "--disable-extensions", "--no-first-run"):
    options.add_argument(arg)
  options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
  driver = webdriver.Chrome(service=Service(DRIVER), options=options)
  driver.set_page_load_timeout(T)
  driver.set_script_timeout(T)
  yield driver
  driver.quit()


def test_page_asks_about_an_image_and_generates_images(tiny_run, tmp_path_factory, browser,
                                                      tmp_path):
  from selenium.webdriver.common.by import By
  from selenium.webdriver.support import expected_conditions as EC
  from selenium.webdriver.support.ui import WebDriverWait
  engine, _ = serve_tiny(tiny_run, tmp_path_factory)
  image_file = tmp_path / "scene.png"
  PIL.Image.fromarray(scene(0)).resize((256, 256), PIL.Image.NEAREST).save(image_file)
  wait = WebDriverWait(browser, T)
  with running_server(engine, window_s=0.02) as (url, _):
    browser.set_window_size(412, 915)  # a phone
    browser.get(url + "/")
    # Only the page's script sets this (after reading /healthz): a broken script fails here.
    WebDriverWait(browser, 30).until(
        lambda d: d.execute_script("return document.body.dataset.ready === '1'"))
    assert "32px images" in browser.find_element(By.ID, "model-info").text
    # Nothing wider than the screen.
    assert browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth + 1")

    # Upload, ask, see the streamed answer; then a second turn about the same image.
    browser.find_element(By.ID, "image-input").send_keys(str(image_file))
    wait.until(lambda d: d.execute_script(
        "const i = document.getElementById('chat-image'); "
        "return !i.hidden && i.complete && i.naturalWidth === 256"))
    for turn, question in enumerate(["What color is the circle?", "How many objects?"]):
      box = browser.find_element(By.ID, "question")
      box.send_keys(question)
      browser.find_element(By.ID, "ask").click()
      wait.until(lambda d: len(d.find_elements(
          By.CSS_SELECTOR, "#messages li.assistant:not(.pending)")) == turn + 1)
      answers = browser.find_elements(By.CSS_SELECTOR, "#messages li.assistant")
      assert answers[-1].text.strip(), "empty answer"
      assert browser.find_element(By.ID, "error").get_attribute("hidden") is not None
    users = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#messages li.user")]
    assert users == ["What color is the circle?", "How many objects?"]

    # Generate two images; each is rendered and downloadable.
    browser.find_element(By.ID, "prompt").send_keys("A red circle on a dark background.")
    browser.execute_script("document.getElementById('count').value = '2'")
    browser.find_element(By.ID, "generate").click()
    wait.until(lambda d: d.execute_script(
        "const imgs = [...document.querySelectorAll('#gallery figure img')]; "
        "return imgs.length === 2 && imgs.every(i => i.complete && i.naturalWidth > 0)"))
    widths = browser.execute_script(
        "return [...document.querySelectorAll('#gallery img')].map(i => i.naturalWidth)")
    assert widths == [32, 32]
    links = browser.find_elements(By.CSS_SELECTOR, "#gallery a[download]")
    assert len(links) == 2 and all(
        a.get_attribute("href").startswith("data:image/png;base64,") for a in links)
    wait.until(EC.element_to_be_clickable((By.ID, "generate")))

    # A bad request shows its message on the page.
    browser.execute_script("document.getElementById('max-tokens').value = '100000'")
    browser.find_element(By.ID, "question").send_keys("Again?")
    browser.find_element(By.ID, "ask").click()
    wait.until(lambda d: d.find_element(By.ID, "error").get_attribute("hidden") is None)
    assert "max_tokens must be an integer" in browser.find_element(By.ID, "error").text
    browser.execute_script("document.getElementById('error').hidden = true")

    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"
              and "/v1/chat/completions" not in e["message"]]  # the 400 above is expected
    assert not severe, severe

    browser.set_window_size(1100, 820)
    browser.execute_script("window.scrollTo(0, 0)")
    out = os.environ.get("SERVE_SCREENSHOT") or str(tmp_path / "serve_page.png")
    assert browser.save_screenshot(out)
    assert PIL.Image.open(out).size[0] > 0
    print(f"screenshot: {out}")
