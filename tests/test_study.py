"""The study's reference result, reproduced from its public cleaned cohort."""

from datetime import date

import pytest

from models.config import ClusteringConfig
from pipeline import jobs
from pipeline.settings import Settings
from support import STUDY_RANKING, study_path

# STUDY.md, "Reference result: complete linkage, t = 20": size, mean ER, mean active_rate, persona.
STUDY_TABLE = [
    (1, 23.3559, 35.6345, "Highest benefit"),
    (3, 2.4558, 38.5490, "Low Cost High benefit"),
    (7, 28.2070, 5.9585, "High Interactive"),
    (24, 3.8400, 15.2890, "Middle benefit"),
    (38, 13.4935, 2.1477, "Middle Interactive"),
    (856, 2.0270, 2.6828, "Lowest benefit"),
]
DAY = date(2020, 6, 1)


@pytest.fixture(scope="module")
def clustering(tmp_path_factory):
    """The study's cleaned cohort through the real pipeline: import, validate, features, recluster."""
    path = study_path("beauty_data_extend.csv")
    settings = Settings(warehouse=tmp_path_factory.mktemp("study") / "w.duckdb")
    imported = jobs.import_csv(settings, path, DAY)
    assert imported.validation.quarantined == 0 and not imported.validation.table_failures()
    return imported.features.summary, jobs.recluster(settings, ClusteringConfig()).stored


def test_all_929_rows_are_clustered(clustering):
    summary, result = clustering
    assert (summary.influencers, summary.clusterable) == (929, 929)
    assert result.n_influencers == 929


def test_defaults_reproduce_the_studys_table(clustering):
    _, result = clustering
    assert result.published == "hierarchical-complete-t20"
    profiles = result.profiles.sort_values("size")
    got = list(
        zip(profiles["size"], profiles["mean_er"], profiles["mean_active_rate"], profiles["persona"], strict=True)
    )
    assert [g[0] for g in got] == [s[0] for s in STUDY_TABLE]
    for (size, er, ar, persona), (_, want_er, want_ar, want_persona) in zip(got, STUDY_TABLE, strict=True):
        assert er == pytest.approx(want_er, abs=1e-4), size
        assert ar == pytest.approx(want_ar, abs=1e-4), size
        assert persona == want_persona
    assert result.profiles.sort_values("rank")["persona"].tolist() == STUDY_RANKING


def test_other_thresholds_and_kmeans_match_the_study(clustering):
    _, result = clustering
    candidates = result.candidates.set_index("candidate")
    assert candidates.loc["hierarchical-complete-t25", "n_clusters"] == 4
    assert candidates.loc["hierarchical-complete-t30", "n_clusters"] == 3
    assert candidates.loc["kmeans-k4", "silhouette"] == pytest.approx(0.586, abs=0.01)
    assert set(candidates.index) >= {f"kmeans-k{k}" for k in range(3, 9)} | {
        "kmedoids-k3",
        "kmedoids-k4",
        "kmedoids-k5",
    }
    assert result.elbow["k"].tolist() == list(range(1, 10))
    assert result.elbow["sse"].is_monotonic_decreasing


def test_a_rebase_reproduces_the_studys_table_in_a_warehouse_that_already_has_personas(tmp_path):
    """The README's reproduction on a warehouse in use (after `kic run`): with --rebase the study's
    rows are fitted afresh, not placed in the personas the warehouse had."""
    from pipeline.storage import connect
    from sandbox.synthetic import Population
    from support import cli, synthetic_crawl

    warehouse = tmp_path / "w.duckdb"
    with connect(warehouse) as con:
        synthetic_crawl(con, Population(300, seed=3), date(2026, 11, 24))
    for args in (["features"], ["recluster"]):
        assert cli(*args, "-w", warehouse).returncode == 0
    imported = cli("import-csv", study_path("beauty_data_extend.csv"), "--as-of", DAY.isoformat(), "-w", warehouse)
    assert imported.returncode == 0, imported.stderr
    result = cli("recluster", "--date", DAY.isoformat(), "--rebase", "-w", warehouse)
    assert result.returncode == 0, result.stderr
    with connect(warehouse, read_only=True) as con:
        rows = con.execute(
            "SELECT size, round(mean_er, 4), round(mean_active_rate, 4), persona FROM clusters.profiles "
            "WHERE version = 2 ORDER BY size"
        ).fetchall()
        frame = con.execute("SELECT frame_id, frame_why FROM clusters.snapshots WHERE version = 2").fetchone()
    assert [(size, persona) for size, _, _, persona in rows] == [(s[0], s[3]) for s in STUDY_TABLE]
    assert [r[1:3] for r in rows] == pytest.approx([s[1:3] for s in STUDY_TABLE], abs=1e-4)
    assert frame == (2, "made: a re-base was asked for")
