"""What keeps the weekly recluster small at 10^6-10^7 influencers: behaviour, not timings
(those are benchmarks/recluster_scale.py's)."""

from datetime import date

import numpy as np
import pandas as pd
import pytest
from scipy.cluster.hierarchy import linkage
from scipy.spatial.distance import pdist

from models.candidates import compact, within_cluster_sse
from models.hierarchical import build_tree, grid_cells, linkage_in_place
from pipeline.steps import snapshot_duckdb_memory
from transforms.features import clusterable_fingerprint

DAY = date(2026, 6, 1)


def test_the_linkage_works_on_the_matrix_it_is_given_and_merges_as_scipy():
    X = np.random.default_rng(3).normal(0, 5, (300, 2))
    condensed = pdist(X)
    merged = linkage_in_place(condensed, "complete")
    assert np.allclose(merged, linkage(X, "complete"))
    assert not np.array_equal(condensed, pdist(X))  # overwritten: no second copy was made
    for wrong in (pdist(X).astype(np.float32), pdist(X)[:-1]):
        with pytest.raises(ValueError):
            linkage_in_place(wrong, "complete")


def test_grid_cells_number_every_point_and_keep_within_the_budget():
    X = np.random.default_rng(4).lognormal(0, 1, (20_000, 2))
    leaf, side = grid_cells(X, 700)
    assert leaf.dtype == np.int32 and len(leaf) == len(X)
    assert np.array_equal(np.unique(leaf), np.arange(leaf.max() + 1)) and leaf.max() + 1 <= 700
    # Points of one cell lie within one square of that side.
    for cell in (0, int(leaf.max())):
        members = X[leaf == cell]
        assert (members.max(axis=0) - members.min(axis=0)).max() <= side
    finer, finer_side = grid_cells(X, 2_000)
    assert finer_side < side and 700 < finer.max() + 1 <= 2_000


def test_labels_take_the_smallest_integer_type_that_holds_them():
    assert compact(np.array([0, 5, 2], dtype=np.int64)).dtype == np.int16
    wide = compact(np.array([0, 40_000], dtype=np.int64))
    assert wide.dtype == np.int32 and wide.tolist() == [0, 40_000]
    X = np.random.default_rng(5).normal(0, 5, (6_000, 2))
    tree = build_tree(X, "complete", max_points=500)
    assert tree.cut(20.0).dtype == np.int32 and tree.leaf_of_point.dtype == np.int32


def test_within_cluster_sse_counts_labels_with_gaps():
    X = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 10.0], [10.0, 14.0]])
    assert within_cluster_sse(X, np.array([0, 0, 3, 3], dtype=np.int16)) == pytest.approx(2.0 + 8.0)


def test_snapshot_writes_get_duckdb_memory_for_the_key_index_as_the_cohort_grows():
    megabytes = {n: int(snapshot_duckdb_memory(n).removesuffix("MB")) for n in (1_000, 10**6, 10**7)}
    assert megabytes[1_000] == megabytes[10**6] == 256  # DuckDB spills past it
    assert megabytes[10**7] * 2**20 >= 150 * 10**7  # the index measured ~150 bytes an influencer


def features(con, rows: list[tuple[str, float, float, bool]]) -> str:
    """Replace the features of DAY by these (username, er, active_rate, clusterable); their fingerprint."""
    frame = pd.DataFrame(rows, columns=["username", "er", "active_rate", "is_clusterable"])  # noqa: F841
    con.execute("DELETE FROM features.influencer_features").fetchall()
    con.execute(
        """
        INSERT INTO features.influencer_features BY NAME
        SELECT username, ?::DATE AS feature_date, 0 AS crawl_id, 'test' AS source, 100 AS follower,
               true AS open_account, false AS official_account, er, active_rate, is_clusterable,
               CASE WHEN NOT is_clusterable THEN 'private' END AS not_clusterable_reason, now() AS computed_at
        FROM frame
        """,
        [DAY],
    ).fetchall()
    return clusterable_fingerprint(con, DAY)


def test_the_data_fingerprint_follows_the_clusterable_values_not_their_order(con):
    rows = [("a", 1.0, 10.0, True), ("b", 2.0, 20.0, True), ("c", 3.0, 30.0, False)]
    first = features(con, rows)
    assert len(first) == 64 and clusterable_fingerprint(con, DAY) == first  # the same on a rerun
    assert features(con, rows[::-1]) == first  # stored in another order
    assert features(con, [*rows[:2], ("c", 9.0, 30.0, False)]) == first  # not clusterable: not clustered
    changed = [
        [("a", 1.0, 10.0, True), ("b", 2.0, 20.5, True), rows[2]],  # one value
        [("a", 2.0, 10.0, True), ("b", 1.0, 20.0, True), rows[2]],  # values swapped between influencers
        [("a", 1.0, 10.0, True), ("d", 2.0, 20.0, True), rows[2]],  # another influencer
        [rows[0], rows[2]],  # one fewer
    ]
    assert len({first, *(features(con, r) for r in changed)}) == 1 + len(changed)
