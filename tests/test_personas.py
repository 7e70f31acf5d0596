import itertools

import pandas as pd

from conftest import STUDY_RANKING
from models.personas import LEVELS, PERSONAS, level, name_personas


def test_levels_are_cohort_standard_deviations_above_the_mean():
    assert level(10 + 1.99 * 2, 10, 2) == "low"
    assert level(10 + 2.0 * 2, 10, 2) == "middle"
    assert level(10 + 4.99 * 2, 10, 2) == "middle"
    assert level(10 + 5.0 * 2, 10, 2) == "high"
    assert level(3, 3, 0) == "low"


def test_every_level_pair_has_its_own_persona():
    assert set(PERSONAS) == set(itertools.product(LEVELS, LEVELS))
    assert len(set(PERSONAS.values())) == 9


def test_rank_follows_the_studys_order_and_places_the_other_three():
    cohort = pd.DataFrame({"er": [0.0, 1.0] * 50, "active_rate": [0.0, 1.0] * 50})  # mean .5, sd ~.5
    value = {"low": 0.5, "middle": 0.5 + 3 * 0.5025, "high": 0.5 + 6 * 0.5025}
    profiles = pd.DataFrame(
        [
            {"cluster": i, "mean_er": value[e], "mean_active_rate": value[a]}
            for i, (e, a) in enumerate(itertools.product(LEVELS, LEVELS))
        ]
    )
    named = name_personas(profiles, cohort).sort_values("rank")
    order = named["persona"].tolist()
    assert [p for p in order if p in STUDY_RANKING] == STUDY_RANKING
    assert named["rank"].tolist() == list(range(1, 10))
    assert order.index("High benefit") < order.index("Low Cost High benefit")
    assert order.index("Balanced Middle") < order.index("High Interactive")


def test_equal_personas_rank_by_mean_active_rate():
    cohort = pd.DataFrame({"er": [1.0, 2.0, 3.0] * 10, "active_rate": [1.0, 2.0, 3.0] * 10})
    profiles = pd.DataFrame({"cluster": [1, 2], "mean_er": [2.0, 2.0], "mean_active_rate": [1.5, 2.5]})
    named = name_personas(profiles, cohort)
    assert named["persona"].tolist() == ["Lowest benefit"] * 2
    assert named["rank"].tolist() == [2, 1]


def test_follower_tiers_agree_between_python_and_the_warehouse_macro(tmp_path):
    from models.personas import FOLLOWER_TIERS, follower_tier
    from warehouse.db import connect

    bounds = [bound for _, bound in FOLLOWER_TIERS if bound]
    counts = sorted({0, *bounds, *(b - 1 for b in bounds), 5_000_000, 10**9})
    with connect(tmp_path / "w.duckdb") as con:
        rows = con.execute("SELECT follower_tier(c) FROM unnest(?::BIGINT[]) t(c)", [counts]).fetchall()
    in_sql = [row[0] for row in rows]
    in_python = list(follower_tier(counts))
    assert in_python == in_sql
    assert in_python[:3] == ["nano", "nano", "micro"]  # 0, 9,999, 10,000
    assert in_python[-1] == "mega" and follower_tier([float("nan")])[0] is None
