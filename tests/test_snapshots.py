from dataclasses import replace
from datetime import date

import duckdb
import pandas as pd
import pytest

from conftest import derive, synthetic_crawl
from models.config import ClusteringConfig
from models.recluster import recluster
from sandbox.synthetic import Population
from transforms.features import load_clusterable
from warehouse.snapshots import write_snapshot

CFG = ClusteringConfig(kmeans_k=[3, 4], kmedoids_k=[3], elbow_k=[1, 2, 3])
SNAPSHOT_TABLES = ["snapshots", "candidates", "kmeans_elbow", "assignments", "profiles"]


def dump(con, version):
    return {
        t: con.execute(f"SELECT * FROM clusters.{t} WHERE version = ? ORDER BY ALL", [version]).fetchall()
        for t in SNAPSHOT_TABLES
    }


def counts(con):
    return {t: con.execute(f"SELECT count(*) FROM clusters.{t}").fetchall()[0][0] for t in SNAPSHOT_TABLES}


@pytest.fixture
def clustering(con):
    day = date(2026, 5, 1)
    synthetic_crawl(con, Population(200, seed=11), day)
    derive(con, day)
    return recluster(load_clusterable(con, day), CFG, day)


def test_reclustering_twice_gives_two_snapshots_and_leaves_the_first_unchanged(con, clustering):
    first = write_snapshot(con, clustering)
    before = dump(con, first)
    later = date(2026, 5, 8)
    synthetic_crawl(con, Population(200, seed=11), later)
    derive(con, later)
    second = write_snapshot(con, recluster(load_clusterable(con, later), CFG, later))
    assert (first, second) == (1, 2)
    assert dump(con, first) == before
    assert len(before["assignments"]) == clustering.n_influencers
    snapshots = con.execute(
        "SELECT version, feature_date, data_fingerprint FROM clusters.snapshots ORDER BY 1"
    ).fetchall()
    assert [s[1] for s in snapshots] == [date(2026, 5, 1), later]
    assert snapshots[0][2] != snapshots[1][2]  # the data moved between the two dates
    latest = con.execute("SELECT DISTINCT version FROM clusters.latest_assignments").fetchall()
    assert latest == [(2,)]
    assert con.execute("SELECT DISTINCT version FROM clusters.latest_profiles").fetchall() == [(2,)]


def test_snapshot_records_candidates_elbow_and_parameters(con, clustering):
    version = write_snapshot(con, clustering)
    candidates = con.execute(
        "SELECT candidate, is_published, list_sum(sizes), silhouette FROM clusters.candidates WHERE version = ?",
        [version],
    ).fetchall()
    assert {c[0] for c in candidates} == {
        "kmeans-k3",
        "kmeans-k4",
        "kmedoids-k3",
        "hierarchical-complete-t20",
        "hierarchical-complete-t25",
        "hierarchical-complete-t30",
    }
    assert [c[0] for c in candidates if c[1]] == ["hierarchical-complete-t20"]
    assert all(c[2] == clustering.n_influencers for c in candidates)
    assert con.execute("SELECT k FROM clusters.kmeans_elbow ORDER BY k").fetchall() == [(1,), (2,), (3,)]
    params = con.execute("SELECT parameters->>'$.publish', parameters->'$.kmeans_k' FROM clusters.snapshots").fetchall()
    assert params == [("hierarchical-complete-t20", "[3,4]")]


def assignments(rows):
    return pd.DataFrame(
        [{"username": u, "cluster": c, "persona": p, "er": 1.0, "active_rate": 1.0} for u, c, p in rows]
    )


def test_changes_lists_influencers_whose_persona_differs_between_the_two_latest(con, clustering):
    def snapshot(rows):
        return write_snapshot(con, replace(clustering, assignments=assignments(rows)))

    snapshot([("ann", 1, "Lowest benefit"), ("bob", 1, "Lowest benefit")])  # too old to matter
    assert con.execute("SELECT count(*) FROM clusters.changes").fetchall() == [(0,)]
    snapshot(
        [
            ("ann", 1, "Lowest benefit"),
            ("bob", 1, "Lowest benefit"),
            ("cat", 2, "Middle benefit"),
            ("dan", 3, "High Interactive"),
        ]
    )
    snapshot(
        [
            ("ann", 1, "Lowest benefit"),
            ("bob", 2, "Middle benefit"),
            ("cat", 1, "Middle benefit"),
            ("eve", 1, "Lowest benefit"),
        ]
    )
    changes = con.execute(
        "SELECT username, previous_version, previous_persona, current_version, current_persona, change "
        "FROM clusters.changes ORDER BY username"
    ).fetchall()
    assert changes == [
        ("bob", 2, "Lowest benefit", 3, "Middle benefit", "changed"),
        ("dan", 2, "High Interactive", 3, None, "dropped"),
        ("eve", 2, None, 3, "Lowest benefit", "new"),
    ]


def test_a_failure_in_the_middle_of_a_snapshot_write_leaves_no_partial_snapshot(con, clustering):
    write_snapshot(con, clustering)
    before = counts(con)
    # A real failure after the snapshot row and candidates are inserted: the assignments
    # break their table's key.
    broken = replace(clustering, assignments=pd.concat([clustering.assignments, clustering.assignments.head(1)]))
    with pytest.raises(duckdb.ConstraintException):
        write_snapshot(con, broken)
    assert counts(con) == before
    assert write_snapshot(con, clustering) == 2  # the version number was not burnt either
