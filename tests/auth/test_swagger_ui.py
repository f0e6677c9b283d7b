"""Swagger UI's Authorize button, in a real browser (Debian's headless Chromium driven by
Selenium): the page of ``usersvc serve`` with ``USERSVC_AUTH=jwt`` gets a token from a
real OpenID provider by the client credentials grant, with the scopes ticked, and
"Try it out" then calls the service with it; the scopes decide 201 versus 403."""

import os
import shutil
from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as shown
from selenium.webdriver.support.ui import WebDriverWait

CLIENT = ("usersvc-tests", "usersvc-tests-secret")
CREATE_USER = "#operations-users-create_user"


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    # Debian's packages (.ci/run installs them), or the Chrome of GitHub's runners.
    chromium = shutil.which("chromium") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver") or shutil.which(
        "chromedriver", path=os.environ.get("CHROMEWEBDRIVER")
    )
    assert chromium, "Chromium is needed (Debian's chromium package)"
    assert driver, "its driver is needed (Debian's chromium-driver package)"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,4000",  # the whole dialog on the screen, nothing to scroll to
    ):
        options.add_argument(argument)
    found = webdriver.Chrome(options=options, service=Service(driver))
    try:
        yield found
    finally:
        found.quit()


def _wait(browser: WebDriver, css: str, seconds: float = 20) -> WebElement:
    return WebDriverWait(browser, seconds).until(
        shown.visibility_of_element_located((By.CSS_SELECTOR, css))
    )


def _authorize(browser: WebDriver, scopes: list[str] | None) -> None:
    """Authorize in the dialog with the client's credentials and ``scopes`` (None: all)."""
    browser.find_element(By.CSS_SELECTOR, "button.authorize").click()
    dialog = _wait(browser, ".modal-ux")
    dialog.find_element(By.ID, "client_id_clientCredentials").send_keys(CLIENT[0])
    dialog.find_element(By.ID, "client_secret_clientCredentials").send_keys(CLIENT[1])
    if scopes is None:
        dialog.find_element(By.CSS_SELECTOR, ".scopes a[data-all='true']").click()
    else:
        for scope in scopes:
            box = dialog.find_element(By.ID, f"{scope}-clientCredentials-checkbox-oauth2")
            browser.execute_script("arguments[0].click()", box)  # its label covers it
    dialog.find_element(By.CSS_SELECTOR, "button.modal-btn.authorize").click()
    # Authorized: the dialog offers to log out; a failure shows its error instead.
    WebDriverWait(browser, 20).until(
        lambda b: (
            b.find_elements(By.XPATH, "//div[@class='modal-ux']//button[.='Logout']")
            or b.find_elements(By.CSS_SELECTOR, ".modal-ux .errors")
        )
    )
    errors = browser.find_elements(By.CSS_SELECTOR, ".modal-ux .errors")
    assert not errors, errors[0].text
    browser.find_element(By.CSS_SELECTOR, ".modal-ux button.btn-done").click()


def _log_out(browser: WebDriver) -> None:
    browser.find_element(By.CSS_SELECTOR, "button.authorize").click()
    _wait(browser, ".modal-ux")
    browser.find_element(By.XPATH, "//div[@class='modal-ux']//button[.='Logout']").click()
    browser.find_element(By.CSS_SELECTOR, ".modal-ux button.btn-done").click()


def _try_create_user(browser: WebDriver) -> str:
    """Try it out on create_user with the document's example body; the status shown."""
    operation = browser.find_element(By.CSS_SELECTOR, CREATE_USER)
    if not operation.find_elements(By.CSS_SELECTOR, "button.execute"):
        if not operation.find_elements(By.CSS_SELECTOR, "button.try-out__btn"):
            operation.find_element(By.CSS_SELECTOR, ".opblock-summary-control").click()
        _wait(browser, f"{CREATE_USER} button.try-out__btn").click()
    for clear in operation.find_elements(By.CSS_SELECTOR, "button.btn-clear"):
        clear.click()  # the last answer goes, so the one read below is the new one
    WebDriverWait(browser, 20).until_not(
        lambda b: b.find_elements(By.CSS_SELECTOR, f"{CREATE_USER} .live-responses-table")
    )
    _wait(browser, f"{CREATE_USER} button.execute").click()
    status = _wait(browser, f"{CREATE_USER} .live-responses-table tbody .response-col_status")
    return status.text.split()[0]


def test_the_authorize_button_gets_a_token_whose_scopes_try_it_out_uses(
    browser: WebDriver, served: str
):
    browser.get(served + "/api/docs")
    _wait(browser, "button.authorize")

    assert _try_create_user(browser) == "401"  # no token yet
    _authorize(browser, ["users:read"])
    assert _try_create_user(browser) == "403"  # a token without users:write
    _log_out(browser)
    _authorize(browser, None)
    assert _try_create_user(browser) == "201"
