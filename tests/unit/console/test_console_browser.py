"""The console in a real headless browser (issue 17 §4): Debian's chromium, driven through
Debian's chromedriver by selenium — pointed at both, so nothing downloads a browser or a
driver (`make browser` installs them; a machine without them fails here, it does not skip).

Against the planted demo (conftest: a case overdue, a message lost at IND), the test logs in
as a person would (a wrong token first), opens every page and asserts what it shows — the
counts, the overdue case, the finding's kind, message and parties — then downloads a proof
and checks it. Every request the browser made, for the console's pages and for the gateway's
/docs (Swagger UI), went to 127.0.0.1 and nowhere else (issue 17 §5). Screenshots of every
page are saved in the test's temporary folder."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from broker.audit import case_views, check_proof, read_audit, summary, verify_stream
from broker.crypto import signing_public_key
from broker.transport.embedded import EmbeddedTransport
from tests.unit.console.conftest import CASES, PREFIX, Served, _clock, free_port

WebDriver = webdriver.Chrome

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_S = 20.0


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebDriver]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    assert not missing, (
        f"{missing} missing: `make browser` installs Debian's chromium and chromium-driver"
    )
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager, should it run, fetches nothing
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"):  # fmt: skip
        options.add_argument(arg)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})  # fmt: skip
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(downloads)})  # fmt: skip
    try:
        yield driver
    finally:
        driver.quit()


def requested(driver: WebDriver) -> list[str]:
    """The URLs the browser requested since the last call (its performance log)."""
    urls = []
    for entry in driver.get_log("performance"):  # type: ignore[no-untyped-call]
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def only_local(urls: list[str]) -> None:
    outside = [u for u in urls if urlsplit(u).scheme not in ("data", "about", "blob")
               and urlsplit(u).hostname != "127.0.0.1"]  # fmt: skip
    assert not outside, f"the browser was sent to other hosts: {outside}"


def shot(driver: WebDriver, folder: Path, name: str) -> Path:
    """A screenshot of the whole page (the window grown to the page's height)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, max(700, min(int(height) + 40, 4000)))
    path = folder / f"{name}.png"
    assert driver.save_screenshot(str(path)), path
    driver.set_window_size(1400, 1000)
    return path


def text(driver: WebDriver, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def login(driver: WebDriver, token: str) -> None:
    field = driver.find_element(By.ID, "token")
    field.clear()
    field.send_keys(token)
    driver.find_element(By.ID, "login").click()


def test_a_person_sees_the_network_the_cases_a_timeline_and_downloads_a_proof(
    served: Served, browser: WebDriver, tmp_path: Path
) -> None:
    p, url, wait = served.planted, served.url, WebDriverWait(browser, WAIT_S)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    expected = asyncio.run(_expected(served))

    # no token: the login form; a wrong token: refused, and still no page
    browser.get(url + "/")
    assert urlsplit(browser.current_url).path == "/login"
    login(browser, "not-the-token")
    assert "Wrong token: access refused." in text(browser, "login-failed")
    assert "The network" not in browser.page_source
    shot(browser, shots, "0-login-refused")
    login(browser, p.token)

    # the network: the counts, the planted finding with its message and both parties
    wait.until(ec.presence_of_element_located((By.ID, "findings")))
    assert "No personal data: built from audit metadata only." in text(browser, "no-personal-data")
    assert text(browser, "sent-count") == str(expected["sent"])
    assert text(browser, "accounted-count") == str(expected["accounted"])
    assert text(browser, "findings-count") == str(expected["findings"]) == "1"
    assert text(browser, "chains-count") == str(expected["chains"])
    [row] = browser.find_elements(By.CSS_SELECTOR, "#findings tbody tr")
    cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
    assert cells[0] == "LOST" and cells[2] == str(p.lost_message)
    assert (cells[3], cells[4]) == (p.sender, p.lost_at)  # sender's chain, recipient at fault
    chains = browser.find_elements(By.CSS_SELECTOR, "#chains tbody tr")
    assert len(chains) == expected["chains"]
    assert all(r.find_elements(By.TAG_NAME, "td")[1].text == "ok" for r in chains)
    assert all(int(r.find_elements(By.TAG_NAME, "td")[3].text) > 0 for r in chains)  # checkpoints
    shot(browser, shots, "1-network")

    # the cases: the counts, the planted overdue case, and the filter
    browser.find_element(By.LINK_TEXT, "Cases").click()
    wait.until(ec.presence_of_element_located((By.ID, "cases")))
    assert text(browser, "cases-count") == str(expected["cases"]) == str(CASES + 2)
    assert text(browser, "overdue-count") == str(expected["rest_periods_overdue"]) == "1"
    assert str(p.overdue_case) in browser.find_element(By.ID, "cases").text
    shot(browser, shots, "2-cases")
    browser.find_element(By.ID, "overdue").click()
    browser.find_element(By.ID, "filter").click()
    wait.until(ec.url_contains("overdue=1"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#cases tbody tr")
    assert [r.find_element(By.TAG_NAME, "code").text for r in rows] == [str(p.overdue_case)]
    assert "OVERDUE" in rows[0].text and "rest period" in rows[0].text
    shot(browser, shots, "3-cases-overdue")

    # one case's timeline, from the audit metadata of every chain
    browser.find_element(By.LINK_TEXT, str(p.overdue_case)).click()
    wait.until(ec.presence_of_element_located((By.ID, "timeline")))
    assert text(browser, "case-id") == str(p.overdue_case)
    assert text(browser, "case-overdue") == "OVERDUE"
    timeline = browser.find_element(By.ID, "timeline").text
    assert "IntakeRegistered" in timeline and "DossierDelivered" in timeline
    assert "SENT" in timeline and "DELIVERED" in timeline and "RECEIPT_SENT" in timeline
    shot(browser, shots, "4-case-timeline")

    # a message's proof: found, downloaded, and it checks with the gateways' keys
    browser.find_element(By.LINK_TEXT, "Proofs").click()
    browser.find_element(By.ID, "message_id").send_keys(str(p.delivered_message))
    browser.find_element(By.ID, "find").click()
    wait.until(ec.presence_of_element_located((By.ID, "proof-summary")))
    proven = int(browser.find_element(By.CSS_SELECTOR, "#proof-summary b").text)
    assert proven >= 2  # at least the SENT and a DELIVERED
    shot(browser, shots, "5-proof")
    browser.find_element(By.ID, "download").click()
    downloaded = tmp_path / "downloads" / f"proof-{p.delivered_message}.json"
    deadline = time.monotonic() + WAIT_S
    while not downloaded.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    document = json.loads(downloaded.read_text())
    assert document["message_id"] == str(p.delivered_message)
    assert len(document["proofs"]) == proven
    for proof in document["proofs"]:
        party = p.directory.parties[proof["gateway"]]
        keys = [signing_public_key(k.public_key) for k in party.signing_keys]
        check_proof(proof, keys, uuid.UUID(document["message_id"]))  # raises if not
    only_local(requested(browser))

    # logging out ends the session: the pages want the token again
    browser.find_element(By.CSS_SELECTOR, "form.logout button").click()
    browser.get(url + "/cases")
    assert urlsplit(browser.current_url).path == "/login"


def test_the_gateways_swagger_ui_renders_from_the_gateway_alone(
    gateway_docs: str, browser: WebDriver, tmp_path: Path
) -> None:
    """Issue 17 §5: /docs in a browser loads Swagger UI from the gateway, and nothing else."""
    browser.get(gateway_docs + "/docs")
    title = WebDriverWait(browser, WAIT_S).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, ".swagger-ui .info .title"))
    )
    assert "LVV Exchange gateway" in title.text
    WebDriverWait(browser, WAIT_S).until(  # the operations, from /openapi.json
        ec.visibility_of_element_located((By.CSS_SELECTOR, ".opblock-summary-path"))
    )
    assert "/v1/messages" in browser.find_element(By.CSS_SELECTOR, ".swagger-ui").text
    urls = requested(browser)
    assert f"{gateway_docs}/static-offline-docs/swagger-ui-bundle.js" in urls
    only_local(urls)
    shot(browser, tmp_path, "docs")


async def _expected(served: Served) -> dict[str, Any]:
    """What the pages should show, from the log verified afresh (not from the console)."""
    p = served.planted
    log = EmbeddedTransport(p.folder / "log.db")
    try:
        records = await read_audit(log, p.directory, PREFIX)
    finally:
        await log.close()
    now = _clock()
    report = verify_stream(records, p.directory, now=now)
    return {"sent": report.sent, "accounted": report.accounted, "findings": len(report.errors),
            "chains": len(report.chains), **summary(case_views(report), now)}  # fmt: skip


@pytest.fixture
def gateway_docs(tmp_path: Path) -> Iterator[str]:
    """A gateway's HTTP API on a port of this suite's share, on a thread of its own."""
    from broker.gateway.api import create_app
    from broker.models import PartyRole
    from tests.crypto_net import A
    from tests.unit.gateway.test_api import TOKEN, Stack

    port, loop = free_port(), asyncio.new_event_loop()
    started, stop = threading.Event(), asyncio.Event()

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    async def main() -> None:
        stack = Stack(tmp_path)
        await stack.provision()
        try:
            app = create_app(await stack.started(A[PartyRole.IND]), token=TOKEN)
            server = Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))  # fmt: skip
            serving = asyncio.create_task(server.serve())
            while not server.started and not serving.done():
                await asyncio.sleep(0.01)
            started.set()
            await stop.wait()
            server.should_exit = True
            await serving
        finally:
            started.set()
            await stack.aclose()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(30), "the gateway's API did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
