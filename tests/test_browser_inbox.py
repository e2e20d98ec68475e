"""A real hand-off in a real browser (headless Chromium from apt, driven by Selenium, as in
test_browser.py) against `assistant serve` with the real model and index:

- a customer on the chat page asks for a person; no agent is online, so the page offers a contact
  field and takes an e-mail address;
- an agent (a key whose only role is "agent") signs in to the staff pages, sees only the Inbox tab,
  claims the ticket, sees the contact, and answers;
- the customer sees the answer appear in the chat page; the same round trip through the widget on
  the demo host page."""

from __future__ import annotations

import re

import pytest

from browser_support import BROWSER_MARKS, chromium
from conftest_web import STAFF_KEY, prepared_data_dir, running_server
from serve.auth import key_digest

pytestmark = BROWSER_MARKS
selenium = pytest.importorskip("selenium", reason="pip install selenium (the test extra)")

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

AGENT_KEY = "agent-key-for-browser-tests-0123"
TICKET = re.compile(r"\b[A-Z]{2,4}-\d{6}-\w{6}\b")


@pytest.fixture(scope="module")
def server(tmp_path_factory, model_cache):
    data = prepared_data_dir(tmp_path_factory, model_cache, "browser-inbox")
    with running_server(data, web_requests_per_minute=200, staff_api_keys=[STAFF_KEY, AGENT_KEY],
                        staff_roles={key_digest(AGENT_KEY): "agent"}, inbox_presence_s=8) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser(tmp_path_factory, server):
    driver = chromium(tmp_path_factory.mktemp("chromium-profile-inbox"))
    yield driver
    driver.quit()


def field(driver, elem_id: str):
    return driver.find_element(By.CSS_SELECTOR, f"#{elem_id} textarea, #{elem_id} input")


def click_button(driver, elem_id: str) -> None:
    node = driver.find_element(By.CSS_SELECTOR, f"#{elem_id}")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", node)
    node.click()


def sign_in_as_agent(driver, url: str) -> None:
    driver.get(url + "/staff/")
    wait = WebDriverWait(driver, 60)
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "input[type=password]"))
    driver.find_element(By.CSS_SELECTOR, "input[type=text]").send_keys("sam")
    driver.find_element(By.CSS_SELECTOR, "input[type=password]").send_keys(AGENT_KEY + Keys.ENTER)
    inbox_tab = wait.until(lambda d: next((b for b in d.find_elements(By.CSS_SELECTOR, "button[role=tab]")
                                           if b.text.strip() == "Inbox" and b.is_displayed()), None))
    inbox_tab.click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#inbox-claim"))


def answer_in_inbox(driver, ticket_id: str, answer: str, expect_contact: str | None = None) -> None:
    wait = WebDriverWait(driver, 60)
    box = field(driver, "inbox-ticket")
    box.clear()
    box.send_keys(ticket_id)
    click_button(driver, "inbox-claim")
    wait.until(lambda d: "claimed by staff:sam" in d.find_element(By.CSS_SELECTOR, "#inbox-conversation").text)
    if expect_contact:
        assert expect_contact in driver.find_element(By.CSS_SELECTOR, "#inbox-conversation").text
    field(driver, "inbox-reply").send_keys(answer)
    click_button(driver, "inbox-send")
    wait.until(lambda d: answer in d.find_element(By.CSS_SELECTOR, "#inbox-conversation").text)


def test_handoff_answered_by_an_agent_in_the_chat_page_and_the_widget(browser, server):
    # 1. the customer asks for a person on the chat page; no agent is online yet
    browser.get(server.url + "/chat/")
    customer_tab = browser.current_window_handle
    WebDriverWait(browser, 60).until(lambda d: d.find_element(By.CSS_SELECTOR, "#handoff")).click()
    card = WebDriverWait(browser, 180).until(
        lambda d: next((e for e in d.find_elements(By.CSS_SELECTOR, "#ticket") if e.is_displayed()
                        and TICKET.search(e.text)), None))
    ticket_id = TICKET.search(card.text).group(0)
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.CSS_SELECTOR, "#contact-row").is_displayed())
    field(browser, "contact").send_keys("jo.customer@example.com")
    click_button(browser, "contact-send")
    WebDriverWait(browser, 30).until(lambda d: "Thank you" in d.find_element(By.CSS_SELECTOR, "#contact-note").text)

    # 2. an agent signs in (only the Inbox tab), claims the ticket, sees the contact, answers
    browser.switch_to.new_window("tab")
    staff_tab = browser.current_window_handle
    sign_in_as_agent(browser, server.url)
    # only the agent's tab is shown (every action also re-checks the role on the server)
    tabs = WebDriverWait(browser, 30).until(
        lambda d: [b.text for b in d.find_elements(By.CSS_SELECTOR, "button[role=tab]") if b.is_displayed()])
    assert tabs == ["Inbox"], tabs
    answer = "Hello, this is Sam from the Meadow team: your repayment date can move to the 15th."
    answer_in_inbox(browser, ticket_id, answer, expect_contact="jo.customer@example.com")

    # 3. the customer sees the answer in the chat page
    browser.switch_to.window(customer_tab)
    WebDriverWait(browser, 30).until(lambda d: answer in d.find_element(By.CSS_SELECTOR, "#meadow-chat").text)
    assert "Meadow team" in browser.find_element(By.CSS_SELECTOR, "#meadow-chat").text

    # 4. the same through the widget on the demo host page
    browser.get(server.url + "/demo")
    host = WebDriverWait(browser, 30).until(lambda d: d.find_element(By.CSS_SELECTOR, "meadow-chat"))
    host.shadow_root.find_element(By.CSS_SELECTOR, ".bubble").click()
    host.shadow_root.find_element(By.CSS_SELECTOR, "button.person").click()
    line = WebDriverWait(browser, 180).until(
        lambda d: next((e for e in host.shadow_root.find_elements(By.CSS_SELECTOR, ".ticket")
                        if TICKET.search(e.text)), None))
    widget_ticket = TICKET.search(line.text).group(0)
    assert widget_ticket != ticket_id

    browser.switch_to.window(staff_tab)
    widget_answer = "Hi again from Sam: I have noted your request, nothing more is needed from you."
    answer_in_inbox(browser, widget_ticket, widget_answer)

    browser.switch_to.window(customer_tab)  # the demo page is in this tab now
    agent = WebDriverWait(browser, 30).until(
        lambda d: next((e for e in host.shadow_root.find_elements(By.CSS_SELECTOR, ".msg.agent")
                        if widget_answer in e.text), None))
    assert "Meadow team" in agent.text
