"""Pacing by quota: the crawler's budget (scrapers.quotas) against the sandbox's quotas, on the
sandbox's real HTTP server and on a virtual clock (sandbox.simulation: the same two classes,
with time advanced from event to event)."""

import json
import math
import random
import urllib.request

import pytest

from sandbox.quotas import RollingQuota
from sandbox.server import Sandbox
from sandbox.settings import SandboxSettings
from sandbox.simulation import VirtualClock, run_shard
from scrapers.parsing import GRAPH_RATE_LIMIT_CODES
from scrapers.quotas import Budget, Quota, Throttle, Usage, throttle_of, usage_of


def get(url, headers=None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


# --- what answers say -------------------------------------------------------------------


def test_usage_is_the_highest_counter_of_both_graph_headers_and_regain_is_in_minutes():
    headers = {
        "X-App-Usage": json.dumps({"call_count": 12, "total_cputime": 30, "total_time": 7}),
        "X-Business-Use-Case-Usage": json.dumps(
            {
                "1784": [
                    {
                        "type": "instagram",
                        "call_count": 64,
                        "total_cputime": 2,
                        "total_time": 3,
                        "estimated_time_to_regain_access": 0,
                    }
                ]
            }
        ),
    }
    assert usage_of(headers) == Usage(64.0, 0.0)
    headers["X-Business-Use-Case-Usage"] = json.dumps(
        {"1784": [{"type": "instagram", "call_count": 100, "estimated_time_to_regain_access": 7}]}
    )
    assert usage_of(headers) == Usage(100.0, 420.0)
    assert usage_of({}) is None and usage_of({"X-App-Usage": "not json"}) is None


@pytest.mark.parametrize("code", sorted(GRAPH_RATE_LIMIT_CODES))
def test_every_documented_graph_throttle_code_is_a_throttle(code):
    body = json.dumps({"error": {"code": code, "message": "limit reached", "type": "OAuthException"}}).encode()
    throttle = throttle_of(400, {}, body)
    assert throttle is not None and f"graph error {code}" in throttle.why and throttle.stated_wait is None


def test_throttles_and_their_stated_waits_and_what_is_not_a_throttle():
    please_wait = json.dumps({"message": "Please wait a few minutes before you try again.", "status": "fail"}).encode()
    assert throttle_of(429, {}, please_wait) == Throttle("HTTP 429", None)
    assert throttle_of(429, {"Retry-After": "3"}, b"").stated_wait == 3.0
    assert throttle_of(401, {}, please_wait).why.startswith("HTTP 401: Please wait")  # the web client's other form
    regain = {
        "X-Business-Use-Case-Usage": json.dumps({"1": [{"call_count": 100, "estimated_time_to_regain_access": 2}]})
    }
    buc = json.dumps({"error": {"code": 80002, "message": "too many calls"}}).encode()
    assert throttle_of(400, regain, buc).stated_wait == 120.0
    assert throttle_of(503, {}, b'{"message": "Oops, an error occurred.", "status": "fail"}') is None
    assert throttle_of(400, {}, json.dumps({"error": {"code": 110, "message": "Invalid user id"}}).encode()) is None
    assert throttle_of(200, regain, b'{"business_discovery": {}}') is None


# --- the budget -------------------------------------------------------------------------


def test_calls_in_flight_count_so_no_concurrency_overshoots_the_target():
    clock = VirtualClock()
    budget = Budget(Quota(calls=10, window_seconds=60, target_usage=0.8), clock)
    sent = [budget.start(clock.now)]  # the first call goes alone (slow start)
    assert budget.wait(clock.now) == math.inf
    budget.end(sent.pop(), clock.now)
    while budget.wait(clock.now) == 0:
        sent.append(budget.start(clock.now))
        if budget.wait(clock.now) == math.inf and sent:  # the ramp: answers let more out
            budget.end(sent.pop(0), clock.now)
    assert budget.used(clock.now) == 8  # 80 % of 10, in flight and answered alike
    # Nothing frees until the oldest answered call leaves the window (60 s after its answer).
    assert 0 < budget.wait(clock.now) <= 60
    clock.now += 60
    assert budget.wait(clock.now) in (0.0, math.inf)


def test_a_stated_wait_blocks_every_call_until_it_is_over():
    clock = VirtualClock()
    budget = Budget(Quota(calls=100, window_seconds=60), clock)
    budget.end(budget.start(0.0), 0.0)
    budget.throttled(Throttle("HTTP 429", 5.0), None, 0, 1.0, 0.0)
    assert budget.wait(0.0) == 5.0 and budget.wait(4.0) == 1.0 and budget.wait(5.0) == 0.0


def test_usage_headers_lower_the_limit_and_a_throttle_without_them_teaches_it():
    clock = VirtualClock()
    budget = Budget(Quota(calls=1000, window_seconds=60, target_usage=0.5), clock)
    for _ in range(10):
        sent = budget.start(0.0)
        budget.end(sent, 0.0)
    budget.observe(Usage(50.0, 0.0), sent, 0.0)  # 10 calls were half the limit: it is 20, not 1000
    assert budget.limit() == 20.0 and budget.allowance() == 10
    blind = Budget(Quota(calls=1000, window_seconds=60), clock)
    for _ in range(7):
        blind.end(blind.start(0.0), 0.0)
    blind.throttled(Throttle("HTTP 429", None), None, 0, 1.0, 0.0)
    assert blind.limit() == 7.0  # what the server admitted in its window


# --- a shard against the sandbox's quota, on a virtual clock ------------------------------

SHAPES = [  # (quota calls, window s, concurrency, mean latency s, calls)
    (40, 2.0, 32, 0.05, 400),
    (30, 20.0, 8, 0.3, 200),
    (200, 3600.0, 2, 1.0, 1000),
]


@pytest.mark.parametrize("headers", [True, False], ids=["graph", "web"])
@pytest.mark.parametrize("calls,window,concurrency,latency,total", SHAPES)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_shard_paced_by_its_quota_is_never_throttled(headers, calls, window, concurrency, latency, total, seed):
    rng = random.Random(seed)
    clock = VirtualClock()
    server = RollingQuota(calls, window, clock)
    run = run_shard(
        total,
        Quota(calls, window),
        server,
        clock,
        concurrency=concurrency,
        latency=lambda: rng.uniform(0.2, 1.8) * latency,
        headers=headers,
    )
    assert (run.answered, run.throttled, run.deferred) == (total, 0, 0)
    # ... and it used the quota: about the target share of the limit in every window.
    assert run.ended_at <= (total / (calls * 0.85) + 1) * window + total * 2 * latency / concurrency + window


def told_too_high_a_limit(calls, window, concurrency, latency, total, headers):
    """A shard told a limit 25 times the server's."""
    clock = VirtualClock()
    return run_shard(
        total,
        Quota(calls * 25, window),
        RollingQuota(calls, window, clock),
        clock,
        concurrency=concurrency,
        latency=latency,
        headers=headers,
    )


@pytest.mark.parametrize("calls,window,concurrency,latency,total", SHAPES)
def test_a_shard_told_too_high_a_limit_learns_from_the_usage_headers_before_any_throttle(
    calls, window, concurrency, latency, total
):
    run = told_too_high_a_limit(calls, window, concurrency, latency, total, headers=True)
    assert (run.answered, run.throttled) == (total, 0)


@pytest.mark.parametrize("calls,window,concurrency,latency,total", SHAPES)
def test_without_usage_headers_a_shard_told_too_high_a_limit_is_throttled_in_its_first_window_only(
    calls, window, concurrency, latency, total
):
    run = told_too_high_a_limit(calls, window, concurrency, latency, total, headers=False)
    assert run.answered == total and run.deferred == 0
    assert 0 < run.throttled <= concurrency and max(run.throttled_at) < window


def test_a_shard_stops_rather_than_wait_past_its_bound_or_its_crawl_window():
    clock = VirtualClock()
    run = run_shard(100, Quota(20, 60.0, 1.0), RollingQuota(20, 60.0, clock), clock, latency=0.1, max_wait=30)
    assert (run.answered, run.throttled, run.deferred) == (20, 0, 80)  # the window frees in ~60 s > 30 s
    clock = VirtualClock()
    run = run_shard(100, Quota(20, 60.0, 1.0), RollingQuota(20, 60.0, clock), clock, latency=0.1, until=150)
    assert (run.answered, run.throttled, run.deferred) == (60, 0, 40)  # three windows fit before 150 s


# --- the sandbox's quotas, over HTTP ------------------------------------------------------


def test_the_sandbox_throttles_per_token_with_the_graph_apis_headers_and_error():
    settings = SandboxSettings(influencers=20, seed=5, graph_quota={"calls": 3, "window_seconds": 600})
    with Sandbox(settings) as sandbox:
        name = next(a.username for a in sandbox.population.accounts if not a.is_private)
        url = f"{sandbox.url}/v21.0/1784?fields=business_discovery.username({name}){{followers_count}}"
        answers = [get(url, {"Authorization": "Bearer one"}) for _ in range(4)]
        other_token = get(url, {"Authorization": "Bearer two"})
        usage = get(f"{sandbox.url}/_sandbox/usage")
    percents = [usage_of(h).percent for _, h, _ in answers]
    assert [s for s, _, _ in answers[:3]] == [200, 200, 200] and percents == [33, 67, 100, 100]
    status, headers, body = answers[3]
    assert status == 400 and json.loads(body)["error"]["code"] == 80002
    buc = json.loads(headers["X-Business-Use-Case-Usage"])["1784"][0]
    assert buc["type"] == "instagram" and buc["estimated_time_to_regain_access"] == 10  # minutes
    assert throttle_of(status, headers, body).stated_wait == 600
    assert other_token[0] == 200  # per token
    report = json.loads(usage[2])["graph"]
    assert sorted((r["admitted"], r["throttled"]) for r in report.values()) == [(1, 0), (3, 1)]


def test_the_sandbox_throttles_per_ip_like_the_web_client_without_usage_headers():
    settings = SandboxSettings(influencers=20, seed=5, web_quota={"calls": 2, "window_seconds": 600})
    with Sandbox(settings) as sandbox:
        url = f"{sandbox.url}/api/v1/users/web_profile_info/?username={sandbox.population.accounts[0].username}"
        answers = [get(url, {"X-IG-App-ID": "1"}) for _ in range(3)]
    assert [s for s, _, _ in answers] == [200, 200, 429]
    status, headers, body = answers[2]
    assert "Retry-After" not in headers and usage_of(headers) is None
    assert throttle_of(status, headers, body) == Throttle("HTTP 429", None)


def test_a_loopback_target_skips_the_politeness_delay_never_the_quota(tmp_path):
    from pipeline.crawl import SANDBOX_SCRAPY_SETTINGS, CrawlRequest, scrapy_command
    from pipeline.settings import Settings
    from scrapers import settings as scrapy_settings

    assert "scrapers.middlewares.QuotaMiddleware" in scrapy_settings.DOWNLOADER_MIDDLEWARES
    assert not any("QUOTA" in name or "MIDDLEWARE" in name for name in SANDBOX_SCRAPY_SETTINGS)
    settings = Settings(warehouse=tmp_path / "w.duckdb", quotas={"web_calls": 7, "web_window_seconds": 9})
    request = CrawlRequest(base_url="http://127.0.0.1:8900")
    command = scrapy_command(settings, request, "web-key", "shard-001-of-001", None, tmp_path / "crawl.log")
    slots = json.loads(next(arg for arg in command if arg.startswith("DOWNLOAD_SLOTS=")).split("=", 1)[1])
    assert slots["127.0.0.1"]["delay"] == 0  # no politeness delay on loopback
    assert "KIC_WEB_QUOTA_CALLS=7" in command and "KIC_WEB_QUOTA_WINDOW_SECONDS=9.0" in command


SLOT_DELAYS = """
import json
from scrapy import Request
from scrapy.core.downloader import Downloader
from scrapy.utils.project import get_project_settings
from scrapy.utils.reactor import install_reactor
from scrapy.utils.test import get_crawler

from scrapers.middlewares import LocalTargetMiddleware

settings = get_project_settings()  # scrapy.cfg's, as `scrapy crawl` reads them
install_reactor(settings["TWISTED_REACTOR"])
downloader = Downloader(get_crawler(settings_dict=settings.copy_to_dict()))
found = {}
for url in ("http://127.0.0.1:8900/api/v1/x", "https://www.instagram.com/api/v1/x"):
    request = Request(url)
    LocalTargetMiddleware().process_request(request)
    found[url] = [downloader._get_slot(request)[1].delay, request.meta.get("autothrottle_dont_adjust_delay", False)]
print(json.dumps(found))
"""


def test_a_loopback_server_gets_no_politeness_delay_even_from_a_hand_run_scrapy_crawl():
    """The project's Scrapy settings as `scrapy crawl` reads them: the download slot of 127.0.0.1
    has no delay and AutoThrottle leaves it so; a real host keeps DOWNLOAD_DELAY. (The quota is
    QuotaMiddleware's, applied to both.)"""
    import json
    import subprocess
    import sys

    from scrapers import settings
    from support import REPO

    env = {"PATH": "", "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", SLOT_DELAYS], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads(result.stdout.splitlines()[-1])
    assert found["http://127.0.0.1:8900/api/v1/x"] == [0, True]
    assert found["https://www.instagram.com/api/v1/x"] == [settings.DOWNLOAD_DELAY, False]
