"""The contributor web app in a real headless Chromium (Debian's, driven by Playwright) against
the real local stack and services: sign-in, two submissions (one a copy) and their fates, a
balance that changes without reloading once an operator starts a round, a wrong token refused,
and the operator's flow with its dead-letter counts; each page passes axe-core's WCAG 2.1 AA
rules. Screenshots of the main pages go to docs/screenshots/."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from axe_playwright_python.async_playwright import Axe

from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.contributor_store import ContributorStore
from crowdsft.adapters.feedback_producer import FeedbackProducer
from crowdsft.adapters.kafka import started_broker
from crowdsft.adapters.mongo import Database
from crowdsft.auth import hash_token, new_token
from crowdsft.contracts import FeedbackSubmitted, new_event_id, topics, utc_now
from crowdsft.settings import settings_from
from infra.localstack import free_port
from tests.integration.campaign_runs import ROUND_SERVICES
from tests.support.kafka_io import produce_raw
from tests.support.stack import REPO, ServiceProcess, wait_http

playwright_api = pytest.importorskip("playwright.async_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip(
        "Debian's chromium is not installed (make install adds it)", allow_module_level=True
    )

SHOTS = REPO / "docs" / "screenshots"
# Without the background-networking flags Chromium keeps dialling out of a closed network.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update",
         "--disable-sync"]  # fmt: skip
SPEC = """campaign_id: web-points
name: Points from the web
target: [3.5, 4.0, 2.5]
n_groups: 2
points_rule: rank
judge_error: 0.0
policy: {mode: manual, max_rounds: 3}
seed: 4
"""


class Site:
    def __init__(self, url: str, token: str, operator: str, env: dict[str, str]) -> None:
        self.url, self.token, self.operator, self.env = url, token, operator, env


@pytest.fixture(scope="module")
async def site(stack_env: dict[str, str], db: Database,
               tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:  # fmt: skip
    tmp = tmp_path_factory.mktemp("web")
    operator = new_token()
    ports = {name: free_port() for name in ("gateway", "balances", "web")}
    env = {
        **stack_env,
        "CROWDSFT_GATEWAY_PORT": str(ports["gateway"]),
        "CROWDSFT_BALANCES_PORT": str(ports["balances"]),
        "CROWDSFT_WEB_PORT": str(ports["web"]),
        "CROWDSFT_WEB_GATEWAY_URL": f"http://127.0.0.1:{ports['gateway']}",
        "CROWDSFT_WEB_BALANCES_URL": f"http://127.0.0.1:{ports['balances']}",
        "CROWDSFT_GATEWAY_OPERATOR_TOKEN_SHA256": hash_token(operator),
        "CROWDSFT_GATEWAY_RATE_LIMIT_BURST": "50",
    }
    _, token = await ContributorStore(db).register("ada", "Ada Lovelace")
    names = [*ROUND_SERVICES, "deadletters", "gateway", "balances", "web"]
    services = {n: ServiceProcess(f"services.{n}", env, tmp / f"{n}.log").start() for n in names}
    try:
        await wait_http(f"http://127.0.0.1:{ports['gateway']}/openapi.json", services["gateway"])
        await wait_http(f"http://127.0.0.1:{ports['balances']}/healthz", services["balances"])
        await wait_http(f"http://127.0.0.1:{ports['web']}/healthz", services["web"])
        yield Site(f"http://127.0.0.1:{ports['web']}", token, operator, env)
    finally:
        for service in services.values():
            service.stop()


@pytest.fixture(scope="module")
def shots() -> Iterator[Path]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield SHOTS


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as driver:
        chromium = await driver.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def accessible(page: Any) -> None:
    """axe-core's WCAG 2.1 A/AA rules (labels, names, contrast, landmarks) find nothing."""
    options = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a",
                                                        "wcag21aa", "best-practice"]}}  # fmt: skip
    found = await Axe().run(page, options=options)
    assert found.violations_count == 0, f"{page.url}\n{found.generate_report()}"


async def sign_in(page: Any, url: str, token: str) -> None:
    await page.goto(f"{url}/signin")
    await page.get_by_label("Token").fill(token)
    await page.get_by_role("button", name="Sign in").click()


async def test_a_wrong_token_is_refused(site: Site, browser: Any) -> None:
    page = await browser.new_page()
    await sign_in(page, site.url, "cs_" + "x" * 40)
    await playwright_api.expect(page.get_by_role("alert")).to_contain_text("not valid")
    await page.goto(f"{site.url}/me")
    await playwright_api.expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


async def test_operator_creates_a_campaign_and_contributor_sees_a_round_pay(
    site: Site, browser: Any, shots: Path, db: Database
) -> None:
    operator = await browser.new_page()
    await sign_in(operator, site.url, site.operator)
    await operator.wait_for_url(f"{site.url}/operator")
    await operator.get_by_label("Campaign spec").fill(SPEC)
    await operator.get_by_role("button", name="Create").click()
    await playwright_api.expect(operator.locator("#done")).to_have_text("Campaign created.")

    # Ada submits her point and the same point again: one stored, one a duplicate.
    ada = await browser.new_page()
    await sign_in(ada, site.url, site.token)
    await ada.wait_for_url(f"{site.url}/me")
    for _ in range(2):
        await ada.goto(f"{site.url}/campaigns/web-points")
        await ada.get_by_label("Your answer").fill("[3.4, 3.9, 2.6]")
        await ada.get_by_role("button", name="Submit").click()
        await ada.wait_for_url("**/me/submissions?sent=*")
    for _ in range(50):  # intake decides within moments; the page shows what it decided
        await ada.reload()
        if await ada.locator("tbody tr.status-rejected").count() == 1:
            break
        await asyncio.sleep(0.3)
    await playwright_api.expect(ada.locator("tbody tr.status-accepted")).to_have_count(1)
    rejected = ada.locator("tbody tr.status-rejected")
    await playwright_api.expect(rejected).to_contain_text("duplicate content")
    await ada.screenshot(path=str(shots / "submissions.png"), full_page=True)
    await accessible(ada)

    # A second contributor, so the round has two groups to rank.
    settings = settings_from(site.env)
    async with started_broker(settings, "test-crowd") as broker:
        await FeedbackProducer(broker).submit([FeedbackSubmitted(
            event_id=new_event_id(), producer="test", campaign_id="web-points",
            contributor_id="bob", prompt="my preference point", response="[0.5, 0.5, 0.5]",
            client_timestamp=utc_now(),
        )])  # fmt: skip
    await ada.goto(f"{site.url}/me?campaign=web-points")
    await playwright_api.expect(ada.locator("#balance")).to_have_text("0")
    rank_before = await ada.locator("#rank").text_content()

    await operator.goto(f"{site.url}/operator/campaigns/web-points")
    await operator.get_by_role("button", name="Start round 0").click()
    await playwright_api.expect(operator.locator("#done")).to_have_text("Asked to start round 0.")
    # Without reloading, Ada's page shows the points the round paid her.
    await playwright_api.expect(ada.locator("#balance")).not_to_have_text("0", timeout=60_000)
    assert float(await ada.locator("#balance").text_content() or 0) > 0
    await playwright_api.expect(ada.locator("#rank")).to_have_text("1", timeout=10_000)
    assert rank_before is not None
    await ada.reload()  # the ledger table is drawn by the server
    await playwright_api.expect(ada.locator("tbody tr").first).to_contain_text("web-points")
    await ada.screenshot(path=str(shots / "balance.png"), full_page=True)
    await accessible(ada)
    await operator.reload()
    await operator.get_by_role("button", name="Start round 1").click()
    await playwright_api.expect(operator.locator("#done")).to_have_text("Asked to start round 1.")
    for _ in range(100):  # a vector round takes moments
        await operator.reload()
        if await operator.get_by_role("button", name="Start round 2").count():
            break
        await asyncio.sleep(0.3)
    rounds = operator.get_by_role("table", name="Rounds").locator("tbody tr")
    await playwright_api.expect(rounds).to_have_count(2)
    # A broken client's record naming the campaign: the operator's page counts it by reason.
    await produce_raw(site.env["CROWDSFT_KAFKA_BOOTSTRAP"], topics.FEEDBACK_SUBMITTED,
                      [(b"k", b'{"campaign_id": "web-points", "prompt": 1}')])  # fmt: skip
    letters = operator.get_by_role("table", name="Dead letters by reason")
    for _ in range(100):
        await operator.reload()
        if await letters.get_by_role("cell", name="invalid_fields").count():
            break
        await asyncio.sleep(0.3)
    await playwright_api.expect(letters.locator("tbody tr")).to_contain_text(["invalid_fields"])
    await playwright_api.expect(operator.locator("#dead-letter-total")).to_contain_text("1 record")
    await operator.screenshot(path=str(shots / "operator.png"), full_page=True)
    await accessible(operator)
    await operator.goto(f"{site.url}/operator")
    await playwright_api.expect(operator).to_have_title("Operator · crowdsft")
    await accessible(operator)
    board = await browser.new_page()
    await board.goto(f"{site.url}/leaderboard?campaign=web-points")
    await playwright_api.expect(board.locator("tbody tr").first).to_contain_text("ada")
    await board.screenshot(path=str(shots / "leaderboard.png"), full_page=True)
    await accessible(board)
    await ada.goto(f"{site.url}/campaigns/web-points")
    await ada.screenshot(path=str(shots / "campaign.png"), full_page=True)
    await accessible(ada)


async def test_pages_say_what_went_wrong(site: Site, browser: Any) -> None:
    page = await browser.new_page()
    answer = await page.goto(f"{site.url}/campaigns/no-such-campaign")
    assert answer is not None and answer.status == 404
    await playwright_api.expect(page.get_by_role("alert")).to_contain_text("Not found")
    await accessible(page)
    await page.goto(f"{site.url}/signin")
    await accessible(page)
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    # A form posted without this site's CSRF value is refused.
    async with httpx.AsyncClient(base_url=site.url) as http:
        forged = await http.post("/signin", data={"token": site.token})
    assert forged.status_code == 403


async def tab_to(page: Any, element_id: str, presses: int = 20) -> None:
    for _ in range(presses):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.id") == element_id:
            return
    raise AssertionError(f"#{element_id} is not reachable with Tab on {page.url}")


async def test_the_keyboard_alone_signs_in_and_submits(
    site: Site, browser: Any, db: Database
) -> None:
    await CampaignStore(db).create("web-keys")  # feedback only: a free prompt
    page = await browser.new_page()
    await page.goto(f"{site.url}/signin")
    await page.keyboard.press("Tab")  # the first stop skips the navigation
    assert await page.evaluate("document.activeElement.className") == "skip"
    await tab_to(page, "token")
    await page.keyboard.type(site.token)
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{site.url}/me")
    await page.goto(f"{site.url}/campaigns/web-keys")
    await tab_to(page, "response")
    await page.keyboard.type("[3.0, 3.0, 3.0]")
    await tab_to(page, "send")
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/me/submissions?sent=*")
