import itertools
from datetime import date

import numpy as np
import pandas as pd
import pytest

from models.config import ClusteringConfig
from models.personas import LEVELS, PERSONAS, levels, name_personas, robust_scale
from models.recluster import cluster_profiles, fit_candidates, recluster
from sandbox.synthetic import study_shaped_cohort
from support import STUDY_RANKING, Cohort, study_path


def level(value: float, cohort_median: float, cohort_spread: float) -> str:
    return levels([value], cohort_median, cohort_spread)[0]


def test_levels_are_robust_z_scores_of_the_cluster_mean():
    assert level(10 + 3.49 * 2, 10, 2) == "low"
    assert level(10 + 3.5 * 2, 10, 2) == "middle"
    assert level(10 + 11.99 * 2, 10, 2) == "middle"
    assert level(10 + 12.0 * 2, 10, 2) == "high"
    assert level(3, 3, 0) == "low"
    # Many at once, as name_personas places a snapshot's clusters: the same thresholds.
    z = np.array([-1.0, 3.49, 3.5, 11.99, 12.0, 40.0])
    assert levels(10 + z * 2, 10, 2).tolist() == ["low", "low", "middle", "middle", "high", "high"]
    median, spread = robust_scale(np.array([1.0, 2.0, 3.0, 4.0, 1000.0]))
    assert median == 3.0 and spread == pytest.approx(1.4826)  # the outlier moves neither
    assert robust_scale(np.array([0.0] * 6 + [1.0] * 4)) == (0.0, pytest.approx(1.2533 * 0.4))  # MAD 0: mean AD


def test_every_level_pair_has_its_own_persona():
    assert set(PERSONAS) == set(itertools.product(LEVELS, LEVELS))
    assert len(set(PERSONAS.values())) == 9


def test_rank_follows_the_studys_order_and_places_the_other_three():
    cohort = pd.DataFrame({"er": [0.0, 1.0, 2.0] * 50, "active_rate": [0.0, 1.0, 2.0] * 50})  # median 1, MAD 1
    value = {"low": 1.0, "middle": 1.0 + 5 * 1.4826, "high": 1.0 + 15 * 1.4826}
    profiles = pd.DataFrame(
        [
            {"cluster": i, "mean_er": value[e], "mean_active_rate": value[a], "median_follower": 5000.0}
            for i, (e, a) in enumerate(itertools.product(LEVELS, LEVELS))
        ]
    )
    named = name_personas(profiles, cohort).sort_values("rank")
    order = named["persona"].tolist()
    assert [p for p in order if p in STUDY_RANKING] == STUDY_RANKING
    assert named["rank"].tolist() == list(range(1, 10))
    assert order.index("High benefit") < order.index("Low Cost High benefit")
    assert order.index("Balanced Middle") < order.index("High Interactive")


def test_clusters_on_the_same_levels_are_told_apart_by_tier_then_by_an_ordinal_word():
    cohort = pd.DataFrame({"er": [1.0, 2.0, 3.0] * 10, "active_rate": [1.0, 2.0, 3.0] * 10})
    profiles = pd.DataFrame(
        {
            "cluster": [1, 2, 3, 4],
            "mean_er": [2.0, 2.0, 2.5, 2.0],
            "mean_active_rate": [1.5, 2.5, 2.0, 1.0],
            "median_follower": [5_000.0, 50_000.0, 60_000.0, 2_000_000.0],
        }
    )
    named = name_personas(profiles, cohort)
    assert named["persona"].tolist() == [
        "Lowest benefit · nano",
        "Lowest benefit · micro · first",  # the higher mean active_rate of the two
        "Lowest benefit · micro · second",
        "Lowest benefit · mega",
    ]
    assert not named["persona"].str.contains(r"\d").any()  # words only: no number that moves with the data
    assert named["follower_tier"].tolist() == ["nano", "micro", "micro", "mega"]
    assert named["rank"].tolist() == [3, 1, 2, 4]  # equal levels: by mean active_rate
    alone = name_personas(profiles.iloc[[0]], cohort)
    assert alone["persona"].tolist() == ["Lowest benefit"]  # alone on its levels: the plain name


def test_a_few_outliers_no_longer_hide_a_high_engagement_cluster():
    """A crafted cohort: a core at 2 % ER, a cluster of 40 at 10 %, and five accounts at 500 %.
    The outliers inflate the standard deviation (to about 38) so that the sd rule the product
    used put the 10 % cluster at z 0.1: "Lowest benefit", like the core. The robust rule does not."""
    rng = np.random.default_rng(7)
    core = rng.normal(2.0, 1.2, 900).clip(0.1)
    er = np.concatenate([core, rng.normal(10.0, 0.5, 40), np.full(5, 500.0)])
    active_rate = rng.normal(2.0, 0.5, len(er)).clip(0.1)
    labels = np.repeat([0, 1, 2], [900, 40, 5])
    profiles = pd.DataFrame(
        {
            "cluster": [1, 2, 3],
            "mean_er": [er[labels == c].mean() for c in range(3)],
            "mean_active_rate": [active_rate[labels == c].mean() for c in range(3)],
            "median_follower": [20_000.0] * 3,
        }
    )
    cohort = pd.DataFrame({"er": er, "active_rate": active_rate})
    sd_z = (profiles["mean_er"][1] - er.mean()) / er.std(ddof=1)
    assert sd_z < 2  # the old rule's "low": it named the 10 % cluster "Lowest benefit"
    named = name_personas(profiles, cohort)
    assert named["er_level"].tolist() == ["low", "middle", "high"]
    assert named["persona"].tolist() == ["Lowest benefit", "Middle Interactive", "High Interactive"]


DAY = date(2026, 11, 1)
# Every candidate kind whose names the tests check, without PAM (slow, and named the same way).
LIGHT_GRID = {"kmeans_k": [3, 4, 5, 6, 7, 8], "kmeans_n_init": 2, "kmedoids_k": [], "elbow_k": []}


# Every ER / active_rate column of the features and clusters layers, tables and views alike,
# with its comment: the catalogue says which are percentages.
PERCENT_COLUMNS = """
SELECT schema_name || '.' || table_name || '.' || column_name AS name, comment
FROM duckdb_columns()
WHERE database_name = current_database() AND schema_name IN ('features', 'clusters')
  AND regexp_matches(column_name, '^((mean|median)_)?(er|active_rate)$')
ORDER BY name
"""


def test_every_er_and_active_rate_column_says_it_is_a_percentage(tmp_path):
    from pipeline.storage import connect

    with connect(tmp_path / "w.duckdb") as con:
        columns = con.execute(PERCENT_COLUMNS).fetchall()
    assert {"clusters.latest_profiles.mean_er", "features.influencer_features.er"} <= {name for name, _ in columns}
    assert [name for name, comment in columns if "percent" not in (comment or "")] == []


def persona_table(n: int, seed: int, **settings):
    return recluster(Cohort(**study_shaped_cohort(n, seed)), ClusteringConfig(**settings), DAY)


def assert_unique_and_monotone(profiles: pd.DataFrame) -> None:
    """Every name its own; on each axis, a cluster on a higher level never has a lower mean."""
    assert profiles["persona"].is_unique, profiles[["persona", "size", "mean_er", "mean_active_rate"]]
    for axis, mean in (("er_level", "mean_er"), ("active_rate_level", "mean_active_rate")):
        level_of = profiles[axis].map(LEVELS.index).to_numpy()
        means = profiles[mean].to_numpy()
        named_higher = level_of[:, None] > level_of[None, :]  # clusters x clusters: a handful
        assert (means[:, None] >= means[None, :])[named_higher].all(), (axis, profiles)


def assert_every_candidate_named_well(features: Cohort, cfg: ClusteringConfig) -> int:
    """Name the clusters of every candidate (not only the published one); return how many."""
    X = np.column_stack([features.er, features.active_rate])
    results, _, _ = fit_candidates(X, cfg)
    for candidate in results:
        profiles, _ = cluster_profiles(features, candidate.labels)
        assert_unique_and_monotone(profiles)
    return len(results)


@pytest.mark.parametrize("n, seed", [(1_000, 1), (1_000, 2), (3_000, 3), (5_000, 17)])
def test_every_candidates_names_are_unique_and_monotone_on_generated_cohorts(n, seed):
    cohort = Cohort(**study_shaped_cohort(n, seed))
    assert assert_every_candidate_named_well(cohort, ClusteringConfig(**LIGHT_GRID)) == 9


def test_every_candidates_names_are_unique_and_monotone_on_the_study_data():
    """The study's cleaned cohort, its own ER and active_rate columns (STUDY.md: the pipeline's
    features reproduce them to four decimals); tests/test_study.py checks the published table."""
    study = pd.read_csv(study_path("beauty_data_extend.csv"))
    features = Cohort(*(study[column].to_numpy(np.float64) for column in ("ER", "active_rate", "follower")))
    assert assert_every_candidate_named_well(features, ClusteringConfig(**LIGHT_GRID)) == 9


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.e2e  # the default grid, PAM included: about 6 s each
def test_the_published_names_are_unique_and_monotone_with_the_default_grid(seed):
    result = persona_table(1_000, seed)
    assert 4 <= result.n_clusters <= 8
    assert_unique_and_monotone(result.profiles)


def test_the_persona_count_stays_in_the_default_range_on_5000_influencers():
    """On this 5,000-influencer cohort the study's cut (t = 20) gives 9 clusters, above the
    default max_personas of 8: the rule publishes the same algorithm's nearest cut inside
    (t = 25: 6), and the snapshot's parameters say why."""
    result = persona_table(5_000, 17, kmeans_k=[4], kmedoids_k=[], elbow_k=[])
    counts = dict(zip(result.candidates["candidate"], result.candidates["n_clusters"], strict=True))
    assert counts["hierarchical-complete-t20"] == 9
    assert result.published == "hierarchical-complete-t25" and 4 <= result.n_clusters <= 8
    assert result.candidates.set_index("candidate").loc["hierarchical-complete-t25", "is_published"]
    why = result.parameters["published_because"]
    assert "hierarchical-complete-t20 gives 9 personas, outside 4–8" in why and "same algorithm's nearest" in why
    assert_unique_and_monotone(result.profiles)


@pytest.mark.e2e  # 5,000 influencers, the default grid on the scalable path: about 9 s
def test_the_persona_count_stays_in_a_narrower_range_on_a_bigger_cohort_and_the_snapshot_says_why():
    """On 5,000 influencers the study's cut (t = 20) gives 8 personas; a range of 4-6 makes the
    rule publish the same algorithm's nearest cut inside it (t = 25: 5), and say so."""
    bounded = persona_table(5_000, 1, max_personas=6)
    counts = dict(zip(bounded.candidates["candidate"], bounded.candidates["n_clusters"], strict=True))
    assert counts["hierarchical-complete-t20"] == 8
    assert bounded.published == "hierarchical-complete-t25" and 4 <= bounded.n_clusters <= 6
    assert "hierarchical-complete-t20 gives 8 personas, outside 4–6" in bounded.parameters["published_because"]
    assert_unique_and_monotone(bounded.profiles)
