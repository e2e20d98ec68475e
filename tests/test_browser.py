"""The pages in a real browser: headless Chromium (Debian's `chromium` + `chromium-driver`) driven by
Selenium, against `assistant serve` on a loopback port with the real model and index.

- the chat page, at phone width: ask a question, watch the answer stream in, see a citation link
  and open the cited passage;
- the demo host page: open the widget (a web component, not an iframe), ask, get a streamed answer
  with a citation, styled by the host page's colour."""

from __future__ import annotations

import re
import time

import pytest

from browser_support import BROWSER_MARKS, chromium
from conftest_web import STAFF_KEY, prepared_data_dir, running_server

pytestmark = BROWSER_MARKS
selenium = pytest.importorskip("selenium", reason="pip install selenium (the test extra)")

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

FAQ_QUESTION = "What is the APR of Meadow Cash?"
# Not an FAQ question: the model writes the answer, so there are deltas to stream.
GENERATED_QUESTION = "Tell me about the Meadow Flex credit line"
PHONE = (390, 844)


@pytest.fixture(scope="module")
def server(tmp_path_factory, model_cache):
    data = prepared_data_dir(tmp_path_factory, model_cache, "browser")
    with running_server(data, web_requests_per_minute=100, staff_api_keys=[STAFF_KEY]) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser(tmp_path_factory, server):  # after the server starts, before it stops
    driver = chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


RECORD_CHANGES = """
window.__texts = [];
const seen = () => {
  const bots = document.querySelectorAll('#meadow-chat [data-testid="bot"]');
  const last = bots[bots.length - 1];
  if (last) { const t = last.innerText; if (window.__texts[window.__texts.length - 1] !== t) window.__texts.push(t); }
};
new MutationObserver(seen).observe(document.querySelector('#meadow-chat'),
  {subtree: true, childList: true, characterData: true});
"""


def phone_width(browser, on: bool) -> None:
    """Headless Chromium's window is at least 500 px wide: emulate a phone's viewport instead."""
    if on:
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": PHONE[0], "height": PHONE[1], "deviceScaleFactor": 1, "mobile": True})
    else:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_chat_page_streams_an_answer_with_a_citation_at_phone_width(browser, server):
    phone_width(browser, True)
    browser.get(server.url + "/chat/")
    assert browser.execute_script("return document.documentElement.scrollWidth") <= PHONE[0]
    wait = WebDriverWait(browser, 60)
    box = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#message textarea"))
    send = browser.find_element(By.CSS_SELECTOR, "#send")
    assert send.rect["x"] + send.rect["width"] <= PHONE[0] + 1  # everything fits a phone's width
    browser.execute_script(RECORD_CHANGES)
    box.send_keys(GENERATED_QUESTION)
    send.click()
    link = WebDriverWait(browser, 240).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, '#meadow-chat a[href*="/kb/chunks/"]'))[0]
    texts = browser.execute_script("return window.__texts")
    assert len(texts) >= 3, texts  # the placeholder, partial text as it streamed, the final answer
    assert "Sources" in texts[-1]
    href = link.get_attribute("href")
    assert "flex" in href.lower()

    browser.get(href)
    passage = browser.find_element(By.CSS_SELECTOR, "article.passage")
    assert "Flex" in passage.text


def test_suggested_question_answered_on_the_chat_page(browser, server):
    browser.get(server.url + "/chat/")
    wait = WebDriverWait(browser, 60)
    button = wait.until(lambda d: next((b for b in d.find_elements(By.CSS_SELECTOR, "button.suggestion")
                                        if b.text.strip() == FAQ_QUESTION), None))
    button.click()
    wait.until(lambda d: "9.9%" in d.find_element(By.CSS_SELECTOR, "#meadow-chat").text)
    assert browser.find_elements(By.CSS_SELECTOR, '#meadow-chat a[href*="/kb/chunks/"]')


def test_widget_on_the_demo_host_page(browser, server):
    phone_width(browser, False)
    browser.get(server.url + "/demo")
    host = WebDriverWait(browser, 30).until(lambda d: d.find_element(By.CSS_SELECTOR, "meadow-chat"))
    assert not browser.find_elements(By.TAG_NAME, "iframe")
    root = host.shadow_root
    bubble = root.find_element(By.CSS_SELECTOR, ".bubble")
    assert bubble.value_of_css_property("background-color") == "rgba(123, 44, 191, 1)"  # the host's colour
    bubble.click()
    panel = root.find_element(By.CSS_SELECTOR, ".panel")
    assert panel.is_displayed()
    assert "installments" in root.find_element(By.CSS_SELECTOR, ".log").text  # the data-greeting

    box = root.find_element(By.CSS_SELECTOR, "textarea")
    box.send_keys(FAQ_QUESTION)
    root.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    citation = WebDriverWait(browser, 120).until(lambda d: host.shadow_root.find_elements(By.CSS_SELECTOR,
                                                                                            "a.citation"))[0]
    assert citation.get_attribute("href").startswith(server.url + "/kb/chunks/")
    replies = root.find_elements(By.CSS_SELECTOR, ".msg.bot")
    assert "9.9%" in replies[-1].text
    root.find_elements(By.CSS_SELECTOR, ".rate button")[0].click()  # thumbs up, stored server-side
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and '"rating": "up"' not in server.log():
        time.sleep(0.2)
    assert '"rating": "up"' in server.log()


def test_staff_pages_after_login_highlight_compliance_findings(browser, server):
    phone_width(browser, False)
    browser.get(server.url + "/staff/")
    wait = WebDriverWait(browser, 60)
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "input[type=password]"))
    assert not browser.find_elements(By.CSS_SELECTOR, "button[role=tab]")  # nothing before the login
    browser.find_element(By.CSS_SELECTOR, "input[type=text]").send_keys("alice")
    browser.find_element(By.CSS_SELECTOR, "input[type=password]").send_keys(STAFF_KEY + Keys.ENTER)
    # every tab starts hidden; the page load shows the key's (all four here, together)
    tabs = wait.until(lambda d: [b.text for b in d.find_elements(By.CSS_SELECTOR, "button[role=tab]")])
    assert tabs == ["Marketing studio", "Complaints", "QA", "Inbox"]  # a key with no role listed: every tab

    copy = browser.find_element(By.XPATH, "//label[.//span[normalize-space()='Copy']]//textarea")
    copy.send_keys("Meadow Cash: guaranteed approval for everyone!")
    next(b for b in browser.find_elements(By.TAG_NAME, "button") if b.text.strip() == "Check compliance").click()
    mark = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "mark.sev-critical"))[0]
    assert "guaranteed approval" in mark.text.lower()


def test_talk_to_a_person_shows_the_ticket(browser, server):
    phone_width(browser, False)
    browser.get(server.url + "/chat/")
    wait = WebDriverWait(browser, 60)
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#handoff")).click()
    card = WebDriverWait(browser, 120).until(
        lambda d: next((e for e in d.find_elements(By.CSS_SELECTOR, "#ticket") if e.is_displayed()
                        and "Ticket" in e.text), None))
    assert re.search(r"Ticket [A-Z]+-\d{6}-\w+", card.text) and "answers by" in card.text
