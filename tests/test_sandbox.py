"""The sandbox: deterministic answers that drift by day, so nightly refreshes and weekly clusters move."""

import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import pytest

from models.config import ClusteringConfig
from models.frames import standing_of
from models.recluster import recluster
from pipeline.storage import connect
from sandbox.server import Sandbox
from sandbox.settings import SandboxSettings
from scrapers.items import AccountItem
from scrapers.parsing import parse_web_profile
from scrapers.pipelines import rows_of
from support import (
    assert_every_move_is_explained_by_the_movers_numbers,
    derive,
    land_and_load,
    store_new_snapshot,
)
from transforms.features import CLUSTERABLE, load_clusterable
from warehouse.snapshots import read_standing
from warehouse.util import utcnow

START = date(2026, 3, 2)  # a Monday


def get(url, headers=None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def profile(sandbox, username):
    status, body = get(f"{sandbox.url}/api/v1/users/web_profile_info/?username={username}", {"X-IG-App-ID": "1"})
    return status, body


@pytest.fixture
def sandbox():
    with Sandbox(SandboxSettings(influencers=60, seed=5, date=START)) as server:
        yield server


def test_binds_to_loopback_on_a_free_port(sandbox):
    host, port = sandbox.server.server_address[:2]
    assert host == "127.0.0.1" and port > 0


def test_same_seed_and_date_same_answer_next_day_another(sandbox):
    name = sandbox.population.accounts[1].username
    assert profile(sandbox, name) == profile(sandbox, name)
    with Sandbox(SandboxSettings(influencers=60, seed=5, date=START)) as twin:
        assert profile(twin, name)[1] == profile(sandbox, name)[1]
    before = json.loads(profile(sandbox, name)[1])
    get(f"{sandbox.url}/_sandbox/date?date={START + timedelta(days=1)}")  # GET does not change it
    assert json.loads(profile(sandbox, name)[1]) == before
    urllib.request.urlopen(
        urllib.request.Request(f"{sandbox.url}/_sandbox/date?date={START + timedelta(days=1)}", method="POST")
    )
    after = json.loads(profile(sandbox, name)[1])
    assert after["data"]["user"]["edge_followed_by"] != before["data"]["user"]["edge_followed_by"]


def test_web_client_header_is_required_and_unknown_pages_are_html(sandbox):
    name = sandbox.population.accounts[0].username
    status, body = get(f"{sandbox.url}/api/v1/users/web_profile_info/?username={name}")
    assert status == 400 and json.loads(body)["message"] == "useragent mismatch"
    status, body = get(f"{sandbox.url}/nothing/here")
    assert status == 404 and body.startswith(b"<!DOCTYPE html>")


def test_rate_limit_bursts_come_with_retry_after():
    settings = SandboxSettings(influencers=20, seed=5, faults={"rate_limit_rate": 1.0, "retry_after_seconds": 7})
    with Sandbox(settings) as server:
        request = urllib.request.Request(
            f"{server.url}/api/v1/users/web_profile_info/?username={server.population.accounts[0].username}",
            headers={"X-IG-App-ID": "1"},
        )
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(request)
    assert error.value.code == 429 and error.value.headers["Retry-After"] == "7"


@pytest.mark.e2e  # 28 nights and 4 weekly reclusters: a simulation, not a unit
def test_a_month_of_nights_replays_in_seconds_and_weekly_clusters_move(tmp_path, sandbox):
    """28 nightly refreshes (answers fetched and parsed as the spider does) and 4 weekly reclusters."""
    usernames = [a.username for a in sandbox.population.accounts]
    cfg = ClusteringConfig(
        kmeans_k=[3], kmedoids_k=[], elbow_k=[1], hierarchical_thresholds=[5], publish="kmeans-k3", min_personas=3
    )
    nightly_er = []
    with connect(tmp_path / "w.duckdb") as con, ThreadPoolExecutor(8) as pool:
        for night in range(28):
            day = START + timedelta(days=night)
            urllib.request.urlopen(urllib.request.Request(f"{sandbox.url}/_sandbox/date?date={day}", method="POST"))
            answers = pool.map(lambda u: (u, profile(sandbox, u)), usernames)
            items = []
            for username, (status, body) in answers:
                outcome = parse_web_profile(json.loads(body), status)
                items.append(
                    AccountItem(
                        username=username,
                        status=outcome.status,
                        profile=outcome.profile,
                        posts=outcome.posts,
                        fetched_at=utcnow(),
                    )
                )
            land_and_load(con, rows_of(items), "web", sandbox.url, day)
            derive(con, day)
            nightly_er.append(
                dict(
                    con.execute(
                        "SELECT username, er FROM features.influencer_features "
                        "WHERE feature_date = ? AND is_clusterable",
                        [day],
                    ).fetchall()
                )
            )
            if day.weekday() == 6:  # Sunday night: the weekly recluster, through the standing persona frame
                stood = read_standing(con, CLUSTERABLE, day)
                standing = None if stood is None else standing_of(stood)
                store_new_snapshot(con, recluster(load_clusterable(con, day), cfg, day, standing=standing))
        fingerprints = [
            f for (f,) in con.execute("SELECT data_fingerprint FROM clusters.snapshots ORDER BY version").fetchall()
        ]
        frames = [f for (f,) in con.execute("SELECT frame_id FROM clusters.snapshots ORDER BY version").fetchall()]
    assert all(nightly_er[i] != nightly_er[i + 1] for i in range(27))  # every night differs
    assert len(fingerprints) == 4 and len(set(fingerprints)) == 4
    assert frames == [1, 1, 1, 1]  # a month of the sandbox's own movement: the personas are kept
    # Every weekly move is one the mover's own numbers made.
    for version in (2, 3, 4):
        assert_every_move_is_explained_by_the_movers_numbers(tmp_path / "w.duckdb", version - 1, version, 0.25)


@pytest.mark.parametrize("hour", [0, 3, 5, 7, 8, 15, 23])  # 0-8 h: still yesterday in UTC
def test_no_post_is_served_before_it_is_published_at_any_hour_of_the_day(hour):
    """Early in the morning in Seoul it is still the day before in UTC: neither today's nor
    yesterday's post may be up yet (the sandbox served both, and its clean data failed
    `fetched_at >= taken_at`)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from sandbox.synthetic import GRID_POSTS, Population

    population = Population(200, seed=20200601)
    now = datetime(2026, 6, 1, hour, 30, tzinfo=ZoneInfo("Asia/Seoul"))
    profiles = [population.profile(account, now.date(), now=now) for account in population.accounts]
    assert all(post.taken_at <= now for profile in profiles for post in profile.posts)
    assert all(len(p.posts) == GRID_POSTS for p in profiles if not p.account.is_private)
