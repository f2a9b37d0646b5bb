"""The dashboard page of mrd-web (docs/http.md, "The page") in a real browser.

Headless Chromium, driven by Selenium through chromedriver, loads the page from mrd-web in front
of a real mrd (--enable-test-jobs, --workers 2). Jobs are submitted through the JSON API and
everything is checked through the page's DOM, waiting for each event under a deadline (never a
fixed sleep): a slow job's map progress bar moves without a reload, a finished job's result link
fetches its result, a hanging job's Cancel button cancels it, a job's page shows its timeline,
the pool's figures are /api/stats's, and the page loads nothing from anywhere but mrd-web.

Environment (required: the tests fail without them):
  MRD_BINARY       the mrd server
  MRD_WEB_BINARY   mrd-web
Optional:
  MRD_PAGE_SCREENSHOT=PATH   also save a screenshot of the page with jobs in several states
                             (docs/dashboard.png is made this way); or --screenshot PATH
  CHROMIUM, CHROMEDRIVER     default /usr/bin/chromium and /usr/bin/chromedriver (Debian's
                             chromium and chromium-driver); Selenium is Debian's python3-selenium

Run: MRD_BINARY=build/server/mrd MRD_WEB_BINARY=build/client/mrd-web \\
       python3 tests/web_page_test.py -v
docs/dashboard.png: the same, with `TestScreenshot --screenshot docs/dashboard.png` (that test
alone, so that the picture holds its jobs only).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import unittest
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
import web_test  # noqa: E402  (the processes, HTTP and reference helpers of the API's tests)
from web_test import (ALICE_TOKEN, BOB_TOKEN, HANGING_JOB, http,  # noqa: E402
                      reference_word_counts, required_binary)

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
except ImportError:
    # Debian's python3-selenium, for a python3 that is not Debian's own (pyenv, a venv).
    sys.path.append("/usr/lib/python3/dist-packages")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.by import By
    except ImportError as error:
        raise RuntimeError("Selenium is missing: install Debian's python3-selenium "
                           "(scripts/setup.sh)") from error

PAGE_SECONDS = 20  # for the page to show what the API already says (it polls every second)
BROWSER_SECONDS = 30  # for Chromium to start, or a page to load
CHROMIUM_FLAGS = (
    # No network here: without these Chromium stalls on lookups it would make at start.
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1280,1000", "--force-device-scale-factor=1",
)


def executable(variable: str, default: str) -> str:
    path = os.environ.get(variable) or default
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise RuntimeError(f"{variable}: {path} is not an executable file (Debian: chromium, "
                           f"chromium-driver; scripts/setup.sh installs them)")
    return path


def wait_for(what: str, probe: Callable[[], Any], seconds: float = PAGE_SECONDS) -> Any:
    return web_test.wait_for(what, probe, seconds)


SCREENSHOT = os.environ.get("MRD_PAGE_SCREENSHOT", "")
work: Path = Path()
mrd: web_test.Program
web: web_test.Program
browser: Any = None


def setUpModule() -> None:
    """mrd, mrd-web in front of it, and a headless Chromium with a profile of its own."""
    global work, mrd, web, browser
    web_test.MRD_BINARY = required_binary("MRD_BINARY")
    web_test.WEB_BINARY = required_binary("MRD_WEB_BINARY")
    chromium = executable("CHROMIUM", "/usr/bin/chromium")
    chromedriver = executable("CHROMEDRIVER", "/usr/bin/chromedriver")
    directory = tempfile.TemporaryDirectory(prefix="mrd-page-test-")
    unittest.addModuleCleanup(directory.cleanup)
    work = Path(directory.name)
    mrd = web_test.start_mrd(work, "mrd", "--enable-test-jobs")
    unittest.addModuleCleanup(mrd.stop)
    web = web_test.start_web(work, "mrd-web", [mrd.address])
    unittest.addModuleCleanup(web.stop)

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={work / 'chromium-profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=chromedriver, log_path=str(work / "chromedriver.log"))
    try:
        browser = webdriver.Chrome(service=service, options=options)
    except BaseException:
        if service.process and service.process.poll() is None:
            service.process.kill()  # chromedriver, which we started; it ends its Chromium
            service.process.wait()
        raise
    unittest.addModuleCleanup(quit_browser, service)
    browser.set_page_load_timeout(BROWSER_SECONDS)
    browser.set_script_timeout(BROWSER_SECONDS)


def quit_browser(service: Any) -> None:
    try:
        browser.quit()  # Chromium, then chromedriver
    finally:
        if service.process and service.process.poll() is None:
            service.process.kill()
            service.process.wait()


class PageTestCase(unittest.TestCase):
    """Each test opens the page afresh, submits its own jobs and cancels any left running."""

    maxDiff = 4000
    token: Optional[str] = None  # the API calls' token (the page's is typed into it)
    expected_errors = ()  # words of console errors a test causes on purpose

    @property
    def web(self) -> web_test.Program:
        return web

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.web.port}"

    def setUp(self) -> None:
        browser.get(self.origin + "/")
        wait_for("the page's first poll",
                 lambda: browser.find_element(By.ID, "updated").text != "Connecting…",
                 BROWSER_SECONDS)
        # Set once per load: still there at the end means the page never reloaded.
        browser.execute_script("window.mrdTestMarker = 'no reload';")

    def tearDown(self) -> None:
        errors = [entry["message"] for entry in browser.get_log("browser")
                  if entry["level"] == "SEVERE"
                  and not any(words in entry["message"] for words in self.expected_errors)]
        self.assertEqual(errors, [], "the page logged errors")

    # -- the API ---------------------------------------------------------------------------------

    def submit(self, job: Dict[str, Any]) -> int:
        reply = http(self.web.port, "POST", "/api/jobs", job, self.token)
        self.assertEqual(reply.status, 202, reply.body)
        job_id = json.loads(reply.body)["id"]
        self.addCleanup(self.cancel_if_running, job_id, self.token)
        return job_id

    def cancel_if_running(self, job_id: int, token: Optional[str]) -> None:
        """At clean-up: no test leaves a job running (finished ones stay as they are)."""
        if self.api_state(job_id, token) in web_test.UNFINISHED:
            http(self.web.port, "DELETE", f"/api/jobs/{job_id}", None, token)

    def api(self, path: str, token: Optional[str] = None) -> Any:
        reply = http(self.web.port, "GET", path, None, token or self.token)
        self.assertEqual(reply.status, 200, f"GET {path}: {reply.body[:300]!r}")
        return json.loads(reply.body)

    def api_state(self, job_id: int, token: Optional[str] = None) -> str:
        return self.api(f"/api/jobs/{job_id}", token)["state"]

    # -- the page ----------------------------------------------------------------------------------

    def row(self, job_id: int) -> Any:
        """The job's row, once the page shows it."""
        return wait_for(f"job {job_id}'s row",
                        lambda: (browser.find_elements(By.ID, f"job-{job_id}") or [None])[0])

    def row_state(self, job_id: int) -> Optional[str]:
        return browser.execute_script(
            "const row = document.getElementById(arguments[0]);"
            "return row ? row.dataset.state : null;", f"job-{job_id}")

    def wait_for_row_state(self, job_id: int, *states: str) -> str:
        return wait_for(f"job {job_id}'s row to say {' or '.join(states)}",
                        lambda: (self.row_state(job_id) in states) and self.row_state(job_id))

    def assert_not_reloaded(self) -> None:
        self.assertEqual(browser.execute_script("return window.mrdTestMarker;"), "no reload")


class TestJobs(PageTestCase):

    def test_map_progress_bar_moves_without_a_reload(self) -> None:
        # 20 map tasks of 300 ms each (a document per chunk: 40 bytes each, chunks of 48), on two
        # workers: some three seconds of mapping, which the page sees at every poll.
        documents = [{"name": "300", "text": f"slow words for a slow job, number {i:03}"}
                     for i in range(20)]
        job_id = self.submit({"mapper": "test-slow", "reducer": "sum", "documents": documents,
                              "options": {"chunk_bytes": 48}})
        row = self.row(job_id)
        bar = row.find_element(By.CSS_SELECTOR, "progress.map")

        def value() -> int:
            return int(float(bar.get_property("value")))

        def early() -> Optional[int]:
            """The bar's value while the page shows the job in its first half of mapping."""
            if self.row_state(job_id) != "mapping" or not bar.is_displayed():
                return None
            if int(float(bar.get_property("max"))) != 20 or value() > 10:
                return None
            return value() + 1  # truthy for 0 too

        first = wait_for(f"job {job_id} early in mapping, with a progress bar", early) - 1
        count = row.find_element(By.CSS_SELECTOR, "progress.map + .count")
        self.assertEqual(count.text, f"{first}/20")
        # The same element (a re-rendered row would make `bar` stale) shows more done, then all.
        seen = [first]

        def moved_to(at_least: int) -> bool:
            if value() != seen[-1]:
                seen.append(value())
            return seen[-1] >= at_least

        wait_for("the map progress bar to move", lambda: moved_to(first + 1))
        wait_for("the map progress bar to be full", lambda: moved_to(20))
        self.assertEqual(seen, sorted(set(seen)), "the bar went back")
        self.assertGreaterEqual(len(seen), 2, seen)
        self.wait_for_row_state(job_id, "done")
        self.assertEqual(count.text, "20/20")
        self.assert_not_reloaded()

    def test_a_finished_job_links_its_result(self) -> None:
        text = "the cat and the hat and the bat sat on the mat"
        job_id = self.submit({"mapper": "words", "text": text})
        row = self.row(job_id)
        self.wait_for_row_state(job_id, "done")
        link = wait_for("the result link",
                        lambda: (row.find_elements(By.CSS_SELECTOR, "a.result-link") or [None])[0])
        href = link.get_property("href")
        self.assertEqual(href, f"{self.origin}/api/jobs/{job_id}/result")
        answer = self.api(urllib.parse.urlsplit(href).path)
        self.assertEqual(answer, {"id": job_id, "state": "done",
                                  "result": reference_word_counts([text])})
        # Words of the row: what the job is, and its size.
        cells = [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        self.assertIn("words / sum", cells)
        self.assertIn(f"{self.api(f'/api/jobs/{job_id}')['input_bytes']} B", cells)
        self.assertEqual(row.find_element(By.CSS_SELECTOR, "progress.map").get_property("value"),
                         1)
        self.assertFalse(row.find_element(By.CSS_SELECTOR, "button.cancel").is_displayed())

    def test_cancel_button_cancels(self) -> None:
        job_id = self.submit(HANGING_JOB)
        row = self.row(job_id)
        self.wait_for_row_state(job_id, "mapping")
        button = row.find_element(By.CSS_SELECTOR, "button.cancel")
        self.assertTrue(button.is_displayed())
        self.assertEqual(button.get_attribute("aria-label"), f"Cancel job {job_id}")
        button.click()
        self.wait_for_row_state(job_id, "cancelled")
        self.assertEqual(self.api_state(job_id), "cancelled")
        self.assertFalse(button.is_displayed())
        self.assertIn(f"Job {job_id} cancelled", browser.find_element(By.ID, "status").text)
        # And it stays so once the list has it too.
        wait_for("the list to say cancelled",
                 lambda: any(job["id"] == job_id and job["state"] == "cancelled"
                             for job in self.api("/api/jobs?details=1")))
        self.wait_for_row_state(job_id, "cancelled")
        self.assert_not_reloaded()

    def test_a_failed_job_shows_why(self) -> None:
        job_id = self.submit({"mapper": "test-throw", "reducer": "sum", "text": "refused"})
        row = self.row(job_id)
        self.wait_for_row_state(job_id, "failed")
        failure = self.api(f"/api/jobs/{job_id}")["failure"]
        self.assertIn("test-throw", failure)
        shown = wait_for("the failure", lambda: row.find_elements(By.CSS_SELECTOR, ".failure"))
        self.assertEqual(shown[0].text, failure)

    def test_job_page_shows_the_timeline(self) -> None:
        text = "one two two three three three"
        job_id = self.submit({"mapper": "words", "text": text})
        self.wait_for_row_state(job_id, "done")
        self.row(job_id).find_element(By.LINK_TEXT, str(job_id)).click()
        wait_for("the job page", lambda: browser.find_element(By.ID, "job-view").is_displayed())
        self.assertFalse(browser.find_element(By.ID, "jobs-view").is_displayed())
        self.assertEqual(browser.find_element(By.ID, "job-heading").text, f"Job {job_id}")
        details = self.api(f"/api/jobs/{job_id}")

        def timeline() -> Optional[List[Dict[str, str]]]:
            # Read in one go: the page redraws the timeline at every poll.
            steps = browser.execute_script(
                "return [...document.querySelectorAll('#job-timeline li')].map((li) => ({"
                " step: li.dataset.step, text: li.textContent,"
                " time: li.querySelector('time')?.getAttribute('datetime') ?? ''}));")
            return steps if len(steps) == 3 and all(step["time"] for step in steps) else None

        steps = wait_for("the timeline's three steps with their times", timeline)
        self.assertEqual([step["step"] for step in steps], ["submitted", "started", "finished"])
        for step, field in zip(steps, ("submitted_ms", "started_ms", "finished_ms")):
            ms = details[field]
            iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03}Z"
            self.assertEqual(step["time"], iso, step)
        self.assertIn("queued", steps[1]["text"])
        self.assertIn("done after running", steps[2]["text"])
        self.assertIn("in all", steps[2]["text"])
        link = browser.find_element(By.ID, "job-result-link")
        self.assertEqual(link.get_property("href"), f"{self.origin}/api/jobs/{job_id}/result")
        wait_for("the result's preview",
                 lambda: '"three"' in browser.find_element(By.ID, "job-result-text").text)
        browser.find_element(By.LINK_TEXT, "← All jobs").click()
        wait_for("the jobs again", lambda: browser.find_element(By.ID, "jobs-view").is_displayed())
        self.assert_not_reloaded()


class TestPool(PageTestCase):

    def pool_on_page(self) -> Dict[str, int]:
        ids = {"workers_busy": "pool-busy", "workers": "pool-workers",
               "worker_restarts": "pool-restarts", "tasks_done": "pool-tasks",
               "jobs_unfinished": "pool-unfinished", "jobs_done": "pool-done",
               "jobs_failed": "pool-failed", "jobs_cancelled": "pool-cancelled"}
        texts = browser.execute_script(
            "return Object.fromEntries(Object.entries(arguments[0]).map("
            "([k, id]) => [k, document.getElementById(id).textContent]));", ids)
        return {key: int(text) if text.isdigit() else -1 for key, text in texts.items()}

    def test_pool_figures_are_api_stats(self) -> None:
        # A job that finishes, so that the counters and the charts have something to show.
        job_id = self.submit({"mapper": "words", "text": "pool pool"})
        self.wait_for_row_state(job_id, "done")

        def agree() -> Optional[Dict[str, int]]:
            stats = self.api("/api/stats")["servers"][0]["stats"]
            shown = self.pool_on_page()
            wanted = {key: stats[key] for key in shown}
            return shown if shown == wanted else None
        shown = wait_for("the pool on the page to be /api/stats's", agree)
        self.assertEqual(shown["workers"], web_test.WORKERS)
        self.assertGreaterEqual(shown["jobs_done"], 1)

        # The charts: a line once two polls have passed, described in words for screen readers.
        chart = wait_for("the throughput chart's line", lambda: browser.find_elements(
            By.CSS_SELECTOR, "#throughput-chart svg path.line"))
        self.assertTrue(chart)
        label = browser.find_element(By.CSS_SELECTOR, "#throughput-chart svg").get_attribute(
            "aria-label")
        self.assertRegex(label, r"^Throughput: latest [0-9.]+ jobs/s, highest [0-9.]+ jobs/s in the last \d+ s")
        self.assertTrue(browser.find_elements(By.CSS_SELECTOR, "#latency-chart svg"))


class TestOffline(PageTestCase):

    def test_everything_comes_from_mrd_web(self) -> None:
        job_id = self.submit({"mapper": "words", "text": "local only"})
        self.wait_for_row_state(job_id, "done")
        urls = browser.execute_script(
            "return [location.href,"
            " ...performance.getEntries().map((e) => e.name).filter((n) => n.includes(':')),"
            " ...[...document.querySelectorAll('[src]')].map((e) => e.src),"
            " ...[...document.querySelectorAll('link[href]')].map((e) => e.href)];")
        loaded = [url for url in urls if not url.startswith("data:")]
        self.assertTrue(any(url.endswith("/page.js") for url in loaded), loaded)
        self.assertTrue(any(url.endswith("/page.css") for url in loaded), loaded)
        self.assertTrue(any("/api/jobs?details=1" in url for url in loaded), loaded)
        for url in loaded:
            self.assertTrue(url.startswith(self.origin + "/"), f"{url}: not from mrd-web")


class TestTokens(PageTestCase):
    """An mrd with --auth-file behind an mrd-web of its own: the page's token field."""

    expected_errors = ("401 (Unauthorized)",)  # the polls before a token is given
    auth_web: web_test.Program

    @classmethod
    def setUpClass(cls) -> None:
        auth_file = work / "tokens"
        web_test.write_auth_file(auth_file)
        auth_mrd = web_test.start_mrd(work, "auth-mrd", "--auth-file", str(auth_file),
                                      "--enable-test-jobs")
        cls.addClassCleanup(auth_mrd.stop)
        cls.auth_web = web_test.start_web(work, "auth-web", [auth_mrd.address])
        cls.addClassCleanup(cls.auth_web.stop)

    @property
    def web(self) -> web_test.Program:
        return self.auth_web

    def test_token_field_lists_and_cancels_as_its_tenant(self) -> None:
        wait_for("the page to ask for a token",
                 lambda: "wants a token" in browser.find_element(By.ID, "status").text)
        self.token = BOB_TOKEN
        bobs = self.submit({"mapper": "words", "text": "bob's own"})
        self.token = ALICE_TOKEN
        alices = self.submit(HANGING_JOB)
        field = browser.find_element(By.ID, "token")
        self.assertEqual(field.get_attribute("type"), "password")
        self.assertEqual(browser.find_element(By.CSS_SELECTOR, "label[for=token]").text, "Token")
        field.send_keys(ALICE_TOKEN)
        browser.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()
        self.wait_for_row_state(alices, "mapping")
        self.assertEqual(
            browser.execute_script("return sessionStorage.getItem('mrd-token');"), ALICE_TOKEN)
        self.assertEqual(browser.find_elements(By.ID, f"job-{bobs}"), [], "bob's job shown")
        self.row(alices).find_element(By.CSS_SELECTOR, "button.cancel").click()
        self.wait_for_row_state(alices, "cancelled")
        self.assertEqual(self.api_state(alices), "cancelled")
        self.assertEqual(self.api_state(bobs, BOB_TOKEN), "done")
        # Forgotten: alice's jobs leave the page at once, and the page asks for a token again.
        browser.find_element(By.ID, "token-forget").click()
        self.assertIsNone(browser.execute_script("return sessionStorage.getItem('mrd-token');"))
        self.assertEqual(browser.find_elements(By.CSS_SELECTOR, "#job-rows tr"), [])
        self.assertEqual(field.get_property("value"), "")
        wait_for("the page to ask for a token again",
                 lambda: "wants a token" in browser.find_element(By.ID, "status").text)
        self.assertEqual(browser.find_elements(By.CSS_SELECTOR, "#job-rows tr"), [])
        self.assert_not_reloaded()


class TestScreenshot(PageTestCase):

    def test_jobs_in_every_state(self) -> None:
        """Jobs done, failed, cancelled and running, as the page shows them; saved as a
        screenshot when one is asked for (docs/dashboard.png)."""
        words = self.submit({"mapper": "words", "documents": [
            {"name": "a.txt", "text": "to be or not to be " * 200},
            {"name": "b.txt", "text": "that is the question " * 300}]})
        index = self.submit({"mapper": "index", "documents": ["one two", "two three"]})
        failed = self.submit({"mapper": "test-throw", "reducer": "sum", "text": "refused"})
        cancelled = self.submit(HANGING_JOB)
        self.wait_for_row_state(cancelled, "mapping")
        http(self.web.port, "DELETE", f"/api/jobs/{cancelled}")
        # 40 map tasks of 250 ms, on the one worker the hanging job leaves: 10 s of mapping.
        slow = self.submit({"mapper": "test-slow", "reducer": "sum", "documents": [
            {"name": "250", "text": f"a slow document, number {i:03}"} for i in range(40)],
            "options": {"chunk_bytes": 40}})
        hanging = self.submit(HANGING_JOB)
        for job_id, state in ((words, "done"), (index, "done"), (failed, "failed"),
                              (cancelled, "cancelled"), (hanging, "mapping")):
            self.wait_for_row_state(job_id, state)
        bar = self.row(slow).find_element(By.CSS_SELECTOR, "progress.map")
        # Part way, once the charts have a few seconds to show.
        wait_for("the charts' first points", lambda: browser.execute_script(
            "return document.querySelector('#throughput-chart path.line')"
            "?.getAttribute('d').split('L').length >= 6"))
        wait_for("the slow job part way", lambda: self.row_state(slow) == "mapping" and 8 <= int(
            float(bar.get_property("value"))) <= 36)
        if SCREENSHOT:
            # As tall as the page, so that the picture has no empty space below it.
            # (The window's size includes what a browser's frame would take.)
            height = browser.execute_script(
                "return Math.ceil(document.querySelector('main').getBoundingClientRect().bottom)"
                " + 40 + window.outerHeight - window.innerHeight;")
            browser.set_window_size(1280, max(480, int(height)))
            Path(SCREENSHOT).parent.mkdir(parents=True, exist_ok=True)
            self.assertTrue(browser.save_screenshot(SCREENSHOT), SCREENSHOT)
            print(f"\nscreenshot: {SCREENSHOT}", file=sys.stderr)
        for job_id in (slow, hanging):
            self.assertEqual(http(self.web.port, "DELETE", f"/api/jobs/{job_id}").status, 200)
            self.wait_for_row_state(job_id, "cancelled")


def main(argv: List[str]) -> None:
    global SCREENSHOT
    if "--screenshot" in argv:
        at = argv.index("--screenshot")
        SCREENSHOT = str(Path(argv[at + 1]).resolve())
        del argv[at:at + 2]
    unittest.main(argv=argv)


if __name__ == "__main__":
    main(sys.argv)
