"""Importing a study-layout CSV at scale: `kic import-csv` of 1M rows, step by step.

    uv run python benchmarks/import_scale.py [--rows 1000000]

Writes a CSV in the study's layout (the study's columns and its saved index; engagement of
the study's shape; 0.1 % of rows bad in the ways the crawler left them: -1, text, blanks),
then imports it twice into fresh warehouses: once in this process with every step timed
and its peak RSS sampled, once as `kic import-csv` in its own process (wall time, peak RSS).
The import is the whole job: parse and check, store, validate (Great Expectations), derive
and validate features, publish. Target on this machine: 1M rows in 2 minutes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from meter import MIB, Meter, run_process  # this folder is on the path when the script runs

from pipeline import jobs
from pipeline.settings import Settings
from sandbox.synthetic import study_shaped_cohort

DAY = date(2026, 6, 1)


def write_csv(path: Path, rows: int, seed: int = 3) -> None:
    values = study_shaped_cohort(rows, seed)
    rng = np.random.default_rng(seed)
    follower = values["follower"].astype(float)
    reactions = values["er"] * follower / 100
    comments = reactions * values["active_rate"] / (100 + values["active_rate"])
    frame = pd.DataFrame(
        {
            "account": pd.Series(np.arange(rows)).map("https://www.instagram.com/beauty_{:07d}/".format),
            "post": rng.integers(13, 3_000, rows),
            "follower": values["follower"],
            "follow": rng.integers(10, 3_000, rows),
            "open_account": (rng.random(rows) > 0.02).astype(int),
            "official_account": (rng.random(rows) < 0.05).astype(int),
            "image_love": (reactions - comments).round(2),
            "image_comment": comments.round(2),
            "video_love": rng.uniform(0, 1_000, rows).round(1),
            "video_comment": rng.uniform(0, 50, rows).round(1),
            "igtv_love": 0,
            "igtv_comment": 0,
        }
    ).astype({"post": str, "follower": str, "image_love": str})
    bad = rng.choice(rows, rows // 1_000, replace=False)
    frame.loc[bad[0::3], "post"] = "-1"
    frame.loc[bad[1::3], "follower"] = "many"
    frame.loc[bad[2::3], "image_love"] = ""
    frame.to_csv(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        csv = tmp / "study-layout.csv"
        started = time.perf_counter()
        write_csv(csv, args.rows)
        print(
            f"wrote {args.rows:,} rows ({csv.stat().st_size / MIB:,.0f} MiB) in {time.perf_counter() - started:.1f} s"
        )

        meter = Meter()
        started = time.perf_counter()
        result = jobs.import_csv(Settings(warehouse=tmp / "a" / "w.duckdb"), csv, DAY, call=meter.call)
        whole = time.perf_counter() - started
        meter.running = False
        seconds, rss = run_process(
            [
                sys.executable,
                "-m",
                "kic",
                "import-csv",
                str(csv),
                "--as-of",
                str(DAY),
                "-w",
                str(tmp / "b" / "w.duckdb"),
            ]
        )

    print(f"\n{'step':<26}{'seconds':>10}{'peak RSS':>14}")
    for step, (spent, peak) in meter.parts.items():
        print(f"{step:<26}{spent:>10.2f}{peak / MIB:>10.0f} MiB")
    print(f"{'import job (in process)':<26}{whole:>10.2f}")
    print(f"{'kic import-csv (process)':<26}{seconds:>10.2f}{rss / MIB:>10.0f} MiB")
    print(
        f"{result.load.profiles_written:,} accounts stored, {result.landed.rejected:,} rows rejected, "
        f"{result.features.summary.clusterable:,} clusterable"
    )


if __name__ == "__main__":
    main()
