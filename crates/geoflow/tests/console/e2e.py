"""End-to-end test of the web console at /console in a real headless Chromium (Playwright).

Driven by crates/geoflow/tests/console.rs, which starts `geoflow serve` with a token and private
reads and passes, in the environment:

  GEOFLOW_URL          the server's base URL (http://127.0.0.1:PORT)
  GEOFLOW_TOKEN        a valid API token
  GEOFLOW_UPLOAD_FILE  Natural Earth's 110m countries (GeoJSON)
  GEOFLOW_SCREENSHOTS  a folder for one PNG per view
  GEOFLOW_CHROMIUM     the browser (default /usr/bin/chromium)

The steps: open the console, meet the token prompt (reads are private), enter the token, upload
the countries through the form (progress bar, job followed to `succeeded`), find the dataset
listed, open the jobs view (live, with the validation report of the one invalid country) and the
reports view, then the map: wait for the vector tiles to render, click Brazil and read its name
in the inspector. Any console error or uncaught exception fails the test, except the failed
requests the test provokes on purpose (see ALLOWED below). Exit status 0 on success.
"""

import datetime
import os
import re
import subprocess
import sys
import time

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect, sync_playwright

BASE = os.environ["GEOFLOW_URL"].rstrip("/")
TOKEN = os.environ["GEOFLOW_TOKEN"]
UPLOAD = os.environ["GEOFLOW_UPLOAD_FILE"]
SHOTS = os.environ["GEOFLOW_SCREENSHOTS"]
CHROMIUM = os.environ.get("GEOFLOW_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# WebGL without a GPU: Chromium's software renderer (SwiftShader), which it no longer picks
# on its own.
ARGS += ["--use-angle=swiftshader", "--enable-unsafe-swiftshader"]

# A point well inside Brazil (lon, lat) and the name the inspector must show.
CLICK_AT = (-53.0, -10.0)
CLICK_NAME = "Brazil"

# Expected failures, each provoked on purpose:
#  - 401s before the token is entered (reads are private, so the first calls of the console
#    are refused, which is what opens the token prompt) and after the test swaps in a wrong
#    token on purpose (step 7);
ALLOWED = [
    (re.compile(r"status of 401"), lambda url, phase: phase in ("before-token", "bad-token")),
]

errors = []
phase = "before-token"


def step(text):
    print(f"[console e2e] {text}", flush=True)


def on_console(msg):
    if msg.type != "error":
        return
    url = (msg.location or {}).get("url", "")
    for pattern, ok in ALLOWED:
        if pattern.search(msg.text) and ok(url, phase):
            step(f"expected console error ({phase}): {msg.text} [{url}]")
            return
    errors.append(f"console error: {msg.text} [{url}]")


def shot(page, name):
    path = os.path.join(SHOTS, f"{name}.png")
    page.screenshot(path=path, full_page=False)
    step(f"screenshot {path}")


def go(page, route):
    page.evaluate("route => { location.hash = route }", route)


def main():
    os.makedirs(SHOTS, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1440, "height": 900}, device_scale_factor=1)
        page = context.new_page()
        try:
            return run(page)
        except Exception:
            # What the page looked like when it went wrong.
            try:
                shot(page, "failure")
            except PlaywrightError:
                pass
            raise
        finally:
            browser.close()


def run(page):
    global phase
    if True:
        page.set_default_timeout(30_000)
        page.on("console", on_console)
        page.on("pageerror", lambda e: errors.append(f"uncaught exception: {e}"))
        page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url} {r.failure}") if "/v1/" in r.url or "/collections/" in r.url else None)

        # 1. The console is public; its first API call is refused and asks for a token.
        step("open /console")
        response = page.goto(f"{BASE}/console")
        assert response.status == 200, response.status
        dialog = page.locator("#token-dialog")
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text("needs a token")
        shot(page, "01-token")
        page.fill("#token-input", TOKEN)
        phase = "with-token"
        page.click("#token-save")
        expect(dialog).to_be_hidden()
        expect(page.locator("#token-button")).to_have_attribute("data-state", "set")
        stored = page.evaluate("() => sessionStorage.getItem('geoflow.console.token')")
        assert stored == TOKEN, "the token is kept in sessionStorage"
        expect(page.locator("main")).to_contain_text("No datasets yet")

        # 2. Upload through the form: progress bar, then the job followed to its end.
        step("upload the countries")
        go(page, "#/upload")
        page.fill("#upload-dataset", "countries")
        page.set_input_files("#upload-file", UPLOAD)
        page.select_option("#upload-policy", "skip")
        # Record every value the progress bar shows.
        page.evaluate(
            """() => {
                const bar = document.getElementById('upload-progress');
                window.__progress = [];
                new MutationObserver(() => window.__progress.push(Number(bar.getAttribute('aria-valuenow'))))
                    .observe(bar, { attributes: true, attributeFilter: ['aria-valuenow'] });
            }"""
        )
        page.click("#upload-submit")
        expect(page.locator("#upload-progress")).to_be_visible()
        job = page.locator("#upload-job")
        expect(job).to_have_attribute("data-status", "succeeded", timeout=90_000)
        progress = page.evaluate("() => window.__progress")
        step(f"progress values: {progress}")
        assert progress and progress[-1] == 100, progress
        expect(page.locator("#upload-progress")).to_have_attribute("aria-valuenow", "100")
        # Natural Earth's 110m countries: 177 features, one of them (Sudan) self-intersecting.
        expect(job).to_contain_text(re.compile(r"Loaded 176 of 177 features"))
        expect(job).to_contain_text("self-intersection")
        shot(page, "02-upload")

        # 3. The dataset is listed, with its detail page.
        step("datasets")
        go(page, "#/datasets")
        row = page.locator('tr[data-dataset="countries"]')
        expect(row).to_be_visible()
        expect(row).to_contain_text("176")
        shot(page, "03-datasets")
        row.locator("a", has_text="countries").first.click()
        expect(page.locator("main")).to_contain_text("Sources")
        expect(page.locator("main")).to_contain_text("ne_110m_admin_0_countries.geojson")
        shot(page, "04-dataset-detail")

        # 4. Jobs: live, with the validation report.
        step("jobs")
        go(page, "#/jobs")
        jobrow = page.locator("tr.job-row").first
        expect(jobrow).to_have_attribute("data-status", "succeeded")
        live = page.locator(".live")
        expect(live).to_have_attribute("data-state", "live")
        first = live.inner_text()
        page.wait_for_function(
            "first => document.querySelector('.live-text').textContent !== first", arg=first, timeout=10_000
        )
        jobrow.get_by_role("button", name="Report").click()
        detail = page.locator("tr.job-detail-row")
        expect(detail).to_contain_text("Validation report")
        expect(detail).to_contain_text("self-intersection")
        # The filters narrow the list; an empty result is a clean empty state.
        page.select_option("#jobs-status", "failed")
        expect(page.locator("main")).to_contain_text("No jobs match these filters")
        page.select_option("#jobs-status", "")
        # The open report stays open across refreshes and filter changes.
        expect(page.locator("tr.job-row").first).to_be_visible()
        expect(page.locator("tr.job-detail-row")).to_contain_text("self-intersection")
        shot(page, "05-jobs")

        # 5. Reports: none yet, then today's, written by `geoflow report` as the daily run would.
        step("reports")
        go(page, "#/reports")
        main_ = page.locator("main")
        expect(main_).to_contain_text("No reports yet")
        today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
        data = os.environ["GEOFLOW_DATA"]
        subprocess.run(
            [os.environ["GEOFLOW_BIN"], "report", "--date", today, "--database", os.path.join(data, "geoflow.gpkg"),
             "--storage", os.path.join(data, "objects")],
            check=True,
        )
        go(page, "#/datasets")
        go(page, "#/reports")
        expect(main_.locator(".report-link").first).to_be_visible()
        shot(page, "06-reports")
        main_.locator(".report-link").first.click()
        expect(main_).to_contain_text(f"Report of {today}")
        expect(main_.locator("figure.chart")).to_have_count(4)
        expect(main_.locator("figure.chart svg g.bar").first).to_be_visible()
        # The upload's numbers: one load, 176 of the 177 countries, one self-intersection.
        expect(main_).to_contain_text("176")
        expect(main_).to_contain_text("self-intersection")
        expect(main_).to_contain_text("countries")
        shot(page, "06b-report-day")

        # 6. The map: vector tiles rendered, a click on Brazil shows its properties.
        step("map")
        go(page, "#/map/countries")
        page.wait_for_function("() => window.geoflowMap && document.getElementById('map')?.dataset.state === 'ready'", timeout=60_000)
        kind = page.get_attribute("#map", "data-source-kind")
        assert kind == "tiles", f"the map should draw vector tiles, drew {kind}"
        page.wait_for_function(
            """() => {
                const map = window.geoflowMap;
                return map.loaded() && map.areTilesLoaded() &&
                    map.queryRenderedFeatures({ layers: ['data-fill'] }).length > 0;
            }""",
            timeout=60_000,
        )
        rendered = page.evaluate("() => window.geoflowMap.queryRenderedFeatures({ layers: ['data-fill'] }).length")
        step(f"{rendered} rendered polygon features")
        point = page.evaluate("([lon, lat]) => { const p = window.geoflowMap.project([lon, lat]); return [p.x, p.y]; }", list(CLICK_AT))
        box = page.locator("#map canvas").bounding_box()
        page.mouse.click(box["x"] + point[0], box["y"] + point[1])
        title = page.locator("#inspector .inspector-title")
        expect(title).to_have_text(CLICK_NAME)
        expect(page.locator("#inspector")).to_contain_text("BRA")
        # The full record replaces the tile's properties.
        expect(page.locator("#inspector .inspector-body")).to_have_attribute("data-origin", "full record")
        page.wait_for_function("() => window.geoflowMap.loaded()")
        shot(page, "07-map")

        # 7. A failing call degrades in place: a bad token shows an inline error and the prompt.
        step("bad token")
        page.evaluate("() => sessionStorage.setItem('geoflow.console.token', 'not-the-token-0123456789')")
        phase = "bad-token"
        go(page, "#/datasets")
        expect(page.locator("#token-dialog")).to_be_visible()
        expect(page.locator("#token-dialog")).to_contain_text("refused")
        page.click("#token-cancel")
        expect(page.locator("main .error-box")).to_contain_text("401")
        shot(page, "08-error")

    if errors:
        for e in errors:
            print(f"[console e2e] FAIL {e}", file=sys.stderr)
        return 1
    step("all views passed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (AssertionError, PlaywrightError) as e:
        print(f"[console e2e] FAIL {type(e).__name__}: {e}", file=sys.stderr)
        for err in errors:
            print(f"[console e2e] also: {err}", file=sys.stderr)
        sys.exit(1)
