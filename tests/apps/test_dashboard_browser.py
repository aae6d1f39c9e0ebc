"""The dashboard in a real headless browser (issue 18): Debian's chromium driven by selenium
through /usr/bin/chromedriver (scripts/test.sh installs both).  Against a running cluster of
ours (subprocesses): the pages load, their numbers match rmqadmin's, message lookup by key and
by id finds a sent message.  Screenshots are kept under the test's tmp_path (printed)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from tests.compat.ours import REPO, start_ours
from tests.compat.processes import ManagedProcess, child_env, free_port, spawn
from tests.compat.servers import Target

CHROMEDRIVER = "/usr/bin/chromedriver"
TOPIC, GROUP, KEY = "DASH_T", "dash_cg", "dash-key"

pytestmark = pytest.mark.skipif(
    shutil.which("chromium") is None or not Path(CHROMEDRIVER).exists(),
    reason="needs Debian's chromium and chromium-driver (scripts/test.sh installs them)",
)


async def make_state(namesrv: str) -> dict[str, str]:
    """10 messages consumed and committed by GROUP, then 3 more: a lag of 3."""
    from actors.client import ConsumeFromWhere, LitePullConsumer, Message, Producer

    async with Producer("dash_pg", namesrv=namesrv) as producer:
        first = await producer.send(Message(TOPIC, b"hello dashboard", keys=KEY))
        for i in range(9):
            await producer.send(Message(TOPIC, f"m{i}".encode()))
        async with LitePullConsumer(
            GROUP, namesrv=namesrv, consume_from_where=ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET
        ) as consumer:
            await consumer.subscribe(TOPIC)
            got = 0
            while got < 10:
                got += len(await consumer.poll(timeout=1.0))
            await consumer.commit()
        for i in range(3):
            await producer.send(Message(TOPIC, f"late{i}".encode()))
    return {"msgId": first.msg_id, "offsetMsgId": first.offset_msg_id}


def rmqadmin(*args: str) -> object:
    done = subprocess.run(
        [sys.executable, "-m", "apps.admin", *args, "--json"],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    target = start_ours(tmp_path_factory.mktemp("ops-dashboard") / "cluster")
    yield target
    target.stop(grace=10.0)


@pytest.fixture(scope="module")
def dashboard(cluster: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    proc: ManagedProcess = spawn(
        "dashboard",
        [sys.executable, "-m", "apps.dashboard", "-n", cluster.namesrv_addr, "--port", str(port)],
        log_dir=tmp_path_factory.mktemp("ops-dashboard-logs"),
        cwd=REPO,
        env=child_env(),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url + "/", timeout=2) as reply:
                assert reply.status == 200
                break
        except (urllib.error.URLError, ConnectionError):
            assert proc.alive(), proc.describe()
            assert time.monotonic() < deadline, proc.describe()
            time.sleep(0.2)
    yield url
    proc.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1600",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    options.binary_location = shutil.which("chromium") or "chromium"
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def test_pages_match_rmqadmin_and_lookup_finds_the_message(
    cluster: Target, dashboard: str, browser, tmp_path: Path
) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    ids = trio.run(make_state, cluster.namesrv_addr)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"\ndashboard screenshots: {shots}")
    # the page re-renders its tables every 2 s: a handle found just before may be gone
    wait = WebDriverWait(browser, 15, ignored_exceptions=(StaleElementReferenceException,))

    def click(by: str, what: str) -> None:
        def clicked(d) -> bool:
            d.find_element(by, what).click()
            return True

        wait.until(clicked)

    def rows(table: str) -> list[list[str]]:
        # one script call: the page re-renders its tables every 2 s, so element handles go
        # stale between separate reads
        return browser.execute_script(
            "return [...document.querySelectorAll(arguments[0])].map("
            "tr => [...tr.querySelectorAll('td')].map(td => td.textContent));",
            f"#{table} tbody tr",
        )

    def until_rows(table: str, check) -> list[list[str]]:
        wait.until(lambda _: check(rows(table)))
        return rows(table)

    browser.get(dashboard + "/")
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-loaded") == "yes")
    # cluster: the broker, its role and address as rmqadmin clusterList says
    admin_brokers = rmqadmin("clusterList", "-n", cluster.namesrv_addr)
    brokers = until_rows("brokers", lambda r: len(r) == len(admin_brokers))
    assert [(b[0], b[1], b[3], b[4]) for b in brokers] == [
        (b["cluster"], b["brokerName"], b["addr"], "MASTER") for b in admin_brokers
    ]
    browser.save_screenshot(str(shots / "1-cluster.png"))

    # consumer groups: the lag the page shows is rmqadmin's Diff Total
    progress = rmqadmin("consumerProgress", "-n", cluster.namesrv_addr, "-g", GROUP)
    assert progress["diffTotal"] == 3
    groups = until_rows("groups", lambda r: any(g[0] == GROUP for g in r))
    assert next(g for g in groups if g[0] == GROUP)[6] == "3"
    click(By.LINK_TEXT, GROUP)
    queues = until_rows("group-queues", lambda r: len(r) > 0)
    page = sorted((int(q[2]), int(q[3]), int(q[4]), int(q[5])) for q in queues if q[0] == TOPIC)
    admin_q = sorted(
        (q["queueId"], q["brokerOffset"], q["consumerOffset"], q["diff"])
        for q in progress["queues"]
        if q["topic"] == TOPIC
    )
    assert page == admin_q
    browser.save_screenshot(str(shots / "2-groups.png"))

    # topics: per-queue offsets as rmqadmin topicStatus
    wait.until(
        lambda d: (
            TOPIC in [o.text for o in d.find_elements(By.CSS_SELECTOR, "#topic-select option")]
        )
    )
    Select(browser.find_element(By.ID, "topic-select")).select_by_value(TOPIC)
    status = rmqadmin("topicStatus", "-n", cluster.namesrv_addr, "-t", TOPIC)
    expected = sorted((s["queueId"], s["minOffset"], s["maxOffset"]) for s in status)
    wait.until(
        lambda _: (
            sorted((int(r[1]), int(r[2]), int(r[3])) for r in rows("topic-queues")) == expected
        )
    )
    assert sum(e[2] for e in expected) == 13
    browser.save_screenshot(str(shots / "3-topic.png"))

    # message lookup by key, then by id
    browser.find_element(By.ID, "msg-topic").send_keys(TOPIC)
    browser.find_element(By.ID, "msg-key").send_keys(KEY)
    browser.find_element(By.ID, "find-key").click()
    found = until_rows("messages", lambda r: len(r) > 0)
    assert [m[1] for m in found] == [ids["msgId"]]
    assert found[0][7] == "hello dashboard"
    browser.save_screenshot(str(shots / "4-by-key.png"))
    browser.find_element(By.ID, "msg-id").send_keys(ids["offsetMsgId"])
    browser.find_element(By.ID, "find-id").click()
    found = until_rows("messages", lambda r: len(r) == 1 and r[0][0] == ids["offsetMsgId"])
    assert found[0][1] == ids["msgId"]
    browser.save_screenshot(str(shots / "5-by-id.png"))
    # the TPS chart is drawn (a non-empty canvas)
    assert browser.execute_script(
        "const c = document.getElementById('tps-chart');"
        "return c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some(v => v !== 0);"
    )


def test_read_only_unless_admin(dashboard: str) -> None:
    request = urllib.request.Request(
        dashboard + "/api/topic", data=b'{"topic": "X", "cluster": "Y"}', method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    refused.value.close()
    assert refused.value.code == 403
