"""The study's reference result, reproduced from its public cleaned cohort."""

from datetime import date

import pytest

from conftest import STUDY_RANKING, study_path
from models.config import ClusteringConfig
from pipeline import jobs
from pipeline.settings import Settings

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
    return imported.features.summary, jobs.recluster(settings, ClusteringConfig()).clustering


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
