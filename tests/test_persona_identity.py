"""Persona identity over time: stable persona ids, persona events, the no-op weekly run."""

import json
from dataclasses import dataclass
from datetime import date

import duckdb
import pandas as pd
import pytest

from models.config import ClusteringConfig
from pipeline import jobs, steps
from pipeline.settings import Settings
from pipeline.storage import connect, publish_copy
from sandbox.synthetic import Population
from support import assert_one_line_error, cli, derive, migrate_to, store_new_snapshot, synthetic_crawl
from transforms.features import clusterable_fingerprint
from warehouse.snapshots import unchanged_snapshot

DAY_1, DAY_2, DAY_3 = date(2026, 5, 1), date(2026, 5, 8), date(2026, 5, 15)
POPULATION = Population(100, seed=11)


@dataclass(frozen=True)
class Cluster:
    """A crafted cluster: the share of usernames (in name order) it holds, its centre and name."""

    start: float
    stop: float
    centre: tuple[float, float]
    persona: str
    er_level: str = "low"
    active_rate_level: str = "low"


@dataclass(frozen=True)
class CraftedSnapshot:
    """What store_snapshot stores, with clusters laid out by hand over a date's real features."""

    feature_date: date
    fingerprint: str
    row_usernames: pd.DataFrame  # row_index, username of the date's clusterable influencers
    layout: dict[int, Cluster]
    all_usernames: list[str]

    def cluster_of(self, username: str) -> int:
        share = self.all_usernames.index(username) / len(self.all_usernames)
        return next(n for n, c in self.layout.items() if c.start <= share < c.stop)

    def cluster_per_row(self) -> pd.DataFrame:
        clusters = [self.cluster_of(u) for u in self.row_usernames.username]
        rows = {"row_index": self.row_usernames.row_index, "cluster": clusters}
        return pd.DataFrame({**rows, "assigned_by": "fit", "distance_ratio": None})

    def snapshot_row(self) -> dict:
        return {
            "feature_date": self.feature_date,
            "n_influencers": len(self.row_usernames),
            "data_fingerprint": self.fingerprint,
            "parameters": {},
            "published_candidate": "crafted",
            "n_clusters": len(self.layout),
            "frame_id": None,
            "frame_made": True,  # each crafted snapshot is a fit that makes its own persona frame
            "frame_why": "made: crafted",
            "population_shift": None,
        }

    def frame_space(self) -> dict:
        return {"scaling": "none", "space_offset": [0.0, 0.0], "space_scale": [1.0, 1.0]}

    def tables(self) -> dict[str, pd.DataFrame]:
        sizes = self.cluster_per_row().cluster.value_counts()
        profiles = [
            {
                "cluster": n,
                "size": int(sizes[n]),
                "mean_er": c.centre[0],
                "median_er": c.centre[0],
                "mean_active_rate": c.centre[1],
                "median_active_rate": c.centre[1],
                "median_follower": 1000.0,
                "er_level": c.er_level,
                "active_rate_level": c.active_rate_level,
                "persona": c.persona,
                "rank": n,
            }
            for n, c in self.layout.items()
        ]
        return {"profiles": pd.DataFrame(profiles)}


def crafted(con, day: date, layout: dict[int, Cluster]) -> CraftedSnapshot:
    rows = con.execute(
        "SELECT row_index, username FROM features.clusterable WHERE feature_date = ? ORDER BY row_index", [day]
    ).df()
    return CraftedSnapshot(
        day, clusterable_fingerprint(con, day), rows, layout, sorted(a.username for a in POPULATION.accounts)
    )


# A: 1 = first half, 2 = the next 30%, 3 = the last 20%.
LAYOUT_A = {
    1: Cluster(0, 0.5, (1.0, 1.0), "Low"),
    2: Cluster(0.5, 0.8, (10.0, 10.0), "Mid", "middle", "middle"),
    3: Cluster(0.8, 1.01, (30.0, 30.0), "Top", "high", "high"),
}
# B: 1 keeps 90% of A's 1 (continued); 2 takes A's 2 and 3 (continues 2, the better overlap);
# 3 is a tenth of A's 1 far from any centre (new); A's 3 is left without a match (vanished).
LAYOUT_B = {
    1: Cluster(0, 0.45, (1.2, 1.0), "Low"),
    2: Cluster(0.5, 1.01, (11.0, 10.0), "Mid", "middle", "middle"),
    3: Cluster(0.45, 0.5, (60.0, 60.0), "Niche", "high", "high"),
}
# C: every cluster of B, but B's 3 keeps none of its members (they go to 1) and gets the first
# twentieth of B's 1 instead: it continues by its centre only.
LAYOUT_C = {
    1: Cluster(0.05, 0.5, (1.2, 1.0), "Low"),
    2: Cluster(0.5, 1.01, (11.0, 10.0), "Mid", "middle", "middle"),
    3: Cluster(0, 0.05, (61.0, 60.0), "Niche", "high", "high"),
}


@pytest.fixture
def two_dates(con):
    for day in (DAY_1, DAY_2, DAY_3):
        synthetic_crawl(con, POPULATION, day)
        derive(con, day)
    return con


def events(con, version):
    return con.execute(
        "SELECT e.persona_id, e.event, e.cluster, e.previous_cluster, e.matched_by, p.persona "
        "FROM clusters.persona_events e LEFT JOIN clusters.profiles p USING (version, cluster) "
        "WHERE e.version = ? ORDER BY e.persona_id",
        [version],
    ).fetchall()


def test_personas_keep_their_ids_new_ones_get_new_ids_and_vanished_ones_are_recorded(two_dates):
    con = two_dates
    assert store_new_snapshot(con, crafted(con, DAY_1, LAYOUT_A)) == 1
    assert events(con, 1) == [
        (1, "new", 1, None, None, "Low"),
        (2, "new", 2, None, None, "Mid"),
        (3, "new", 3, None, None, "Top"),
    ]
    assert store_new_snapshot(con, crafted(con, DAY_2, LAYOUT_B)) == 2
    assert events(con, 2) == [
        (1, "continued", 1, 1, "members", "Low"),
        (2, "continued", 2, 2, "members", "Mid"),
        (3, "vanished", None, 3, None, None),
        (4, "new", 3, None, None, "Niche"),
    ]
    jaccard = dict(con.execute("SELECT cluster, jaccard FROM clusters.persona_events WHERE version = 2").fetchall())
    assert jaccard[1] == pytest.approx(0.9, abs=0.05) and jaccard[2] == pytest.approx(0.6, abs=0.05)
    assert store_new_snapshot(con, crafted(con, DAY_3, LAYOUT_C)) == 3
    assert events(con, 3) == [
        (1, "continued", 1, 1, "members", "Low"),
        (2, "continued", 2, 2, "members", "Mid"),
        (4, "continued", 3, 3, "centre", "Niche"),
    ]
    centre = "SELECT jaccard, centre_distance FROM clusters.persona_events WHERE version = 3 AND cluster = 3"
    assert con.execute(centre).fetchall() == [(0.0, pytest.approx(1.0))]
    ids = con.execute("SELECT version, cluster, persona_id FROM clusters.profiles ORDER BY ALL").fetchall()
    assert ids == [(1, 1, 1), (1, 2, 2), (1, 3, 3), (2, 1, 1), (2, 2, 2), (2, 3, 4), (3, 1, 1), (3, 2, 2), (3, 3, 4)]


def test_a_snapshot_whose_persona_matching_fails_is_not_stored_at_all(two_dates):
    con = two_dates
    store_new_snapshot(con, crafted(con, DAY_1, LAYOUT_A))
    # A real failure in the last statement of the write: an event row already holds the key
    # the matching writes for version 2.
    con.execute("INSERT INTO clusters.persona_events (version, persona_id, event) VALUES (2, 1, 'new')")
    with pytest.raises(duckdb.ConstraintException):
        store_new_snapshot(con, crafted(con, DAY_2, LAYOUT_B))
    stored = con.execute(
        "SELECT (SELECT count(*) FROM clusters.snapshots), (SELECT count(*) FROM clusters.profiles WHERE version = 2), "
        "(SELECT count(*) FROM clusters.assignments WHERE version = 2), (SELECT count(*) FROM clusters.persona_events)"
    ).fetchall()
    assert stored == [(1, 0, 0, 4)]


CLUSTERING = ClusteringConfig(kmeans_k=[3], kmedoids_k=[3], elbow_k=[1, 2])


@pytest.fixture
def settings(tmp_path):
    settings = Settings(warehouse=tmp_path / "warehouse.duckdb", clustering=CLUSTERING)
    with connect(settings.warehouse) as con:
        synthetic_crawl(con, Population(80, seed=3), DAY_1)
        derive(con, DAY_1)
    return settings


def snapshot_versions(settings):
    with connect(settings.warehouse, read_only=True) as con:
        return [v for (v,) in con.execute("SELECT version FROM clusters.snapshots ORDER BY 1").fetchall()]


@pytest.mark.e2e  # two fits and two publishes through the real job: seconds
def test_a_weekly_run_on_unchanged_data_and_settings_fits_and_stores_nothing_unless_forced(settings):
    first = jobs.recluster(settings)
    steps_run = []

    def recording(step):
        steps_run.append(step.__name__)
        return step

    again = jobs.recluster(settings, call=recording)
    assert (first.unchanged, again.unchanged, again.version) == (False, True, 1)
    assert "fit" not in steps_run and "write_snapshot" not in steps_run
    assert "publish" in steps_run  # what a run killed while publishing left undone
    assert "nothing new" in again.unchanged_message() and "snapshot 1" in again.unchanged_message()
    assert again.cluster_table.equals(first.cluster_table)
    assert snapshot_versions(settings) == [1]
    forced = jobs.recluster(settings, force=True)
    assert (forced.unchanged, forced.version) == (False, 2)
    assert snapshot_versions(settings) == [1, 2]
    with connect(settings.analytics_path, read_only=True) as con:  # the forced one was published
        assert con.execute("SELECT max(version) FROM clusters.snapshots").fetchall() == [(2,)]


def test_only_the_same_data_with_the_same_settings_as_the_latest_snapshot_is_unchanged(two_dates):
    con = two_dates
    settings = CLUSTERING.model_dump(mode="json")
    fingerprint = clusterable_fingerprint(con, DAY_1)
    assert unchanged_snapshot(con, fingerprint, settings) is None  # no snapshot yet
    parameters = json.dumps({**settings, "path": "exact", "influencers": 1})  # as a snapshot stores them
    for version, day in ((1, DAY_1), (2, DAY_2), (3, DAY_1)):
        con.execute(
            "INSERT INTO clusters.snapshots BY NAME SELECT ? AS version, now() AS created_at, ? AS feature_date, "
            "1 AS n_influencers, ? AS data_fingerprint, 'test' AS code_version, ? AS parameters, "
            "'kmeans-k3' AS published_candidate, 1 AS n_clusters",
            [version, day, clusterable_fingerprint(con, day), parameters],
        )
    assert unchanged_snapshot(con, fingerprint, settings) == 3  # the latest, not the first of that data
    assert unchanged_snapshot(con, fingerprint, {**settings, "kmeans_k": [4]}) is None
    assert unchanged_snapshot(con, clusterable_fingerprint(con, DAY_2), settings) is None  # not the latest's data


def expected_moves(con, a: CraftedSnapshot, b: CraftedSnapshot) -> dict[str, tuple]:
    """username -> (persona before, persona after) for everyone whose persona differs, from the layouts."""
    before = {u: a.layout[a.cluster_of(u)].persona for u in a.row_usernames.username}
    after = {u: b.layout[b.cluster_of(u)].persona for u in b.row_usernames.username}
    return {u: (before.get(u), after.get(u)) for u in before.keys() | after.keys() if before.get(u) != after.get(u)}


def features_of(con, day):
    rows = con.execute("SELECT username, er, active_rate FROM features.clusterable WHERE feature_date = ?", [day])
    return {u: (er, ar) for u, er, ar in rows.fetchall()}


def test_kic_changes_explains_each_redraw_with_values_levels_and_personas_before_and_after(two_dates, warehouse_path):
    con = two_dates
    a, b = crafted(con, DAY_1, LAYOUT_A), crafted(con, DAY_2, LAYOUT_B)
    store_new_snapshot(con, a), store_new_snapshot(con, b)
    expected = expected_moves(con, a, b)
    before, after = features_of(con, DAY_1), features_of(con, DAY_2)
    con.close()
    settings = Settings(warehouse=warehouse_path)
    publish_copy(settings.warehouse, settings.analytics_path)

    rows = json.loads(cli("changes", "-w", warehouse_path, "-f", "json").stdout)
    assert {r["username"]: (r["previous_persona"], r["current_persona"]) for r in rows} == expected
    moved = [r for r in rows if r["change"] == "reframed"]  # each crafted snapshot redraws its personas
    assert {(r["previous_persona_id"], r["current_persona_id"]) for r in moved} == {(1, 4), (3, 2)}
    for r in moved:
        layout_before = next(c for c in LAYOUT_A.values() if c.persona == r["previous_persona"])
        layout_after = next(c for c in LAYOUT_B.values() if c.persona == r["current_persona"])
        assert (r["previous_er"], r["previous_active_rate"]) == pytest.approx(before[r["username"]])
        assert (r["current_er"], r["current_active_rate"]) == pytest.approx(after[r["username"]])
        assert (r["previous_er_level"], r["current_er_level"]) == (layout_before.er_level, layout_after.er_level)
        numbers = f"ER {before[r['username']][0]:.2f} -> {after[r['username']][0]:.2f}"
        assert r["why"].startswith(f"personas redrawn in snapshot 2 (made: crafted): {numbers}")
    # The same between the two versions named; the other way round, the moves reverse.
    assert json.loads(cli("changes", "1", "2", "-w", warehouse_path, "-f", "json").stdout) == rows
    reverse = json.loads(cli("changes", "2", "1", "-w", warehouse_path, "-f", "json").stdout)
    assert {r["username"]: (r["current_persona"], r["previous_persona"]) for r in reverse} == expected
    table = cli("changes", "-w", warehouse_path)
    assert table.returncode == 0 and "Snapshot 1 -> 2" in table.stdout and "Niche" in table.stdout


def test_kic_changes_reads_the_analysts_copy_and_refuses_a_missing_version_in_one_line(two_dates, warehouse_path):
    con = two_dates
    store_new_snapshot(con, crafted(con, DAY_1, LAYOUT_A))
    con.close()
    settings = Settings(warehouse=warehouse_path)
    assert_one_line_error(cli("changes", "-w", warehouse_path), "snapshot 1 is the first")
    publish_copy(settings.warehouse, settings.analytics_path)
    with connect(warehouse_path) as con:  # stored, not published: the copy does not know it yet
        store_new_snapshot(con, crafted(con, DAY_2, LAYOUT_B))
    assert_one_line_error(cli("changes", "1", "2", "-w", warehouse_path), "no snapshot version 2")
    assert_one_line_error(cli("changes", "7", "1", "-w", warehouse_path), "no snapshot version 7")
    publish_copy(settings.warehouse, settings.analytics_path)
    assert cli("changes", "1", "2", "-w", warehouse_path, "-f", "csv").stdout.startswith("username,previous_version")


def test_snapshots_stored_before_persona_ids_get_ids_of_their_own_on_upgrade(warehouse_path):
    with duckdb.connect(str(warehouse_path)) as con:
        migrate_to(con, 10)  # before persona ids
        for version in (1, 2):
            con.execute(
                "INSERT INTO clusters.snapshots VALUES (?, now(), DATE '2026-05-01', 4, 'x', 'old', '{}', 'k', 2)",
                [version],
            )
            con.execute(
                "INSERT INTO clusters.profiles (version, cluster, size, mean_er, median_er, mean_active_rate, "
                "median_active_rate, er_level, active_rate_level, persona, rank) "
                "SELECT ?, cluster, 2, 1, 1, 1, 1, 'low', 'low', 'P' || cluster, cluster FROM range(1, 3) t(cluster)",
                [version],
            )
    with connect(warehouse_path) as con:
        ids = con.execute("SELECT version, cluster, persona_id FROM clusters.profiles ORDER BY ALL").fetchall()
    assert ids == [(1, 1, 1), (1, 2, 2), (2, 1, 3), (2, 2, 4)]


def test_two_runs_storing_the_same_clustering_at_once_store_one_snapshot(settings):
    """Both fitted before either stored (two `kic recluster` started together): the decision
    "nothing new" is made inside the write transaction, so the second stores nothing."""
    rows, day = steps.read_features(settings, None)
    first, second = (steps.fit(rows, settings.clustering, day) for _ in range(2))
    assert steps.write_snapshot(settings, first) == (1, True)
    assert steps.write_snapshot(settings, second) == (1, False)
    assert steps.write_snapshot(settings, second, force=True) == (2, True)  # forced: stored anyway
    assert snapshot_versions(settings) == [1, 2]


@pytest.mark.e2e  # two `kic recluster` processes
def test_two_kic_recluster_started_together_store_one_snapshot(settings):
    import subprocess
    import sys

    from support import subprocess_env

    env = subprocess_env({"KIC_WAREHOUSE": str(settings.warehouse), "KIC_CLUSTERING": CLUSTERING.model_dump_json()})
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "kic", "recluster"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    said = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], said
    assert snapshot_versions(settings) == [1]
    assert sum("nothing new" in out for out, _ in said) == 1


def test_a_snapshot_stored_but_not_published_is_published_by_the_next_run_with_nothing_new(settings):
    """As after a kill while publishing: the copy lacks the newest snapshot until a run publishes."""
    jobs.recluster(settings)
    rows, day = steps.read_features(settings, None)
    assert steps.write_snapshot(settings, steps.fit(rows, settings.clustering, day), force=True) == (2, True)
    with connect(settings.analytics_path, read_only=True) as con:
        assert con.execute("SELECT max(version) FROM clusters.snapshots").fetchall() == [(1,)]
    again = jobs.recluster(settings)
    assert (again.unchanged, again.version) == (True, 2)
    with connect(settings.analytics_path, read_only=True) as con:
        assert con.execute("SELECT max(version) FROM clusters.snapshots").fetchall() == [(2,)]
