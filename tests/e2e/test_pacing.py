"""Collection at real quotas, end to end: real Scrapy crawls against the sandbox on loopback with
a quota of a few dozen calls per window; several nights through the nightly flow with a budget
of a third of the watchlist; failed nights that say so; a source that cannot be reached."""

import json
import socket
from datetime import date, timedelta

import pytest

from pipeline import jobs
from pipeline.crawl import CrawlRequest
from pipeline.settings import Settings
from sandbox.server import Sandbox
from sandbox.settings import SandboxSettings
from support import assert_one_line_error, cli

DAY = date(2026, 6, 1)
WINDOW = 2.0  # seconds: a rolling window short enough for a test to see several
CALLS = 40  # a few dozen calls per window


def shard_stats(refresh) -> dict:
    (stats,) = json.loads(refresh.crawl.stats).values()
    return stats


@pytest.mark.parametrize("source", ["web", "graph"])
def test_a_few_hundred_accounts_at_a_few_dozen_calls_a_window_are_all_read_and_never_throttled(tmp_path, source):
    quota = {"calls": CALLS, "window_seconds": WINDOW}
    box = SandboxSettings(
        influencers=300,
        seed=31,
        date=DAY,
        web_quota=quota,
        graph_quota=quota,
        graph_page_size=12,
        graph_access_token="t0ken",
    )
    with Sandbox(box) as sandbox:
        settings = Settings(
            warehouse=tmp_path / "w.duckdb",
            quotas=sandbox.client_quotas(),  # the source's published limits, as an operator sets them
            graph_user_id="17841400000000000",
            graph_access_token="t0ken",
        )
        names = [a.username for a in sandbox.population.accounts]
        refresh = jobs.refresh(settings, CrawlRequest(source, names, as_of=DAY, base_url=sandbox.url))
        usage = sandbox.graph_quota.report() if source == "graph" else sandbox.web_quota.report()
    (calls,) = usage.values()
    assert calls["throttled"] == 0 and calls["admitted"] == 300  # one call an account, none throttled
    outcomes = refresh.crawl.outcomes
    assert outcomes.get("ok", 0) + outcomes.get("private", 0) + outcomes.get("not_found", 0) == 300
    private = [a.username for a in sandbox.population.accounts if a.is_private]
    assert outcomes.get("not_found", 0) == (len(private) if source == "graph" else 0)  # Business Discovery: none
    stats = shard_stats(refresh)
    assert stats["kic/quota/calls"] == 300 and stats["kic/quota/request_wait_seconds"] > 0  # it waited for the quota
    assert refresh.review.failed == outcomes.get("not_found", 0) and refresh.review.deferred == 0


def test_a_crawl_told_too_high_a_graph_limit_is_corrected_by_the_usage_headers_before_a_throttle(tmp_path):
    quota = {"calls": CALLS, "window_seconds": WINDOW}
    box = SandboxSettings(influencers=200, seed=32, date=DAY, graph_quota=quota, graph_page_size=12)
    with Sandbox(box) as sandbox:
        settings = Settings(
            warehouse=tmp_path / "w.duckdb",
            quotas={"graph_calls": 5000, "graph_window_seconds": WINDOW},  # 125 times the truth
            graph_user_id="17841400000000000",
            graph_access_token="any",
        )
        names = [a.username for a in sandbox.population.accounts]
        refresh = jobs.refresh(settings, CrawlRequest("graph", names, as_of=DAY, base_url=sandbox.url))
        (calls,) = sandbox.graph_quota.report().values()
    assert calls["admitted"] == 200
    # No throttled call beyond the first window (in practice none: the first answers taught it).
    assert all(at < WINDOW for at in calls["throttled_at_seconds"]), calls
    assert shard_stats(refresh)["kic/quota/limit"] <= CALLS
    private = sum(a.is_private for a in sandbox.population.accounts)  # Business Discovery: not found
    assert refresh.review.failed == private and refresh.review.deferred == 0


def test_a_quota_that_would_not_free_in_time_stops_the_shard_and_defers_the_rest_to_the_next_night(tmp_path):
    box = SandboxSettings(influencers=60, seed=33, date=DAY, web_quota={"calls": 10, "window_seconds": 600})
    names = [a.username for a in Sandbox(box).population.accounts]
    # The crawler knows the limit, and waits at most 5 s at a time: the window frees in 10 minutes.
    settings = Settings(
        warehouse=tmp_path / "w.duckdb",
        quotas={"web_calls": 10, "web_window_seconds": 600, "target_usage": 1.0, "max_wait_seconds": 5},
    )
    with Sandbox(box) as sandbox:
        refresh = jobs.refresh(settings, CrawlRequest("web", names, as_of=DAY, base_url=sandbox.url))
        (calls,) = sandbox.web_quota.report().values()
    review = refresh.review
    assert (calls["admitted"], calls["throttled"]) == (10, 0)  # no call it knew would be throttled
    assert (review.planned, review.read, review.deferred, review.failed) == (60, 10, 50, 0)
    assert refresh.crawl.status == "interrupted" and "50 account(s) deferred" in refresh.crawl.message
    assert "more than the 5 s a shard waits" in review.reasons.set_index("status").loc["deferred", "reason"]
    # The night is not failed (deferred accounts are no failures); the next one takes them first.
    night = DAY + timedelta(days=1)
    with Sandbox(SandboxSettings(influencers=60, seed=33, date=night)) as sandbox:
        generous = Settings(warehouse=tmp_path / "w.duckdb", quotas=sandbox.client_quotas())
        after = jobs.refresh(generous, CrawlRequest("web", names, as_of=night, base_url=sandbox.url))
    reasons = after.review.plan["reasons"]
    assert reasons.iloc[0]["reason"] == "deferred" and reasons.iloc[0]["accounts"] == 50
    assert after.review.read == 60 and after.review.deferred == 0


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens on it once the probe is closed


def test_kic_crawl_with_no_reachable_source_fails_within_seconds_naming_what_it_tried(tmp_path, monkeypatch):
    url = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("KIC_WEB_BASE_URL", url)
    result = cli("crawl", "--accounts", "some.one", "-w", tmp_path / "w.duckdb", "--date", "2026-06-01")
    assert_one_line_error(result, url, "cannot reach", "Connection refused", "KIC_WEB_BASE_URL", "sandbox")
    assert not (tmp_path / "landing").exists() and not (tmp_path / "logs").exists()  # no crawler was started


def test_kic_crawl_of_a_night_where_most_accounts_do_not_exist_exits_1_naming_counts_and_reasons(tmp_path, monkeypatch):
    with Sandbox(SandboxSettings(influencers=50, seed=34, date=DAY)) as sandbox:
        real = [a.username for a in sandbox.population.accounts]
        names = real + [f"gone.account_{i:03d}" for i in range(150)]
        assert cli("accounts", "add", *names, "-w", tmp_path / "w.duckdb").returncode == 0
        monkeypatch.setenv("KIC_WEB_BASE_URL", sandbox.url)
        for name, value in sandbox.client_quotas().items():
            monkeypatch.setenv(f"KIC_QUOTAS__{name.upper()}", str(value))
        result = cli("crawl", "-w", tmp_path / "w.duckdb", "--date", DAY.isoformat())
    assert result.returncode == 1, result.stdout
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: 150 of 200 accounts failed (more than 20%): not_found 150"), result.stderr
    assert "volume" in last  # and validation kept the night out of the features: under half the plan read
    assert "plan: 200 watched" in result.stdout and "crawl 1 (succeeded): 200 planned" in result.stdout
    with __import__("duckdb").connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        kept = con.execute("SELECT count(*) FROM raw.profiles").fetchall()[0][0]
    assert kept == 50  # what was crawled is kept


def test_nights_at_a_third_of_the_watchlist_refresh_every_account_within_three_nights_all_green(
    tmp_path, prefect_harness
):
    """A first night takes the whole watchlist; then every night's budget is a third of it. Every
    night is green, its volume checked against its plan (the night before took three times as
    many: against the night before, the volume check would fail), and every account is refreshed
    within three nights."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from flows.nightly_refresh import nightly_refresh

    names = [a.username for a in Sandbox(SandboxSettings(influencers=30, seed=35)).population.accounts]
    warehouse = tmp_path / "w.duckdb"
    jobs.watch(Settings(warehouse=warehouse), names, "manual")
    third = {"web_calls": 10, "web_window_seconds": 3600, "target_usage": 1.0, "crawl_window_hours": 1}
    observed: dict[int, dict[str, date]] = {}
    for night in range(5):
        day = DAY + timedelta(days=night)
        with Sandbox(SandboxSettings(influencers=30, seed=35, date=day)) as sandbox:
            quotas = sandbox.client_quotas() if night == 0 else third
            state = nightly_refresh(
                date=day, base_url=sandbox.url, warehouse=str(warehouse), quotas=quotas, return_state=True
            )
        assert state.is_completed(), state.message  # green
        result = state.result()
        assert (result["planned"], result["failed"], result["deferred"]) == (30 if night == 0 else 10, 0, 0)
        with __import__("duckdb").connect(str(warehouse), read_only=True) as con:
            observed[night] = dict(
                con.execute(
                    "SELECT username, observed_on FROM features.influencer_features WHERE feature_date = ?", [day]
                ).fetchall()
            )
            volume = con.execute(
                "SELECT e.success, e.observed_value FROM quality.expectation_results e "
                "JOIN quality.validation_runs v USING (validation_id) "
                "WHERE v.suite = 'volume' AND v.crawl_id = ? AND e.expectation LIKE '%rows>=min_rows%'",
                [result["crawl_id"]],
            ).fetchall()
        assert [ok for ok, _ in volume] == [True]
    for night in range(1, 5):
        assert set(observed[night]) == set(names)
        ages = [(DAY + timedelta(days=night) - on).days for on in observed[night].values()]
        assert max(ages) <= (night if night < 3 else 2)  # refreshed within three nights
    crawled = {u for n in (1, 2, 3) for u, on in observed[n].items() if on == DAY + timedelta(days=n)}
    assert crawled == set(names)  # three nights of a third: each account once
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
    plan = next(a for a in found if a.key == "nightly-plan").data
    assert "30 watched; 10 calls tonight (1 IP/session" in plan and "full refresh every 3 night(s)" in plan
