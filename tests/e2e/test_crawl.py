"""Real crawls: the Scrapy spider in a subprocess against the sandbox on a random loopback port."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from pipeline import steps
from pipeline.crawl import (
    SANDBOX_SCRAPY_SETTINGS,
    CrawlRequest,
    crawl_env,
    open_crawl,
    plan_crawl,
    run_shard,
    scrapy_command,
)
from pipeline.settings import Settings
from pipeline.storage import connect
from sandbox.server import Sandbox
from sandbox.settings import SandboxSettings
from sandbox.synthetic import Population
from scrapers.extensions import ProgressLines
from support import as_at_a_terminal, derive, kic, mark_validated, subprocess_env
from warehouse.landing import Landing
from warehouse.util import process_alive

DAY = date(2026, 6, 1)
SEED = 77
FAST = {**SANDBOX_SCRAPY_SETTINGS, "RETRY_TIMES": "2"}


def names(n=40):
    return [a.username for a in Population(n, SEED).accounts]


def settings_for(tmp_path):
    return Settings(
        warehouse=tmp_path / "w.duckdb",
        graph_user_id="17841400000000000",
        graph_access_token="s3cr3t-graph-token",
    )


def sandbox_for(n=40, **sandbox):
    return SandboxSettings(influencers=n, seed=SEED, date=DAY, **sandbox)


def crawl(settings, usernames=None, source="web", extra=None, sandbox=None, **request):
    """Record the crawl in the landing area, crawl its one shard, load what landed."""
    with Sandbox(sandbox or sandbox_for()) as sandbox:
        request = CrawlRequest(
            source=source,
            usernames=usernames,
            as_of=DAY,
            base_url=sandbox.url,
            scrapy_settings={**FAST, **(extra or {})},
            **request,
        )
        opened = open_crawl(settings, request, plan_crawl(settings, request))
        run = run_shard(settings, request, opened.crawl_key, opened.shards[0])
    return replace(steps.load(settings, opened.crawl_key), log_file=run.log_file)


def shard_stats(settings):
    """Scrapy's stats of the crawl's one shard."""
    (stats,) = json.loads(rows(settings, "SELECT stats FROM raw.crawl_runs")[0][0]).values()
    return stats


def rows(settings, sql, params=None):
    with connect(settings.warehouse, read_only=True) as con:
        return con.execute(sql, params).fetchall()


def outcomes(settings, crawl_id):
    return {
        u: (s, r)
        for u, s, r in rows(
            settings, "SELECT username, status, reason FROM raw.account_outcomes WHERE crawl_id = ?", [crawl_id]
        )
    }


def test_web_crawl_stores_what_the_sandbox_serves_and_an_outcome_for_every_account(tmp_path):
    n = names()
    faults = {
        "throttled": {n[1]: 2},
        "failing": {n[2]: 1},
        "private": [n[3]],
        "deleted": [n[4]],
        "malformed": [n[5]],
        "retry_after_seconds": 1,
    }
    settings, box = settings_for(tmp_path), sandbox_for(faults=faults)
    summary = crawl(settings, [*n, "nobody.here"], sandbox=box)
    assert (summary.status, summary.accounts_requested) == ("succeeded", 41)
    got = outcomes(settings, summary.crawl_id)
    assert len(got) == 41
    assert got[n[1]][0] == got[n[2]][0] == "ok"  # retried after two throttles and a 503, then read
    assert got[n[3]] == ("private", None)
    assert got[n[4]][0] == got["nobody.here"][0] == "not_found"
    assert got[n[5]][0] == "error" and "malformed JSON" in got[n[5]][1]
    detail = rows(settings, "SELECT detail FROM raw.account_outcomes WHERE username = ?", [n[5]])[0][0]
    assert detail.startswith('{"data"')  # the bad answer, kept for diagnosis
    stats = shard_stats(settings)
    # The 429s were the quota's (each waited out for its Retry-After), the 503 a retry's.
    assert stats["kic/quota/throttled"] == 2 and stats["kic/quota/request_wait_seconds"] >= 2.0
    assert stats["retry/reason_count/503 Service Unavailable"] == 1

    # What was stored is what the sandbox served that day.
    population = Population(40, SEED)
    truth = population.profile(population.by_username()[n[0]], DAY)
    profile = rows(settings, "SELECT followers, media_count FROM raw.profiles WHERE username = ?", [n[0]])
    assert profile == [(truth.followers, truth.media_count)]
    posts = dict(rows(settings, "SELECT post_id, likes FROM raw.posts WHERE username = ?", [n[0]]))
    hidden = population.by_username()[n[0]].hides_likes
    assert posts == {p.post_id: None if hidden else p.likes for p in truth.posts}
    private_profile = rows(settings, "SELECT is_private FROM raw.profiles WHERE username = ?", [n[3]])
    assert private_profile == [(True,)]
    assert rows(settings, "SELECT count(*) FROM raw.posts WHERE username = ?", [n[3]]) == [(0,)]
    hiders = [a.username for a in population.accounts if a.hides_likes and not a.is_private]
    if hiders:
        assert rows(settings, "SELECT count(likes) FROM raw.posts WHERE username = ?", [hiders[0]]) == [(0,)]


def test_a_throttle_that_does_not_clear_stops_the_shard_and_defers_the_rest_as_no_failure(tmp_path):
    n = names()
    settings, box = settings_for(tmp_path), sandbox_for(faults={"throttled": {n[0]: 10}, "retry_after_seconds": 0})
    one_at_a_time = {"CONCURRENT_REQUESTS": "1", "CONCURRENT_REQUESTS_PER_DOMAIN": "1"}
    summary = crawl(settings, n[:6], extra=one_at_a_time, sandbox=box)
    got = outcomes(settings, summary.crawl_id)
    assert got[n[0]][0] == "deferred" and "still throttled after 5 waits" in got[n[0]][1]
    assert {status for status, _ in got.values()} <= {"ok", "private", "deferred"}  # never the account's failure
    assert summary.outcomes["deferred"] >= 1 and summary.accounts_failed == 0
    assert summary.accounts_deferred == summary.outcomes["deferred"]
    assert summary.status == "interrupted" and "deferred" in summary.message


def test_a_login_wall_stops_the_crawl_and_the_rest_is_recorded_as_not_crawled(tmp_path):
    n = names()
    settings, box = settings_for(tmp_path), sandbox_for(faults={"login_walled": [n[2]]})
    one_at_a_time = {"CONCURRENT_REQUESTS": "1", "CONCURRENT_REQUESTS_PER_DOMAIN": "1"}
    summary = crawl(settings, n[:10], extra=one_at_a_time, sandbox=box)
    got = outcomes(settings, summary.crawl_id)
    assert summary.status == "interrupted" and f"blocked at {n[2]}" in summary.message
    assert got[n[2]][0] == "blocked"
    assert len(got) == 10  # every account asked for has an outcome
    not_crawled = [u for u, (s, r) in got.items() if r and r.startswith("not crawled")]
    assert len(not_crawled) >= 5 and n[9] in not_crawled


def test_graph_source_pages_media_keys_errors_on_codes_and_keeps_the_token_secret(tmp_path):
    n = names()
    settings, box = (
        settings_for(tmp_path),
        sandbox_for(
            graph_access_token="s3cr3t-graph-token",
            graph_page_size=5,
            faults={"throttled": {n[1]: 1}, "deleted": [n[2]]},
        ),
    )
    summary = crawl(settings, n[:8], source="graph", sandbox=box)
    got = outcomes(settings, summary.crawl_id)
    assert got[n[1]] == ("ok", None)  # throttled (graph error 4) once: retried, not its failure
    assert shard_stats(settings)["kic/quota/throttled"] == 1
    assert got[n[2]][0] == "not_found" and "graph error 110" in got[n[2]][1]
    population = Population(40, SEED)
    readable = [u for u in n[:8] if got[u][0] == "ok"]
    assert readable
    for username in readable:
        truth = population.profile(population.by_username()[username], DAY)
        stored = dict(rows(settings, "SELECT post_id, kind FROM raw.posts WHERE username = ?", [username]))
        assert stored == {p.post_id: p.kind for p in truth.posts}  # 12 posts over three pages
    # The token went in a header: not in the log, the stats or the warehouse.
    assert "s3cr3t-graph-token" not in summary.log_file.read_text()
    assert b"s3cr3t-graph-token" not in settings.warehouse.read_bytes()


def test_a_rejected_graph_token_stops_the_crawl(tmp_path):
    settings, box = settings_for(tmp_path), sandbox_for(graph_access_token="another-token")
    summary = crawl(settings, names()[:10], source="graph", extra={"CONCURRENT_REQUESTS": "1"}, sandbox=box)
    assert summary.status == "interrupted"
    # The answer in hand, and one already on its way, are recorded; the rest not crawled.
    assert 1 <= summary.outcomes["blocked"] <= 2
    assert summary.outcomes["error"] == 10 - summary.outcomes["blocked"]


def test_hashtag_discovery_fills_the_watchlist_and_crawls_each_account_once(tmp_path):
    n = names()
    settings, box = settings_for(tmp_path), sandbox_for(tag_page_size=15)
    summary = crawl(settings, usernames=[n[3]], tag="뷰티", extra={"KIC_TAG_MAX_PAGES": "2"}, sandbox=box)
    watched = rows(settings, "SELECT username, added_from FROM watchlist.accounts ORDER BY username")
    assert len(watched) == 30 and {f for _, f in watched} == {"tag:뷰티"}
    assert summary.accounts_requested == 1  # at the start; discovery added the rest
    assert rows(settings, "SELECT count(*), count(DISTINCT username) FROM raw.account_outcomes") == [(30, 30)]
    assert rows(settings, "SELECT count(*) FROM raw.profiles WHERE username = ?", [n[3]]) == [(1,)]


def interrupt_crawl(settings, tmp_path, stop: signal.Signals, after: int):
    """Start a slow crawl of 40 accounts in batches of 4 and send it `stop` once `after` are done."""
    n = names()
    box = sandbox_for(faults={"slow": n, "slow_seconds": 0.2})
    with Sandbox(box) as sandbox:
        request = CrawlRequest(
            usernames=n,
            as_of=DAY,
            base_url=sandbox.url,
            scrapy_settings={
                **FAST,
                "CONCURRENT_REQUESTS": "2",
                "CONCURRENT_REQUESTS_PER_DOMAIN": "2",
                "KIC_BATCH_SIZE": "4",
            },
        )
        opened = open_crawl(settings, request, plan_crawl(settings, request))
        usernames = tmp_path / "names.txt"
        usernames.write_text("\n".join(n))
        command = scrapy_command(settings, request, opened.crawl_key, opened.shards[0], usernames, tmp_path / "c.log")
        env = subprocess_env(crawl_env(settings, "web"))
        planned = settings.warehouse.read_bytes()  # the plan is stored; the crawler then never opens it
        with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) as child:
            for line in child.stdout:
                if (
                    line.startswith(ProgressLines.PREFIX)
                    and json.loads(line[len(ProgressLines.PREFIX) :])["done"] >= after
                ):
                    child.send_signal(stop)
                    break
            child.stdout.read()
            child.wait(timeout=60)
    assert settings.warehouse.read_bytes() == planned  # the crawler never opened the warehouse
    assert not settings.warehouse.with_suffix(".duckdb.wal").exists()
    return steps.load(settings, opened.crawl_key)


def test_an_interrupted_crawl_keeps_what_it_landed_and_is_marked_so(tmp_path):
    settings = settings_for(tmp_path)
    summary = interrupt_crawl(settings, tmp_path, signal.SIGINT, after=8)  # Ctrl-C: Scrapy closes gracefully
    assert summary.status == "interrupted" and 8 <= summary.profiles_written < 40
    assert "not crawled" in summary.message
    got = outcomes(settings, summary.crawl_id)
    assert len(got) == 40
    assert rows(settings, "SELECT count(*) FROM raw.profiles WHERE crawl_id = ?", [summary.crawl_id])[0][0] == (
        summary.profiles_written
    )


def test_a_killed_crawl_is_loadable_and_its_unreached_accounts_are_recorded(tmp_path):
    settings = settings_for(tmp_path)
    summary = interrupt_crawl(settings, tmp_path, signal.SIGKILL, after=12)  # no close: only landed batches
    got = outcomes(settings, summary.crawl_id)
    assert len(got) == 40  # every account asked for has an outcome
    crawled = {u for u, (status, _) in got.items() if status != "error"}
    not_crawled = {u for u, (_, reason) in got.items() if reason and reason.startswith("not crawled")}
    assert len(crawled) >= 8 and crawled.isdisjoint(not_crawled) and len(crawled) + len(not_crawled) == 40
    assert summary.status == "interrupted" and "never finished" in summary.message
    # Loading again stores nothing twice.
    again = steps.load(settings, summary.crawl_key)
    assert again.crawl_id == summary.crawl_id and len(outcomes(settings, summary.crawl_id)) == 40


def test_features_read_each_accounts_latest_readable_crawl(tmp_path):
    n = names(12)
    settings, box = settings_for(tmp_path), sandbox_for(n=12)
    first = crawl(settings, n, sandbox=box)
    second = crawl(settings, n, sandbox=sandbox_for(12, faults={"malformed": [n[0]]}))
    with connect(settings.warehouse) as con:
        for crawled in (first, second):
            mark_validated(con, crawled.crawl_id)
        derive(con, DAY)
        source = dict(con.execute("SELECT username, crawl_id FROM features.influencer_features").fetchall())
    assert source[n[0]] == first.crawl_id  # its newest crawl failed: the one before stands
    assert {source[u] for u in n[1:]} == {second.crawl_id}


def test_scrapy_crawl_works_from_the_project_root(tmp_path):
    from support import REPO

    n = names(12)[:5]
    settings, box = settings_for(tmp_path), sandbox_for(n=12)
    env = subprocess_env()
    env.pop("SCRAPY_SETTINGS_MODULE", None)  # found through scrapy.cfg, as users run it
    with Sandbox(box) as sandbox:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "scrapy",
                "crawl",
                "instagram",
                "-a",
                f"usernames={','.join(n)}",
                "-a",
                f"date={DAY}",
                "-s",
                f"KIC_WEB_BASE_URL={sandbox.url}",
                "-s",
                f"KIC_LANDING_URL={settings.landing_root}",
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Spider closed (finished)" in result.stderr
    assert not settings.warehouse.exists()  # it landed files; `kic load` moves them in
    loaded = kic("load", "-w", str(settings.warehouse))
    assert loaded.returncode == 0, loaded.stderr
    assert "(web, succeeded): 5 account(s) [ok: 5]: 5 profile(s)" in loaded.stdout
    assert rows(settings, "SELECT status, accounts_requested, profiles_written FROM raw.crawl_runs") == [
        ("succeeded", 5, 5)
    ]
    assert "nothing to load" in kic("load", "-w", str(settings.warehouse)).stdout


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc (Linux)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:  # the task ended meanwhile
                continue
            found += children
            todo += children
    return found


def crawlers(pid: int) -> list[int]:
    """The Scrapy processes below `pid`."""
    found = []
    for child in descendants(pid):
        try:
            if b"scrapy" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
        except OSError:  # it ended meanwhile
            continue
    return found


def wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and /proc are Linux's")
def test_kill_9_of_kic_crawl_takes_its_scrapy_child_with_it(tmp_path):
    """kill -9 gives `kic crawl` no chance to stop its child: the kernel's death signal must."""
    n = names()
    warehouse = tmp_path / "w.duckdb"
    # Slow enough (2 requests at a time, 3 s each) that the crawl cannot finish on its own during the wait.
    with Sandbox(sandbox_for(faults={"slow": n, "slow_seconds": 3.0})) as sandbox:
        assert kic("accounts", "add", *n, "-w", str(warehouse)).returncode == 0
        env = subprocess_env({"KIC_WEB_BASE_URL": sandbox.url, "KIC_LANDING_URL": str(tmp_path / "landing")})
        command = [sys.executable, "-m", "kic", "crawl", "-w", str(warehouse), "--date", DAY.isoformat()]
        with subprocess.Popen(
            command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        ) as parent:

            def crawler_started() -> bool:
                return bool(crawlers(parent.pid)) or parent.poll() is not None

            assert wait_until(crawler_started, 120), "kic crawl never started its crawler"
            scrapy = crawlers(parent.pid)
            assert scrapy, "kic crawl ended before its crawler started"
            parent.kill()
            parent.wait()
            # Generous: Scrapy stops gracefully on the SIGTERM, finishing the requests in flight.
            assert wait_until(lambda: not any(process_alive(p) for p in scrapy), 30), f"orphaned crawler(s): {scrapy}"
    # It stopped because its parent died, not because it was done.
    landing = Landing(str(tmp_path / "landing"))
    (crawl_key,) = landing.crawl_keys()
    (shard,) = landing.request(crawl_key)["shards"]
    assert landing.unanswered(crawl_key, shard)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_a_crawl_whose_processes_all_died_is_closed_by_the_next_kic_load(tmp_path):
    """kill -9 of the whole group: no process closes the shard. `kic load` must see its crawler is
    gone, load what landed, close the run as interrupted and record the rest as not crawled."""
    n = names()
    warehouse, landing_root = tmp_path / "w.duckdb", tmp_path / "landing"
    env = {"KIC_LANDING_URL": str(landing_root)}
    with Sandbox(sandbox_for(faults={"slow": n, "slow_seconds": 3.0})) as sandbox:
        assert kic("accounts", "add", *n, "-w", str(warehouse)).returncode == 0
        command = [sys.executable, "-m", "kic", "crawl", "-w", str(warehouse), "--date", DAY.isoformat()]
        with subprocess.Popen(
            command,
            env=subprocess_env({**env, "KIC_WEB_BASE_URL": sandbox.url}),
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        ) as parent:

            def crawler_started() -> bool:
                return bool(crawlers(parent.pid)) or parent.poll() is not None

            assert wait_until(crawler_started, 120) and crawlers(parent.pid), "kic crawl never started its crawler"
            # Once the crawler has recorded its process (the sandbox is slow: it cannot have finished).
            wait_until(lambda: any(landing_root.glob("*/*/process.json")) or parent.poll() is not None, 120)
            os.killpg(parent.pid, signal.SIGKILL)
            parent.wait()
    loaded = kic("load", "-w", str(warehouse), env=env, cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr
    assert "still running" not in loaded.stdout and "interrupted" in loaded.stdout, loaded.stdout
    with connect(warehouse, read_only=True) as con:
        statuses = con.execute("SELECT status FROM raw.crawl_runs").fetchall()
        outcomes_count = con.execute("SELECT count(DISTINCT username) FROM raw.account_outcomes").fetchone()[0]
    assert ("interrupted",) in statuses
    assert outcomes_count == len(n)  # every account asked for has an outcome, "not crawled" for the unreached


def test_ctrl_c_in_kic_crawl_says_what_it_kept_and_kic_load_loads_it(tmp_path):
    """As at a terminal: SIGINT to `kic crawl`'s process group while it crawls. It exits 130 with
    one line saying what was kept and how to load it; `kic load` then loads the crawl, closed as
    interrupted, with what it reached."""
    settings = settings_for(tmp_path)
    n = names()
    with Sandbox(sandbox_for()) as sandbox:
        # Paced by a small quota (8 calls in 4 s): 40 accounts take about 20 s, a batch lands at the end.
        quotas = {"KIC_QUOTAS__WEB_CALLS": "8", "KIC_QUOTAS__WEB_WINDOW_SECONDS": "4"}
        env = subprocess_env({"KIC_WEB_BASE_URL": sandbox.url, **quotas})
        command = [sys.executable, "-m", "kic", "crawl", "--accounts", ",".join(n), "--date", str(DAY)]
        with subprocess.Popen(
            [*command, "-w", str(settings.warehouse)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            preexec_fn=as_at_a_terminal,
        ) as run:
            deadline = time.monotonic() + 120

            def answered() -> int:  # web calls the sandbox admitted, from every client
                with urllib.request.urlopen(f"{sandbox.url}/_sandbox/usage") as usage:
                    return sum(key["admitted"] for key in json.load(usage)["web"].values())

            while answered() < 3 and time.monotonic() < deadline and run.poll() is None:
                time.sleep(0.2)  # until its crawler has a few answers
            assert run.poll() is None, run.stderr.read()[-2000:]
            os.killpg(run.pid, signal.SIGINT)
            stderr = run.stderr.read()
            assert run.wait(timeout=60) == 130, stderr[-2000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("Error: interrupted while crawling: what the crawl landed is kept in"), stderr[-2000:]
    assert "`kic load` loads it" in last
    loaded = kic("load", "-w", str(settings.warehouse))
    assert loaded.returncode == 0, loaded.stderr
    ((status, reached),) = rows(settings, "SELECT status, profiles_written FROM raw.crawl_runs")
    assert status == "interrupted" and 0 < reached < len(n)
