"""A real headless Chromium for the integration tests, driven through Debian's chromedriver
with python3-selenium, answering JSON-line commands on stdin/stdout.

Started by tests/it/fixtures/browser.rs as `/usr/bin/python3 browser.py --profile DIR [--no-js]
[--lang LANG] [--size WxH] [--mobile]`. It prints one line `{"ready": true}` (or `{"error": "..."}`) once
Chromium is up, then reads one JSON object a line, `{"cmd": NAME, ...arguments}`, and answers
each with one line: `{"ok": true, "value": ...}` or `{"error": "..."}`. Every wait here has a
timeout, so a command always answers; the Rust side also gives up on a silent process and kills
its process group. Nothing else may be printed on stdout: it is the protocol.
"""

import argparse
import base64
import json
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

# How long a page load or a script may take before the command fails (a page loads in well
# under a second here).
PAGE_LOAD_SECS = 20
SCRIPT_SECS = 10

# The headless flags TESTING.md found necessary here: without the networking ones Chromium
# keeps trying to reach hosts that do not exist on this machine.
HEADLESS_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--password-store=basic",
]


def start(args):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in HEADLESS_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={args.profile}")
    options.add_argument(f"--window-size={args.size}")
    # `--lang` sets the UI language; the preference is what makes Chromium send
    # `Accept-Language` (headless ignores the flag for that).
    options.add_argument(f"--lang={args.lang}")
    prefs = {"intl.accept_languages": args.lang}
    if args.no_js:
        # Both switches, as TESTING.md verified: scripts do not run and <noscript> shows.
        options.add_argument("--blink-settings=scriptEnabled=false")
        prefs["profile.managed_default_content_settings.javascript"] = 2
    options.add_experimental_option("prefs", prefs)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(PAGE_LOAD_SECS)
    driver.set_script_timeout(SCRIPT_SECS)
    # The window's size is not the page's (headless keeps room for browser UI): the viewport is
    # set exactly, and a phone is emulated as a mobile device, so the page's
    # `<meta name="viewport">` decides its layout as on a real phone.
    width, height = (int(n) for n in args.size.split("x"))
    metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": args.mobile}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    return driver


def one(driver, css):
    return driver.find_element(By.CSS_SELECTOR, css)


def wait(driver, secs, what, condition):
    """Polls `condition(driver)` until it is truthy; fails with `what` after `secs`."""
    try:
        return WebDriverWait(driver, float(secs), poll_frequency=0.05).until(condition)
    except TimeoutException:
        raise TimeoutError(f"timed out after {secs} s waiting for {what}") from None


def present(css):
    def check(driver):
        found = driver.find_elements(By.CSS_SELECTOR, css)
        return found[0] if found else False

    return check


def wait_text(driver, c):
    css, sub = c["css"], c["substring"]
    last = [None]

    def check(d):
        found = d.find_elements(By.CSS_SELECTOR, css)
        if not found:
            return False
        last[0] = found[0].text
        return sub in last[0]

    try:
        wait(driver, c["secs"], f"{sub!r} in {css}", check)
    except TimeoutError as e:
        raise TimeoutError(f"{e}; last text: {last[0]!r}") from None
    return last[0]


def wait_url(driver, c):
    prefix = c["prefix"]
    try:
        wait(driver, c["secs"], f"a URL starting {prefix}", lambda d: d.current_url.startswith(prefix))
    except TimeoutError as e:
        raise TimeoutError(f"{e}; at {driver.current_url}") from None
    return driver.current_url


def screenshot(driver, path):
    # The whole viewport as a PNG, written by us so the path's folder errors are ours.
    png = base64.b64decode(driver.get_screenshot_as_base64())
    with open(path, "wb") as f:
        f.write(png)
    return path


def type_into(driver, css, text):
    element = one(driver, css)
    element.clear()
    element.send_keys(text)


def press(driver, key):
    """One key pressed on whatever has the focus, as a user would (`TAB`, `ENTER`, `SPACE`,
    ... from selenium's `Keys`)."""
    code = getattr(Keys, key.upper(), None)
    if code is None:
        raise ValueError(f"no key named {key!r}")
    ActionChains(driver).send_keys(code).perform()


COMMANDS = {
    "get": lambda d, c: d.get(c["url"]),
    "click": lambda d, c: one(d, c["css"]).click(),
    "type": lambda d, c: type_into(d, c["css"], c["text"]),
    "press": lambda d, c: press(d, c["key"]),
    "text": lambda d, c: one(d, c["css"]).text,
    "attr": lambda d, c: one(d, c["css"]).get_attribute(c["name"]),
    "exists": lambda d, c: len(d.find_elements(By.CSS_SELECTOR, c["css"])) > 0,
    "current_url": lambda d, c: d.current_url,
    "title": lambda d, c: d.title,
    "wait_url": wait_url,
    "wait_text": wait_text,
    "wait_css": lambda d, c: wait(d, c["secs"], c["css"], present(c["css"])) and True,
    "screenshot": lambda d, c: screenshot(d, c["path"]),
    "source": lambda d, c: d.page_source,
    "back": lambda d, c: d.back(),
    "refresh": lambda d, c: d.refresh(),
    "cookies": lambda d, c: d.get_cookies(),
    "execute": lambda d, c: d.execute_script(c["js"]),
    "logs": lambda d, c: d.get_log("browser"),
}


def answer(out, value):
    out.write(json.dumps(value) + "\n")
    out.flush()


def describe(e):
    if isinstance(e, WebDriverException):
        # Selenium's message plus the first line of chromedriver's, without the stack trace.
        return f"{type(e).__name__}: {(e.msg or '').splitlines()[0] if e.msg else ''}".strip()
    return f"{type(e).__name__}: {e}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", required=True)
    parser.add_argument("--no-js", action="store_true")
    parser.add_argument("--lang", default="en")
    parser.add_argument("--size", default="1280x900")
    parser.add_argument("--mobile", action="store_true")
    args = parser.parse_args()
    # The protocol owns stdout; anything a library prints goes to stderr instead.
    out = sys.stdout
    sys.stdout = sys.stderr
    started = time.monotonic()
    try:
        driver = start(args)
    except Exception as e:  # noqa: BLE001 - reported to the test, which fails with it
        answer(out, {"error": f"Chromium did not start: {describe(e)}"})
        return 1
    answer(out, {"ready": True, "secs": round(time.monotonic() - started, 3)})
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                c = json.loads(line)
                name = c.get("cmd")
                if name == "quit":
                    answer(out, {"ok": True, "value": None})
                    break
                command = COMMANDS.get(name)
                if command is None:
                    answer(out, {"error": f"unknown command {name!r}"})
                    continue
                answer(out, {"ok": True, "value": command(driver, c)})
            except Exception as e:  # noqa: BLE001 - every failure is an answer, never a hang
                answer(out, {"error": describe(e)})
    finally:
        driver.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
