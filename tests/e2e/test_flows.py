"""The Prefect flows, run under prefect_test_harness against the sandbox; checked by what they wrote."""

import json
import re
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
)

from flows.nightly_refresh import nightly_refresh
from flows.tasks import as_task
from flows.weekly_recluster import weekly_recluster
from models.config import ClusteringConfig
from pipeline import steps
from pipeline.settings import Settings
from pipeline.storage import connect
from renderers.persona_guide import look
from sandbox.server import Sandbox
from sandbox.settings import SandboxSettings
from sandbox.synthetic import Population
from support import derive, synthetic_crawl

SEED = 21
NIGHT = date(2026, 6, 1)
CLUSTERING = ClusteringConfig(
    kmeans_k=[3], kmedoids_k=[], hierarchical_thresholds=[], elbow_k=[1, 2], publish="kmeans-k3", min_personas=3
)


@pytest.fixture(autouse=True)
def harness(prefect_harness):
    """Every test here runs flows on the session's Prefect server."""


@pytest.fixture
def env(tmp_path):
    return Settings(warehouse=tmp_path / "warehouse.duckdb")


def names(n=40):
    return [a.username for a in Population(n, SEED).accounts]


def night(settings, day=NIGHT, **faults):
    sandbox_settings = SandboxSettings(influencers=40, seed=SEED, date=day, faults=faults)
    with Sandbox(sandbox_settings) as sandbox:
        return nightly_refresh(
            accounts=names(), date=day, base_url=sandbox.url, warehouse=str(settings.warehouse), return_state=True
        )


def weekly(settings, **parameters):
    return weekly_recluster(warehouse=str(settings.warehouse), return_state=True, **parameters)


def rows(settings, sql, params=None, copy=False):
    with connect(settings.analytics_path if copy else settings.warehouse, read_only=True) as con:
        return con.execute(sql, params).fetchall()


def artifacts(state):
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
        run = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )[0]
    return {a.key: a for a in found}, run


def table(artifact) -> list[dict]:
    """A table artifact's rows (the API returns them as JSON text)."""
    return json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data


def test_nightly_refresh_crawls_validates_derives_and_publishes(env, caplog, monkeypatch):
    monkeypatch.setenv("KIC_DATA_DOCS", "true")  # the product's default (conftest turns them off)
    state = night(env)
    assert state.is_completed(), state.message
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stats of crawl 1 ")]
    assert [r.name for r in caplog.records if r.getMessage().startswith("stats of crawl")] == ["kic.pipeline"]
    assert logged and '"item_scraped_count": 40' in logged[0]  # the spider's stats, in the run's log
    result = state.result()
    assert result["features"] == 40 and result["quarantined"] == 0
    assert rows(env, "SELECT status, accounts_requested FROM raw.crawl_runs") == [("succeeded", 40)]
    suites = rows(env, "SELECT suite, table_level_ok, failed FROM quality.validation_runs ORDER BY suite")
    assert [s for s, _, _ in suites] == ["features", "raw_posts", "raw_profiles", "volume", "volume"]
    assert all(ok and failed == 0 for _, ok, failed in suites)
    # The analysts' copy has the night's features, and Data Docs were built.
    assert rows(
        env, "SELECT count(*) FROM features.influencer_features WHERE feature_date = ?", [NIGHT], copy=True
    ) == [(40,)]
    assert (env.data_docs_path / "index.html").is_file()
    # ... and the offline summary beside them lists the night's five validations.
    assert (env.data_docs_path / "offline.html").read_text(encoding="utf-8").count("<tr class=") == 5
    found, run = artifacts(state)
    started = run.expected_start_time.astimezone(ZoneInfo("Asia/Seoul"))
    # The day crawled and the run's start, in the zone named; then the crawl it loaded.
    assert run.name == f"nightly-refresh-2026-06-01-web-{started:%H%M%S}-KST-crawl-1"
    assert {"nightly-plan", "nightly-crawl-outcomes", "nightly-validation"} <= set(found)
    assert {r["status"] for r in table(found["nightly-crawl-outcomes"])} <= {"ok", "private"}
    assert "Rows quarantined:** 0" in found["nightly-validation"].data
    assert "40 watched" in found["nightly-plan"].data and "never_observed | 40" in found["nightly-plan"].data


def test_two_runs_of_one_day_have_names_of_their_own(env):
    """Run names carry the run's start (to the second) and the crawl it loaded: two nights of one
    date, one after the other, are told apart in the Prefect UI."""
    first, second = night(env), night(env)
    names = [artifacts(state)[1].name for state in (first, second)]
    assert names[0] != names[1]
    for crawl_id, name in enumerate(names, start=1):
        assert re.fullmatch(rf"nightly-refresh-{NIGHT}-web-\d{{6}}-KST-crawl-{crawl_id}", name), name


def test_bad_rows_are_quarantined_and_the_rest_flows_on(env):
    bad = names()[5]
    state = night(env, corrupt=[bad])
    assert state.is_completed(), state.message
    quarantined = rows(env, "SELECT table_name, username, expectation FROM quality.quarantined_rows ORDER BY 1")
    assert ("raw.posts", bad) in {(t, u) for t, u, _ in quarantined}
    profile = [e for t, u, e in quarantined if t == "raw.profiles"]
    assert profile == ["expect_column_values_to_be_between(followers)"]
    future = [e for t, u, e in quarantined if t == "raw.posts"]
    assert future == ["expect_column_pair_values_a_to_be_greater_than_b(fetched_at>=taken_at)"]
    featured = {u for (u,) in rows(env, "SELECT username FROM features.influencer_features")}
    assert bad not in featured and len(featured) == 39  # the rest flowed on
    assert state.result()["quarantined"] == 2


def test_a_volume_drop_fails_the_night_before_features_change_and_the_weekly_run_ignores_it(env):
    """The night's crawl fails validation on a volume drop: features stay as they were, and the
    weekly run clusters the last validated features, deriving nothing from the failed night."""
    assert night(env).is_completed()
    later = date(2026, 6, 2)
    state = night(env, day=later, deleted=names()[10:])  # 30 of 40 accounts vanish
    assert state.is_failed()
    assert "table-level validation failed" in state.message and "rows>=min_rows" in state.message
    # It says so in the user's words: the counts and the top reason, and the volume against the plan.
    assert "NightFailed: 30 of 40 accounts failed (more than 20%): not_found 30 (data.user is null)" in state.message
    assert "raw.profiles: 10 rows, fewer than 20 (half of the 40 planned accounts it reached)" in state.message
    # A failed night still attaches its plan, outcomes (with example accounts) and validation.
    found, _ = artifacts(state)
    assert {"nightly-plan", "nightly-crawl-outcomes", "nightly-validation"} <= set(found)
    gone = next(r for r in table(found["nightly-crawl-outcomes"]) if r["status"] == "not_found")
    assert gone["accounts"] == 30 and gone["examples"].split(", ") == sorted(names()[10:])[:3]
    assert "**failed**" in found["nightly-validation"].data and "fewer than 20" in found["nightly-validation"].data
    assert rows(env, "SELECT count(*) FROM features.influencer_features WHERE feature_date = ?", [later]) == [(0,)]
    assert rows(
        env, "SELECT count(*) FROM features.influencer_features WHERE feature_date = ?", [later], copy=True
    ) == [(0,)]
    volume = rows(
        env,
        "SELECT table_level_ok FROM quality.validation_runs v JOIN raw.crawl_runs r USING (crawl_id) "
        "WHERE suite = 'volume' AND r.as_of_date = ?",
        [later],
    )
    assert volume == [(False,)]  # the failed check is on record
    weekly_run = weekly(env, clustering=CLUSTERING)
    assert weekly_run.is_completed(), weekly_run.message
    assert rows(env, "SELECT version, feature_date FROM clusters.snapshots") == [(1, NIGHT)]
    assert rows(env, "SELECT count(*) FROM features.influencer_features WHERE feature_date = ?", [later]) == [(0,)]


def crafted_night(settings, day):
    """A night's validated crawl and features, written directly (the nightly flow is tested above)."""
    with connect(settings.warehouse) as con:
        synthetic_crawl(con, Population(40, SEED), day)
        derive(con, day)


def test_weekly_recluster_publishes_a_snapshot_with_artifacts(env, monkeypatch):
    crafted_night(env, NIGHT)
    first = weekly(env, clustering=CLUSTERING)
    assert first.is_completed(), first.message
    crafted_night(env, date(2026, 6, 8))
    monkeypatch.setattr(steps, "CHANGES_SHOWN", 2)  # the persona-changes artifact shows this many
    # A re-base (the flow's parameter): the personas are redrawn from the week's fit, so that some
    # change persona (a kept frame moves only those whose numbers crossed: tests/test_frames.py).
    second = weekly(env, clustering=CLUSTERING, rebase=True)
    assert second.result()["version"] == 2
    assert second.result()["personas"] == "made: a re-base was asked for"
    assert rows(
        env, "SELECT version, feature_date, published_candidate FROM clusters.snapshots ORDER BY 1", copy=True
    ) == [(1, NIGHT, "kmeans-k3"), (2, date(2026, 6, 8), "kmeans-k3")]
    found, run = artifacts(second)
    started = run.expected_start_time.astimezone(ZoneInfo("Asia/Seoul"))
    assert run.name == f"weekly-recluster-2026-06-08-v2-{started:%H%M%S}-KST"  # renamed after what it made
    assert {"weekly-clusters", "weekly-candidates", "weekly-persona-changes", "weekly-report"} <= set(found)
    ages = table(found["weekly-observation-ages"])
    assert {(r["oldest observation"], r["older than 7 days"]) for r in ages} == {("2026-06-08", "0%")}
    assert "numbers observed from 2026-06-08 on" in found["weekly-observation-ages"].description
    report = Path(second.result()["report"])
    assert report.name == "snapshot-2.html" and "data:image/png;base64," in report.read_text(encoding="utf-8")
    assert str(report) in found["weekly-report"].data
    # The key charts, inline in the report artifact and one image artifact each; no tree: the
    # clustering tried K-means only.
    assert found["weekly-report"].data.count("](data:image/png;base64,") == 2
    for key in ("weekly-scatter", "weekly-moves"):
        assert found[key].type == "image" and found[key].data.startswith("data:image/png;base64,")
    assert "weekly-dendrogram" not in found
    assert (
        sum(r["size"] for r in table(found["weekly-clusters"]))
        == rows(env, "SELECT n_influencers FROM clusters.snapshots WHERE version = 2")[0][0]
    )
    assert [c["candidate"] for c in table(found["weekly-candidates"])] == ["kmeans-k3"]
    # Who changed persona: the largest moves, each with why, and where the full list is.
    changed = rows(env, "SELECT count(*) FROM clusters.changes")[0][0]
    assert changed > 2 and second.result()["changed"] == changed
    changes = found["weekly-persona-changes"]
    shown = table(changes)
    assert len(shown) == 2 and all(" -> " in r["why"] or "not clustered" in r["why"] for r in shown)
    assert f"{changed} influencer(s) changed persona" in changes.description
    assert "Personas made: a re-base was asked for" in changes.description
    assert {r["change"] for r in shown} <= {"reframed", "renamed", "new", "dropped"}
    assert "the 2 largest moves shown" in changes.description and "`kic changes 1 2`" in changes.description
    clusters = table(found["weekly-clusters"])
    ids = rows(env, "SELECT persona_id FROM clusters.profiles WHERE version = 2 ORDER BY rank")
    assert [c["colour"] for c in clusters] == [look(i).label for (i,) in ids]  # the report's colours
    # Who to pick, in the report artifact: each persona with its best fits linked to their profiles.
    assert "### Who to pick" in found["weekly-report"].data
    assert len(re.findall(r"\]\(https://www\.instagram\.com/[^/)]+/\)", found["weekly-report"].data)) >= 3


def test_a_weekly_run_beyond_the_exact_range_takes_the_scalable_path_and_its_artifacts_say_so(env):
    with connect(env.warehouse) as con:
        synthetic_crawl(con, Population(300, SEED), NIGHT)
        derive(con, NIGHT)
    cfg = ClusteringConfig(
        exact_max_influencers=100,
        max_micro_clusters=150,
        silhouette_sample_size=200,
        kmedoids_k=[3],
        kmeans_k=[3, 4],
        elbow_k=[1, 2],
    )
    state = weekly(env, clustering=cfg)
    assert state.is_completed(), state.message
    found, _ = artifacts(state)
    candidates = table(found["weekly-candidates"])
    assert "on the scalable path" in found["weekly-candidates"].description
    assert {c["candidate"]: c["method"].split(":")[0] for c in candidates} == {
        "kmeans-k3": "scalable",
        "kmeans-k4": "scalable",
        "kmedoids-k3": "scalable",
        "hierarchical-complete-t20": "scalable",
        "hierarchical-complete-t25": "scalable",
        "hierarchical-complete-t30": "scalable",
    }
    assert {c["scored_on"] for c in candidates} == {200}
    path = rows(env, "SELECT parameters->>'$.path', n_influencers FROM clusters.snapshots")
    assert path[0][0] == "scalable" and path[0][1] > 100


def test_a_failing_task_fails_the_run_and_leaves_the_warehouse_as_it_was(env):
    crafted_night(env, NIGHT)
    before = rows(env, "SELECT count(*) FROM clusters.snapshots")
    state = weekly(env, clustering=CLUSTERING.model_copy(update={"publish": "kmeans-k99"}))
    assert state.is_failed() and "kmeans-k99" in state.message
    assert rows(env, "SELECT count(*) FROM clusters.snapshots") == before


def test_tasks_are_the_steps_by_name_and_only_io_steps_retry():
    every_step = [f for f in vars(steps).values() if callable(f) and hasattr(f, "step_kind")]
    assert {
        "open_crawl",
        "crawl",
        "load",
        "validate_crawl_rows",
        "validate_feature_rows",
        "store_validation",
        "write_features",
        "publish",
        "read_features",
        "write_snapshot",
        "fit",
        "require_table_checks",
    } <= {f.__name__ for f in every_step}
    for step in every_step:
        task = as_task(step)
        assert task.name == step.__name__
        assert (task.retries > 0) == (step.step_kind == steps.IO), step.__name__
        assert len(step.__doc__.strip().splitlines()) == 1, f"{step.__name__}: one-line docstring"
    # The validations read the warehouse (in chunks, read-only): I/O steps too.
    io_reads = [f for f in every_step if f.__name__.startswith(("read_", "find_", "validate_"))]
    assert io_reads and all(steps.is_io(f) for f in io_reads)


def test_the_graph_token_can_come_from_a_prefect_secret_block(monkeypatch):
    from prefect.blocks.system import Secret

    from pipeline.secrets import graph_access_token
    from warehouse.errors import KicError

    Secret(value="token-from-a-block").save("kic-graph-token", overwrite=True)
    monkeypatch.delenv("KIC_GRAPH_ACCESS_TOKEN", raising=False)
    assert graph_access_token(Settings(graph_access_token_block="kic-graph-token")) == "token-from-a-block"
    assert (
        graph_access_token(Settings(graph_access_token="from-env", graph_access_token_block="kic-graph-token"))
        == "from-env"
    )
    with pytest.raises(KicError, match="no-such-block"):
        graph_access_token(Settings(graph_access_token_block="no-such-block"))


def test_a_weekly_run_on_unchanged_data_stores_nothing_and_its_run_and_artifacts_say_so(env):
    crafted_night(env, NIGHT)
    assert weekly(env, clustering=CLUSTERING).result()["version"] == 1
    again = weekly(env, clustering=CLUSTERING)
    assert again.is_completed(), again.message
    result = again.result()
    assert (result["unchanged"], result["version"]) == (True, 1)
    assert "nothing new" in result["message"] and "snapshot 1" in result["message"]
    assert rows(env, "SELECT version FROM clusters.snapshots") == [(1,)]
    found, run = artifacts(again)
    started = run.expected_start_time.astimezone(ZoneInfo("Asia/Seoul"))
    assert run.name == f"weekly-recluster-{NIGHT}-v1-unchanged-{started:%H%M%S}-KST"
    assert "No new snapshot" in found["weekly-clusters"].data and "weekly-candidates" not in found
    forced = weekly(env, clustering=CLUSTERING, force=True)
    assert (forced.result()["unchanged"], forced.result()["version"]) == (False, 2)
    assert rows(env, "SELECT max(version) FROM clusters.snapshots", copy=True) == [(2,)]
