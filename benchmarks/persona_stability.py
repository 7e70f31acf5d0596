"""Persona stability: who changes persona when only noise changed, and who follows a real move.

    uv run python benchmarks/persona_stability.py [--sizes 929 5000 100000 1000000] [--noise 0.001 0.01 0.05]

For each size, a warehouse gets week 1: influencers with the study's shape, as base numbers
(followers, mean image likes and comments): the study's 929 rows themselves at 929 (skipped
when ../shared is missing), the sandbox population's distribution beyond
(sandbox.synthetic.study_shaped_cohort). `kic recluster`'s job makes the first snapshot and its
persona frame. Then, for each noise level, a copy of that warehouse gets week 2: every
follower, like and comment count times an independent exp(N(0, noise)), ER and active_rate
recomputed by the study's formulas; and 1 % of the largest persona's members ("movers") moved
far: to near (within 10 %) the centre of another persona of the frame, drawn at random. The
job runs again (the product's path: read the standing frame, fit, keep or remake, store).

Printed per size and noise: the share of the other influencers whose persona id changed
(target: at most 0.5 % at 1 % noise), whether the number and names of the personas changed,
whether the frame was kept, the share of movers in the persona of the region they moved to
(the frame persona whose centre is nearest; target at least 90 %), and the week-2 job's wall
time and peak RSS.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from meter import MIB, STUDY_FILE, Meter, run_process  # this folder is on the path when the script runs
from recluster_scale import fill as fill_features

from pipeline import jobs
from pipeline.settings import Settings
from pipeline.storage import connect
from sandbox.synthetic import study_engagement, study_shaped_counts

WEEK_1, WEEK_2 = date(2026, 6, 1), date(2026, 6, 8)
MOVERS_SHARE = 0.01


def base_numbers(n: int, seed: int = 7) -> pd.DataFrame | None:
    """follower, likes and comments (image means) of n influencers of the study's shape."""
    if n == 929:
        if not STUDY_FILE.exists():
            return None
        rows = pd.read_csv(STUDY_FILE)
        return pd.DataFrame(
            {"follower": rows["follower"], "likes": rows["image_love"], "comments": rows["image_comment"]}
        ).astype(np.float64)
    return pd.DataFrame(study_shaped_counts(n, seed))


def features(base: pd.DataFrame) -> pd.DataFrame:
    """ER and active_rate (percent) by the study's formulas."""
    return base.assign(**study_engagement(base["follower"], base["likes"], base["comments"]))


def fill(warehouse: Path, day: date, rows: pd.DataFrame) -> None:
    """One feature date of clusterable influencers, written straight into features (in bulk)."""
    fill_features(warehouse, {name: rows[name].to_numpy() for name in ("er", "active_rate", "follower")}, day)


def personas(warehouse: Path, version: int) -> pd.DataFrame:
    """Each influencer's persona id in a snapshot, in username order."""
    with connect(warehouse, read_only=True) as con:
        return con.execute(
            "SELECT a.username, p.persona_id, p.persona FROM clusters.assignments a "
            "JOIN clusters.profiles p USING (version, cluster) WHERE a.version = ? ORDER BY a.username",
            [version],
        ).df()


def frame_centres(warehouse: Path) -> pd.DataFrame:
    with connect(warehouse, read_only=True) as con:
        return con.execute(
            "SELECT persona_id, centre_er, centre_active_rate FROM clusters.frame_personas ORDER BY persona_id"
        ).df()


def week_two(base: pd.DataFrame, noise: float, first: pd.DataFrame, centres: pd.DataFrame, rng):
    """Week 2's features, and the movers with the persona whose centre they moved to."""
    jitter = np.exp(rng.normal(0, noise, (len(base), 3))) if noise > 0 else np.ones((len(base), 3))
    moved = features(base * jitter)
    core = first["persona_id"].value_counts().idxmax()
    core_rows = np.flatnonzero(first["persona_id"].to_numpy() == core)
    movers = rng.choice(core_rows, size=max(1, int(MOVERS_SHARE * len(base))), replace=False)
    targets = centres[centres["persona_id"] != core].reset_index(drop=True)
    goal = targets.iloc[rng.integers(0, len(targets), len(movers))]
    spread = rng.uniform(0.9, 1.1, (len(movers), 2))
    moved.loc[movers, "er"] = goal["centre_er"].to_numpy() * spread[:, 0]
    moved.loc[movers, "active_rate"] = goal["centre_active_rate"].to_numpy() * spread[:, 1]
    # The persona of the region each mover now stands in: the nearest frame centre.
    points = moved.loc[movers, ["er", "active_rate"]].to_numpy()
    distances = np.hypot(
        points[:, [0]] - centres["centre_er"].to_numpy()[None, :],
        points[:, [1]] - centres["centre_active_rate"].to_numpy()[None, :],
    )
    region = centres["persona_id"].to_numpy()[distances.argmin(axis=1)]
    return moved, movers, region


def frame_of(warehouse: Path, version: int) -> tuple[bool, float | None]:
    """Whether a snapshot made its persona frame, and its population shift."""
    with connect(warehouse, read_only=True) as con:
        return con.execute(
            "SELECT frame_made, population_shift FROM clusters.snapshots WHERE version = ?", [version]
        ).fetchone()


def measure(n: int, noises: list[float], tmp: Path, seed: int, process: bool = False) -> list[dict]:
    base = base_numbers(n, seed)
    if base is None:
        print(f"{n}: skipped (no study data at {STUDY_FILE})")
        return []
    week_1 = tmp / f"w{n}.duckdb"
    fill(week_1, WEEK_1, features(base))
    jobs.recluster(Settings(warehouse=week_1), feature_date=WEEK_1)
    first, centres = personas(week_1, 1), frame_centres(week_1)
    rows = []
    for noise in noises:
        warehouse = tmp / f"w{n}-{noise}.duckdb"
        shutil.copyfile(week_1, warehouse)
        moved, movers, region = week_two(base, noise, first, centres, np.random.default_rng([seed, int(noise * 1e4)]))
        fill(warehouse, WEEK_2, moved)
        if process:  # `kic recluster` in its own process: its own time and peak RSS
            del moved
            seconds, peak = run_process(
                [sys.executable, "-m", "kic", "recluster", "--date", str(WEEK_2), "-w", str(warehouse)]
            )
        else:
            meter = Meter()
            started = time.perf_counter()
            jobs.recluster(Settings(warehouse=warehouse), feature_date=WEEK_2)
            seconds = time.perf_counter() - started
            meter.running = False
            peak = meter.peak
        made, shift = frame_of(warehouse, 2)
        second = personas(warehouse, 2)
        stayed = np.ones(n, dtype=bool)
        stayed[movers] = False
        changed = first["persona_id"].to_numpy() != second["persona_id"].to_numpy()
        rows.append(
            {
                "n": n,
                "noise": noise,
                "moved by noise": changed[stayed].mean(),
                "personas": f"{first['persona_id'].nunique()} -> {second['persona_id'].nunique()}",
                "names kept": set(first["persona"]) == set(second["persona"]),
                "frame": "remade" if made else "kept",
                "shift": shift,
                "movers followed": (second["persona_id"].to_numpy()[movers] == region).mean(),
                "seconds": seconds,
                "peak MiB": peak / MIB,
            }
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[929, 5_000, 100_000, 1_000_000])
    parser.add_argument("--noise", type=float, nargs="+", default=[0.001, 0.01, 0.05])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--process", action="store_true", help="week 2 as `kic recluster` in its own process")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kic-stability-") as tmp:
        runs = [row for n in args.sizes for row in measure(n, args.noise, Path(tmp), args.seed, args.process)]
    print("\n| influencers | noise | moved by noise | personas | names kept | frame | movers followed | week 2 |")
    print("|---:|---:|---:|---|---|---|---:|---:|")
    for r in runs:
        print(
            f"| {r['n']:,} | {r['noise']:.1%} | {r['moved by noise']:.2%} | {r['personas']} | "
            f"{'yes' if r['names kept'] else 'no'} | {r['frame']} (PSI {r['shift']:.3f}) | "
            f"{r['movers followed']:.1%} | {r['seconds']:.1f} s · {r['peak MiB']:.0f} MiB |"
        )
    print("| target | 1 % | ≤ 0.5 % | unchanged | yes | kept | ≥ 90 % | |")


if __name__ == "__main__":
    main()
