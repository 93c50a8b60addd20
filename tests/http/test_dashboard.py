"""The dashboard in real headless Chromium (Debian's, driven by Playwright): the page
loads, a client the test connected appears, it is kicked from the page, and a watched
topic shows a message published while watching.

``ROOST_DASHBOARD_SCREENSHOT=docs/dashboard.png`` also writes the README's screenshot,
after some seconds of traffic so that the chart has something to show.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from roost.broker.config import HttpConfig
from roost.codec import MQTT_3_1_1, MQTT_5
from roost.http.apikeys import create_key
from tests.http.client import http_port
from tests.support.broker_thread import BrokerThread
from tests.support.mosquitto_tools import mosquitto_pub
from tests.support.paho import PahoClient
from tests.support.waiting import wait_until

CHROMIUM = "/usr/bin/chromium"  # Makefile DEB_PACKAGES; Playwright's own download is not used
TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # Chromium's sandbox needs user namespaces, which a root user in a container lacks.
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        yield chromium
        chromium.close()


@pytest.fixture
def page_errors() -> list[str]:
    """Script errors and failed loads the page reported (a test may remove expected ones)."""
    return []


@pytest.fixture
def page(browser: Browser, page_errors: list[str]) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors = page_errors
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield page
    context.close()
    assert not errors, errors  # no script errors and no CSP violations


def _traffic(port: int, seconds: float) -> None:
    """Publish a few hundred messages a second for a while, for the chart."""
    publisher = PahoClient(port, "sensor-gateway", MQTT_5)
    listener = PahoClient(port, "analytics", MQTT_5)
    listener.subscribe("plant/#", 0)
    end = time.monotonic() + seconds
    count = 0
    while time.monotonic() < end:
        publisher.client.publish(f"plant/line{count % 4}/speed", str(count % 97).encode(), 0)
        count += 1
        time.sleep(0.004)


def test_dashboard_shows_kicks_and_watches(http_broker: BrokerThread, page: Page) -> None:
    port = http_broker.port
    mosquitto_pub(port, "-t", "house/kitchen/temp", "-m", "21.5", "-r")
    mosquitto_pub(port, "-t", "house/hall/light", "-m", "on", "-r")
    victim = PahoClient(port, "dash-victim", MQTT_5, keepalive=20)
    PahoClient(port, "legacy-meter", MQTT_3_1_1)

    page.goto(f"http://127.0.0.1:{http_port(http_broker)}/")
    expect(page.locator("#live-state")).to_have_text("live")
    row = page.locator('#clients tr[data-clientid="dash-victim"]')
    expect(row).to_be_visible()
    expect(row).to_contain_text("5.0")
    expect(page.locator('#clients tr[data-clientid="legacy-meter"]')).to_contain_text("3.1.1")
    expect(page.locator("#stat-connections")).to_have_text("2")
    expect(page.locator("#stat-retained")).to_have_text("2")

    # Search narrows the list.
    page.fill("#client-search", "legacy")
    expect(row).to_have_count(0)
    expect(page.locator('#clients tr[data-clientid="legacy-meter"]')).to_be_visible()
    page.fill("#client-search", "")
    expect(row).to_be_visible()

    # The retained-message tree: a topic's payload on click.
    page.click('#topic-tree [data-topic="house/kitchen/temp"]')
    expect(page.locator("#retained-payload")).to_contain_text("21.5")

    # Watch a topic: a message published now appears.
    page.fill("#watch-topic", "alerts/#")
    page.click("#watch-button")
    router = http_broker.broker.router
    wait_until(lambda: http_broker.call(lambda: router.observer is not None))
    mosquitto_pub(port, "-t", "alerts/boiler", "-m", "pressure low")
    watched = page.locator("#watch-messages li").first
    expect(watched).to_contain_text("alerts/boiler")
    expect(watched).to_contain_text("pressure low")

    screenshot = os.environ.get("ROOST_DASHBOARD_SCREENSHOT")
    if screenshot:
        traffic = threading.Thread(target=_traffic, args=(port, 12.0))
        traffic.start()
        time.sleep(6)  # a screenshot only: the chart fills with the traffic's rates
        mosquitto_pub(port, "-t", "alerts/boiler", "-m", "pressure back to normal")
        time.sleep(6)
        traffic.join()
        page.screenshot(path=screenshot, full_page=True)

    # Kick from the page: the client hears Administrative action, the row goes.
    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("button.kick").click()
    assert victim.disconnected.wait(5)
    assert victim.disconnect_reason.value == 0x98
    expect(row).to_have_count(0)
    expect(page.locator("#stat-connections")).to_have_text("3" if screenshot else "1")


def test_dashboard_asks_for_a_key_when_one_is_needed(
    make_broker: Callable[..., BrokerThread], page: Page, page_errors: list[str], tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    key = create_key(keys, "browser")
    broker = make_broker(http=HttpConfig(port=0, api_keys_file=str(keys)))
    PahoClient(broker.port, "keyed-client", MQTT_5)
    page.goto(f"http://127.0.0.1:{http_port(broker)}/")
    expect(page.locator("#key-form")).to_be_visible()
    page.fill("#key-input", key)
    page.click("#key-form button")
    expect(page.locator("#key-form")).to_be_hidden()
    expect(page.locator('#clients tr[data-clientid="keyed-client"]')).to_be_visible()
    # The page's first calls, without a key, were refused: that is what showed the form.
    refused = [error for error in page_errors if "401 (Unauthorized)" in error]
    assert refused
    page_errors[:] = [error for error in page_errors if error not in refused]
