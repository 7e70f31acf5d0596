"""The nightly validation and feature steps at scale: wall time and peak RSS per step, at 100k and 1M accounts.

    uv run python benchmarks/validation_memory.py [--sizes 100000 1000000] [--posts 12]

For each size, a warehouse gets one night's web crawl written straight in SQL (DuckDB's
range() and random(), no Python rows): N raw.profiles rows, 12 raw.posts rows per account
and the account outcomes, with a few bad values every 20,000 accounts: negative
followers, usernames Instagram would not allow, negative likes, posts taken after they
were fetched, and influencers whose ER is implausible (their feature rows are quarantined).

Then, in a process of its own per size (so that nothing carries over between sizes), the
night's two chains run as the nightly refresh runs them: the validate-crawl chain
(pipeline.jobs.validate_crawl: validate the raw rows, store the validation, require the
table-level checks) and the derive-features chain (pipeline.jobs.derive_features:
validate the feature rows, store, require, write them). Every step is timed
(benchmarks/meter.py) and its peak resident memory read from the kernel (VmHWM, reset
as the step starts), as is the process's peak. Target: at 1M accounts the process peaks
at ≤ 2 GiB, and its memory does not grow with the number of accounts (add a size, e.g.
--sizes 100000 1000000 3000000, to see it level off).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from meter import MIB, Meter, process_status, run_process  # this folder is on the path when the script runs

DAY = date(2026, 6, 1)
FETCHED_AT = datetime.combine(DAY, datetime.min.time()) + timedelta(hours=3)
BAD_EVERY = 20_000  # one account in this many has each kind of bad value

# The night's accounts: i -> username (a few not shaped like an Instagram username).
ACCOUNTS = f"""
SELECT i, CASE WHEN i % {BAD_EVERY} = 11 THEN 'Bad-Name-' || i ELSE 'bench_' || lpad(i::VARCHAR, 8, '0') END AS username
FROM range($n) AS t(i)
"""

PROFILES = f"""
INSERT INTO raw.profiles BY NAME
WITH accounts AS ({ACCOUNTS})
SELECT
    $crawl_id AS crawl_id,
    username,
    i::VARCHAR AS user_id,
    CASE WHEN i % {BAD_EVERY} = 3 THEN -1                 -- negative: quarantined
         WHEN i % {BAD_EVERY} = 5 THEN 1                  -- one follower: an implausible ER
         ELSE (100 + random() * random() * 200000)::BIGINT END AS followers,
    (random() * 3000)::BIGINT AS follows,
    (13 + random() * 3000)::BIGINT AS media_count,
    random() < 0.02 AS is_private,
    random() < 0.05 AS is_verified,
    random() < 0.30 AS is_business,
    random() < 0.01 AS hide_like_counts,
    $fetched_at AS fetched_at
FROM accounts
"""

# Engagement follows the audience (ER of a few percent), except where it is meant not to.
POSTS = f"""
INSERT INTO raw.posts BY NAME
SELECT *, (likes * random() * 0.05)::BIGINT AS comments
FROM (
    SELECT
        crawl_id,
        'p' || user_id || '_' || j AS post_id,
        username,
        md5(user_id || '_' || j)[:11] AS shortcode,
        CASE WHEN j < 8 THEN 'image' WHEN j < 11 THEN 'video' ELSE 'igtv' END AS kind,
        CASE WHEN j < 8 THEN 'GraphImage' ELSE 'GraphVideo' END AS media_type,
        CASE WHEN j < 8 THEN 'feed' WHEN j < 11 THEN 'clips' ELSE 'igtv' END AS product_type,
        CASE WHEN user_id::BIGINT % {BAD_EVERY} = 7 AND j = 0 THEN -5   -- negative likes: quarantined
             WHEN followers = 1 THEN 5000                               -- an implausible ER
             ELSE (greatest(followers, 100) * random() * 0.06)::BIGINT END AS likes,
        CASE WHEN j >= 8 THEN (greatest(followers, 100) * random() * 0.5)::BIGINT END AS views,
        CASE WHEN user_id::BIGINT % {BAD_EVERY} = 9 AND j = 1 THEN fetched_at + INTERVAL 2 DAY  -- after its fetch
             ELSE fetched_at - INTERVAL 1 DAY * (1 + j * 3) END AS taken_at,
        j = 0 AND user_id::BIGINT % 10 = 0 AS is_pinned,
        fetched_at
    FROM raw.profiles, range($posts) AS p(j)
    WHERE crawl_id = $crawl_id
)
"""

OUTCOMES = """
INSERT INTO raw.account_outcomes BY NAME
SELECT crawl_id, username, CASE WHEN is_private THEN 'private' ELSE 'ok' END AS status, fetched_at
FROM raw.profiles WHERE crawl_id = $crawl_id
"""


def build(warehouse: Path, n: int, posts: int) -> int:
    """One night's crawl of n accounts, straight into raw (in SQL); its crawl id."""
    from pipeline.storage import connect
    from warehouse import raw
    from warehouse.db import transaction
    from warehouse.vocabulary import RunStatus

    with connect(warehouse) as con, transaction(con):
        crawl_id = raw.open_run(con, "web", "benchmark", DAY, accounts_requested=n)  # 1: the warehouse is new
        params = {"crawl_id": crawl_id, "fetched_at": FETCHED_AT, "n": n}
        con.execute(PROFILES, params).fetchall()
        con.execute(POSTS, {"crawl_id": crawl_id, "posts": posts}).fetchall()
        con.execute(OUTCOMES, {"crawl_id": crawl_id}).fetchall()
        raw.close_run(con, crawl_id, RunStatus.SUCCEEDED)
    return crawl_id


class KernelPeakMeter(Meter):
    """Meter, with each part's peak read from the kernel (VmHWM, reset as the part starts):
    DuckDB holds the GIL in places, where the 20 ms sampling thread would miss a peak.

    Resetting VmHWM also resets what wait4 reports as the process's peak, so the process's
    peak is kept here (`process_peak`), over every reset.
    """

    lifetime = 0

    @staticmethod
    def high_water_mark() -> int:
        return process_status("VmHWM")

    def process_peak(self) -> int:
        self.lifetime = max(self.lifetime, self.high_water_mark())
        return self.lifetime

    @contextlib.contextmanager
    def part(self, name: str):
        self.process_peak()
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # resets VmHWM to the current RSS
        with super().part(name):
            yield
        seconds, peak = self.parts[name]
        self.parts[name] = (seconds, max(peak, self.high_water_mark()))


def child(warehouse: Path, crawl_id: int, out: Path) -> None:
    """The two chains in this process, each step timed and metered; the figures to `out`."""
    meter = KernelPeakMeter()
    with meter.part("(imports: pipeline, Great Expectations)"):
        from pipeline import jobs, steps
        from pipeline.settings import Settings
        from transforms import validation  # noqa: F401 (GX's import is part of the process's memory)
    settings = Settings(warehouse=warehouse)
    steps.upgrade_warehouse(settings)  # as a night's first writer would (the schema may be newer than the build's)
    started = time.perf_counter()
    crawl = jobs.validate_crawl(settings, crawl_id, call=meter.call)
    validated = time.perf_counter() - started
    features = jobs.derive_features(settings, DAY, call=meter.call)
    derived = time.perf_counter() - started - validated
    meter.running = False
    out.write_text(
        json.dumps(
            {
                "peak": meter.process_peak(),
                "parts": meter.parts,
                "chains": {"validate_crawl": validated, "derive_features": derived},
                "rows": {v.suite: v.rows_validated for v in crawl.suites + features.validation.suites},
                "quarantined": {"raw": crawl.quarantined, "features": features.validation.quarantined},
                "features": features.summary.influencers,
            }
        )
    )


def measure(n: int, posts: int, tmp: Path) -> dict:
    """Build in one process, measure in another (which reports its own peak RSS: see
    KernelPeakMeter); each size in fresh processes."""
    warehouse = tmp / f"w{n}" / "warehouse.duckdb"
    warehouse.parent.mkdir()
    built, _ = run_process([sys.executable, __file__, "--build", str(warehouse), str(n), str(posts)])
    out = tmp / f"w{n}.json"
    seconds, _ = run_process([sys.executable, __file__, "--child", str(warehouse), "1", str(out)])
    measured = json.loads(out.read_text())
    return {"n": n, "built": built, "process": (seconds, measured["peak"]), **measured}


def report(runs: list[dict]) -> None:
    parts = list(runs[0]["parts"])
    print("\nstep" + " " * 38 + "".join(f"{r['n']:>24,}" for r in runs))
    for part in parts:
        cells = "".join(f"{r['parts'][part][0]:>11.1f} s {r['parts'][part][1] / MIB:>7.0f} MiB" for r in runs)
        print(f"{part:<42}{cells}")
    for chain in runs[0]["chains"]:
        print(f"{'chain ' + chain:<42}" + "".join(f"{r['chains'][chain]:>11.1f} s {'':>11}" for r in runs))
    print(
        f"{'the process (wall, peak RSS)':<42}"
        + "".join(f"{r['process'][0]:>11.1f} s {r['process'][1] / MIB:>7.0f} MiB" for r in runs)
    )
    for r in runs:
        print(
            f"{r['n']:,} accounts: built in {r['built']:.0f} s; rows validated {r['rows']}; "
            f"quarantined {r['quarantined']}; {r['features']:,} feature rows written"
        )
    if len(runs) >= 2:
        small, large = runs[-2], runs[-1]
        grown = (large["process"][1] - small["process"][1]) / (large["n"] - small["n"])
        print(f"\npeak RSS grows {grown:,.0f} bytes per account from {small['n']:,} to {large['n']:,}")
    over = [r["n"] for r in runs if r["n"] >= 1_000_000 and r["process"][1] > 2 * 1024 * MIB]
    print("target (≤ 2 GiB at 1M accounts): " + (f"MISSED at {over}" if over else "met"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--posts", type=int, default=12, help="posts per account")
    parser.add_argument("--build", nargs=3, metavar=("WAREHOUSE", "N", "POSTS"), help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs=3, metavar=("WAREHOUSE", "CRAWL_ID", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        warehouse, n, posts = args.build
        build(Path(warehouse), int(n), int(posts))
        return
    if args.child:
        warehouse, crawl_id, out = args.child
        child(Path(warehouse), int(crawl_id), Path(out))
        return
    with tempfile.TemporaryDirectory() as tmp:
        runs = []
        for n in args.sizes:
            try:
                runs.append(measure(n, args.posts, Path(tmp)))
            except SystemExit as failed:  # run_process's: say so, report the other sizes
                print(f"{n:,} accounts: {failed}", flush=True)
                continue
            print(f"{n:,} accounts measured", flush=True)
        if runs:
            report(runs)


if __name__ == "__main__":
    main()
