"""Persona frames: personas hold still unless the influencer moves (models/frames.py)."""

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest

from models.config import ClusteringConfig
from models.frames import ASSIGNED_BY, CROSSED, KEPT, PLACED, Frame, Space, Standing, keep_personas, population_shift
from pipeline import jobs
from pipeline.settings import Settings
from pipeline.storage import connect
from sandbox.synthetic import Population, study_engagement, study_shaped_counts
from support import (
    assert_every_move_is_explained_by_the_movers_numbers,
    cli,
    derive,
    personas_of,
    query,
    synthetic_crawl,
)

WEEK_1, WEEK_2 = date(2026, 6, 1), date(2026, 6, 8)
MARGIN = 0.25
# Three personas on the unscaled plane: a core, a high-ER one and a high-active_rate one.
CENTRES = {1: (2.0, 2.0), 2: (20.0, 2.0), 3: (2.0, 30.0)}
# Quick to fit, and the exact path's complete linkage cut at the study's threshold.
LIGHT = {"kmeans_k": [4], "kmedoids_k": [], "elbow_k": [], "silhouette_sample_size": 500}


def crafted_frame(shares=(0.8, 0.1, 0.1)) -> Frame:
    personas = pd.DataFrame(
        {
            "cluster": list(CENTRES),
            "persona_id": [11, 12, 13],
            "persona": ["Core", "High ER", "High active_rate"],
            "centre_er": [c[0] for c in CENTRES.values()],
            "centre_active_rate": [c[1] for c in CENTRES.values()],
            "share": list(shares),
        }
    )
    return Frame(1, personas, Space("none", np.zeros(2), np.ones(2)))


def standing(previous_clusters, previous_points) -> Standing:
    points = np.asarray(previous_points, dtype=np.float64)
    return Standing(crafted_frame(), 1, {}, np.asarray(previous_clusters), points[:, 0], points[:, 1])


def test_an_influencer_moves_only_past_the_margin_and_only_when_its_own_numbers_crossed():
    # Each row: the cluster it had and where it stood, where it stands now.
    cases = [
        (1, (2.1, 2.0), (10.5, 2.0), 1, KEPT),  # nearer its own centre
        (1, (2.1, 2.0), (11.5, 2.0), 1, KEPT),  # nearer the other's, but within the margin: hysteresis
        (1, (2.1, 2.0), (13.0, 2.0), 2, CROSSED),  # 11 / 7 = 1.57 times as far: past the margin
        (1, (14.0, 2.0), (14.1, 2.0), 1, KEPT),  # placed off its region by the fit, and did not move
        (2, (13.0, 2.0), (11.5, 2.0), 2, KEPT),  # back into the band between: stays where it went
        (0, (np.nan, np.nan), (11.5, 2.0), 2, PLACED),  # new: the persona of its region, no margin
        (3, (2.0, 29.0), (19.0, 4.0), 2, CROSSED),
    ]
    before = standing([c[0] for c in cases], [c[1] for c in cases])
    now = np.array([c[2] for c in cases])
    kept = keep_personas(before, now[:, 0], now[:, 1], MARGIN)
    assert kept.clusters.tolist() == [c[3] for c in cases]
    assert [ASSIGNED_BY[code] for code in kept.assigned_by] == [c[4] for c in cases]
    assert kept.distance_ratio[2] == pytest.approx(11 / 7)
    assert np.isnan(kept.distance_ratio[[0, 1, 3, 4, 5]]).all()


def test_noise_around_a_boundary_flips_almost_nobody():
    """Influencers spread across the core / high-ER boundary, each jittered by 1 %: a frame
    without hysteresis would flip those within 1 % of the boundary; with the margin, none near it."""
    rng = np.random.default_rng(3)
    er = rng.uniform(5.0, 17.0, 20_000)
    ar = rng.uniform(1.0, 3.0, 20_000)
    first = keep_personas(standing(np.zeros(20_000, dtype=int), np.full((20_000, 2), np.nan)), er, ar, MARGIN)
    week = Standing(crafted_frame(), 1, {}, first.clusters, er, ar)
    noisy = keep_personas(week, er * np.exp(rng.normal(0, 0.01, er.size)), ar, MARGIN)
    assert (first.assigned_by == ASSIGNED_BY.index(PLACED)).all()
    flipped = (noisy.clusters != first.clusters).mean()
    unmargined = np.abs(er - 11.0) < 0.01 * 11.0 * 2  # within two sd of the boundary
    assert unmargined.mean() > 0.02  # so the plain rule would flip over 1 %
    assert flipped < 0.002, flipped


def test_the_population_shift_is_zero_for_the_same_shares_and_large_for_a_new_shape():
    frame = crafted_frame((0.8, 0.1, 0.1))
    same = np.repeat([1, 2, 3], [800, 100, 100])
    assert population_shift(frame, same) == pytest.approx(0.0, abs=1e-12)
    slightly = np.repeat([1, 2, 3], [790, 105, 105])
    assert population_shift(frame, slightly) < 0.01
    reshaped = np.repeat([1, 2, 3], [400, 300, 300])
    assert population_shift(frame, reshaped) > 0.25
    emptied = np.repeat([1, 2], [800, 200])  # a persona with nobody left: floored, not infinite
    assert np.isfinite(population_shift(frame, emptied)) and population_shift(frame, emptied) > 0.25


# --- through the warehouse ------------------------------------------------------------------


def base_numbers(n: int, seed: int) -> pd.DataFrame:
    return pd.DataFrame(study_shaped_counts(n, seed))


def with_features(base: pd.DataFrame) -> pd.DataFrame:
    return base.assign(**study_engagement(base["follower"], base["likes"], base["comments"]))


def store_features(warehouse, day: date, rows: pd.DataFrame) -> None:
    frame = rows.assign(i=np.arange(len(rows)))  # noqa: F841 (read by DuckDB by name)
    with connect(warehouse) as con:
        con.execute(
            """
            INSERT INTO features.influencer_features BY NAME
            SELECT 'user_' || lpad(i::VARCHAR, 6, '0') AS username, ?::DATE AS feature_date, 0 AS crawl_id,
                   'benchmark' AS source, round(follower)::BIGINT AS follower, true AS open_account,
                   false AS official_account, er, active_rate, true AS is_clusterable, now() AS computed_at,
                   ?::DATE AS observed_on
            FROM frame
            """,
            [day, day],
        ).fetchall()


@pytest.fixture(scope="module")
def two_weeks(tmp_path_factory):
    """Week 1 of 1,500 influencers of the study's shape; week 2 with 1 % noise on followers, likes
    and comments, and 30 core influencers moved to very high ER and active_rate."""
    warehouse = tmp_path_factory.mktemp("frames") / "w.duckdb"
    settings = Settings(warehouse=warehouse, clustering=ClusteringConfig(**LIGHT))
    base = base_numbers(1_500, seed=5)
    store_features(warehouse, WEEK_1, with_features(base))
    first = jobs.recluster(settings, feature_date=WEEK_1)
    rng = np.random.default_rng(9)
    week_2 = with_features(base * np.exp(rng.normal(0, 0.01, (len(base), 3))))
    core = personas_of(warehouse, 1).persona_id.value_counts().idxmax()
    in_core = np.flatnonzero(personas_of(warehouse, 1).persona_id.to_numpy() == core)
    movers = rng.choice(in_core, 30, replace=False)
    week_2.loc[movers, "er"] = rng.uniform(22, 26, 30)
    week_2.loc[movers, "active_rate"] = rng.uniform(33, 38, 30)
    store_features(warehouse, WEEK_2, week_2)
    second = jobs.recluster(settings, feature_date=WEEK_2)
    return settings, first, second, movers


def test_the_first_snapshot_makes_the_frame_from_its_fit(two_weeks):
    settings, *_ = two_weeks
    snapshot = query(settings.warehouse, "SELECT * FROM clusters.snapshots WHERE version = 1").iloc[0]
    assert snapshot.frame_made and snapshot.frame_id == 1 and "no persona frame yet" in snapshot.frame_why
    assert (personas_of(settings.warehouse, 1).assigned_by == "fit").all()
    frame = query(settings.warehouse, "FROM clusters.frame_personas WHERE frame_id = 1 ORDER BY cluster")
    profiles = query(settings.warehouse, "FROM clusters.profiles WHERE version = 1 ORDER BY cluster")
    assert frame.persona_id.tolist() == profiles.persona_id.tolist()
    assert frame.centre_er.tolist() == pytest.approx(profiles.mean_er.tolist())
    assert frame.share.sum() == pytest.approx(1.0)


def test_noise_keeps_the_frame_and_moves_at_most_half_a_percent(two_weeks):
    settings, _, second, movers = two_weeks
    assert not second.stored.frame.made and second.stored.frame.frame_id == 1
    assert second.stored.frame.why.startswith("kept frame 1")
    a, b = personas_of(settings.warehouse, 1), personas_of(settings.warehouse, 2)
    still = np.ones(len(a), dtype=bool)
    still[movers] = False
    assert (a.persona_id != b.persona_id)[still].mean() <= 0.005
    names = query(settings.warehouse, "SELECT version, persona_id, persona FROM clusters.profiles ORDER BY ALL")
    assert names[names.version == 1][["persona_id", "persona"]].values.tolist() == (
        names[names.version == 2][["persona_id", "persona"]].values.tolist()
    )
    events = query(
        settings.warehouse, "SELECT DISTINCT event, matched_by FROM clusters.persona_events WHERE version = 2"
    )
    assert events.values.tolist() == [["continued", "frame"]]
    listed = json.loads(cli("snapshots", "-w", settings.warehouse, "-f", "json").stdout)
    assert [(r["frame_id"], r["frame"]) for r in listed[:2]] == [(1, "made"), (1, "kept")]


def test_influencers_that_really_move_follow_their_numbers_and_each_move_says_why(two_weeks):
    settings, _, second, movers = two_weeks
    b = personas_of(settings.warehouse, 2)
    frame = query(settings.warehouse, "FROM clusters.frame_personas WHERE frame_id = 1")
    nearest = frame.persona_id.to_numpy()[
        np.hypot(
            b.er.to_numpy()[movers, None] - frame.centre_er.to_numpy()[None, :],
            b.active_rate.to_numpy()[movers, None] - frame.centre_active_rate.to_numpy()[None, :],
        ).argmin(axis=1)
    ]
    assert (b.persona_id.to_numpy()[movers] == nearest).mean() >= 0.9
    moved = assert_every_move_is_explained_by_the_movers_numbers(settings.warehouse, 1, 2, MARGIN)
    assert moved >= 27
    assert second.change_counts.get("moved") == moved
    table = cli("changes", "-w", settings.warehouse)
    assert table.returncode == 0 and "moved" in table.stdout and "crossed from" in table.stdout


def test_a_rebase_redraws_the_frame_from_the_fit_and_keeps_ids_where_members_match(two_weeks, tmp_path, monkeypatch):
    settings, *_ = two_weeks
    warehouse = tmp_path / "w.duckdb"
    warehouse.write_bytes(settings.warehouse.read_bytes())
    for key, value in LIGHT.items():
        monkeypatch.setenv(f"KIC_CLUSTERING__{key.upper()}", str(value))
    result = cli("recluster", "--rebase", "--date", str(WEEK_2), "-w", warehouse)
    assert result.returncode == 0, result.stderr
    assert "personas made: a re-base was asked for" in result.stdout
    snapshot = query(warehouse, "SELECT * FROM clusters.snapshots ORDER BY version DESC LIMIT 1").iloc[0]
    assert snapshot.version == 3 and snapshot.frame_made and snapshot.frame_id == 3
    events = query(warehouse, "SELECT event, matched_by FROM clusters.persona_events WHERE version = 3")
    assert "members" in set(events.matched_by)  # the core, at least, carries its id over
    changes = query(warehouse, "SELECT DISTINCT change FROM clusters.persona_changes(2, 3)")
    assert set(changes.change) <= {"reframed", "renamed"}


def test_a_population_that_changed_shape_remakes_the_frame(two_weeks, tmp_path):
    settings, *_ = two_weeks
    warehouse = tmp_path / "w.duckdb"
    warehouse.write_bytes(settings.warehouse.read_bytes())
    reshaped = with_features(base_numbers(1_500, seed=5))
    rng = np.random.default_rng(1)
    half = rng.choice(len(reshaped), len(reshaped) // 2, replace=False)
    reshaped.loc[half, "er"] = rng.uniform(12, 16, len(half))  # half the core now engages like Middle Interactive
    day = date(2026, 6, 15)
    store_features(warehouse, day, reshaped)
    result = jobs.recluster(Settings(warehouse=warehouse, clustering=ClusteringConfig(**LIGHT)), feature_date=day)
    frame = result.stored.frame
    assert frame.made and frame.population_shift >= 0.25 and "the population shifted" in frame.why
    assert set(query(warehouse, "SELECT DISTINCT change FROM clusters.changes").change) <= {
        "reframed",
        "renamed",
    }


def test_a_change_of_the_settings_the_frame_was_made_with_remakes_it_but_not_of_how_it_is_kept(two_weeks, tmp_path):
    settings, *_ = two_weeks
    warehouse = tmp_path / "w.duckdb"
    warehouse.write_bytes(settings.warehouse.read_bytes())
    scaled = Settings(warehouse=warehouse, clustering=ClusteringConfig(**LIGHT, scaling="standard"))
    wider = Settings(warehouse=warehouse, clustering=ClusteringConfig(**LIGHT, persona_margin=0.5))
    kept = jobs.recluster(wider, feature_date=WEEK_2, force=True).stored.frame
    assert not kept.made and kept.frame_id == 1
    frame = jobs.recluster(scaled, feature_date=WEEK_2).stored.frame
    assert frame.made and frame.why == "made: the clustering settings changed (scaling)"
    stored = query(warehouse, "SELECT * FROM clusters.frames WHERE frame_id = 4").iloc[0]
    assert stored.scaling == "standard" and stored.space_scale[0] != 1.0


def test_export_takes_a_base_name_a_full_name_or_an_id(two_weeks, tmp_path):
    settings, *_ = two_weeks
    profiles = query(settings.warehouse, "SELECT persona_id, persona, size FROM clusters.profiles WHERE version = 2")
    core = profiles.sort_values("size").iloc[-1]
    base = core.persona.split(" · ")[0]
    same_base = profiles[profiles.persona.str.split(" · ").str[0] == base]
    for wanted, expected in ((core.persona, core["size"]), (str(core.persona_id), core["size"])):
        out = tmp_path / f"{wanted}.csv".replace(" ", "_")
        assert cli("export", "--persona", wanted, "-o", out, "-w", settings.warehouse).returncode == 0
        assert len(pd.read_csv(out)) == expected
    out = tmp_path / "base.csv"
    assert cli("export", "--persona", base.lower(), "-o", out, "-w", settings.warehouse).returncode == 0
    assert len(pd.read_csv(out)) == same_base["size"].sum()
    refused = cli("export", "--persona", "Nobody", "-o", tmp_path / "x.csv", "-w", settings.warehouse)
    assert refused.returncode != 0 and "no persona 'Nobody'" in refused.stderr and "(id " in refused.stderr


@pytest.mark.e2e  # four weeks of 1,000 sandbox influencers, reclustered with the default grid
def test_the_sandboxs_weekly_moves_are_each_explained_by_the_movers_own_numbers(tmp_path):
    """The sandbox's influencers drift over weeks and some change behaviour for good: the weekly
    snapshots keep their frame, and each influencer that moves does so by its own numbers."""
    warehouse = tmp_path / "w.duckdb"
    population = Population(1_000, seed=20200601)
    weeks = [date(2026, 11, 3), date(2026, 11, 10), date(2026, 11, 17), date(2026, 11, 24)]
    with connect(warehouse) as con:
        for day in weeks:
            synthetic_crawl(con, population, day)
            derive(con, day)
    results = [jobs.recluster(Settings(warehouse=warehouse), feature_date=day) for day in weeks]
    assert [r.stored.frame.made for r in results] == [True, False, False, False]
    margin = Settings().clustering.persona_margin
    moved = [assert_every_move_is_explained_by_the_movers_numbers(warehouse, v - 1, v, margin) for v in (2, 3, 4)]
    assert sum(moved) > 0  # the sandbox's own movement shows
    assert [r.change_counts.get("moved", 0) for r in results[1:]] == moved


def test_the_report_of_a_kept_snapshot_says_its_personas_were_kept_and_what_the_fit_proposed(two_weeks, tmp_path):
    settings, *_ = two_weeks
    page = tmp_path / "kept.html"
    assert cli("report", "2", "-o", page, "-w", settings.warehouse).returncode == 0
    text = page.read_text(encoding="utf-8")
    assert "personas kept frame 1: the population shift (PSI" in text and "(the week&#39;s fit: " in text
