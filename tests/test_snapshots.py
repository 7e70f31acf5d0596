from dataclasses import replace
from datetime import date

import duckdb
import pandas as pd
import pytest

from models.config import ClusteringConfig
from models.recluster import recluster
from sandbox.synthetic import Population
from support import derive, store_new_snapshot, synthetic_crawl
from transforms.features import load_clusterable
from warehouse.errors import KicError

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
    first = store_new_snapshot(con, clustering)
    before = dump(con, first)
    later = date(2026, 5, 8)
    synthetic_crawl(con, Population(200, seed=11), later)
    derive(con, later)
    second = store_new_snapshot(con, recluster(load_clusterable(con, later), CFG, later))
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
    version = store_new_snapshot(con, clustering)
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


def crafted_snapshot(con, version, rows):
    """A snapshot row and its assignments, written directly (what store_snapshot stores)."""
    con.execute(
        "INSERT INTO clusters.snapshots (version, created_at, feature_date, n_influencers, data_fingerprint, "
        "code_version, parameters, published_candidate, n_clusters) "
        "VALUES (?, now(), DATE '2026-05-01', ?, 'x', 'test', '{}', 'kmeans-k3', 1)",
        [version, len(rows)],
    )
    for username, cluster, persona in rows:
        con.execute(
            "INSERT INTO clusters.assignments (version, username, cluster, persona, er, active_rate) "
            "VALUES (?, ?, ?, ?, 1, 1)",
            [version, username, cluster, persona],
        )


def test_changes_lists_influencers_whose_persona_differs_between_the_two_latest(con):
    crafted_snapshot(con, 1, [("ann", 1, "Lowest benefit"), ("bob", 1, "Lowest benefit")])  # too old to matter
    assert con.execute("SELECT count(*) FROM clusters.changes").fetchall() == [(0,)]
    crafted_snapshot(
        con,
        2,
        [
            ("ann", 1, "Lowest benefit"),
            ("bob", 1, "Lowest benefit"),
            ("cat", 2, "Middle benefit"),
            ("dan", 3, "High Interactive"),
        ],
    )
    crafted_snapshot(
        con,
        3,
        [
            ("ann", 1, "Lowest benefit"),
            ("bob", 2, "Middle benefit"),
            ("cat", 1, "Middle benefit"),
            ("eve", 1, "Lowest benefit"),
        ],
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


def test_assignments_are_joined_back_to_the_influencers_by_their_place_in_the_clustered_order(con, clustering):
    version = store_new_snapshot(con, clustering)
    stored = con.execute(
        "SELECT a.username, a.er, a.cluster, a.persona, p.persona FROM clusters.assignments a "
        "JOIN clusters.profiles p USING (version, cluster) WHERE version = ? ORDER BY a.username",
        [version],
    ).fetchall()
    features = con.execute(
        "SELECT username, er FROM features.clusterable WHERE feature_date = ? ORDER BY row_index",
        [clustering.feature_date],
    ).fetchall()
    assert [(u, er) for u, er, *_ in stored] == features
    assert [c for _, _, c, _, _ in stored] == clustering.clusters.tolist()
    assert all(persona == profile_persona for *_, persona, profile_persona in stored)


def test_a_snapshot_of_features_that_changed_meanwhile_is_refused(con, clustering):
    con.execute(
        "UPDATE features.influencer_features SET er = er + 1 WHERE username = "
        "(SELECT min(username) FROM features.clusterable)"
    )
    before = counts(con)
    with pytest.raises(KicError, match="changed while they were being clustered"):
        store_new_snapshot(con, clustering)
    assert counts(con) == before


def test_a_failure_in_the_middle_of_a_snapshot_write_leaves_no_partial_snapshot(con, clustering):
    store_new_snapshot(con, clustering)
    before = counts(con)
    # A real failure after the snapshot row and candidates are inserted: the profiles break
    # their table's key.
    broken = replace(clustering, profiles=pd.concat([clustering.profiles, clustering.profiles.head(1)]))
    with pytest.raises(duckdb.ConstraintException):
        store_new_snapshot(con, broken)
    assert counts(con) == before
    assert store_new_snapshot(con, clustering) == 2  # the version number was not burnt either
