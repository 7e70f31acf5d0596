"""Reclustering at scale: wall time and peak memory per part, at 10k, 100k and 1M influencers (10M on demand).

    uv run python benchmarks/recluster_scale.py [--sizes 10000 100000 1000000] [--cohort synthetic|study]
    uv run python benchmarks/recluster_scale.py --sizes 10000000 --process-only   # 10M: `kic recluster` only
    uv run python benchmarks/recluster_scale.py --agreement 20000     # scalable vs exact, at 20k
    uv run python benchmarks/recluster_scale.py --flow 100000         # the weekly flow through Prefect

For each size, a warehouse gets one feature date of influencers whose ER / active_rate have
the study's shape (`synthetic`: the sandbox population's distribution, drawn at once;
`study`: the study's 929 rows bootstrapped with 10 % multiplicative jitter), then:

- the recluster job runs in this process with the default candidate grid (K-means K 3-8 and
  the elbow 1-9, K-medoids K 3-5, complete linkage t 20/25/30, silhouettes for every
  candidate), each part timed, its peak resident memory sampled every 20 ms;
- the whole `kic recluster` runs as a separate process: its wall time and peak RSS.

With `--process-only`, only the latter (at 10M the in-process run doubles the wait).

Then the growth exponent of each part between the two largest sizes (n log n from 100k to
1M is an exponent of 1.08). Targets on this machine: 1M in 60 s and 2 GiB, 10M in 10 minutes
and 4 GiB (the whole `kic recluster` process).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
from meter import MIB, STUDY_FILE, Meter, run_process  # this folder is on the path when the script runs

from pipeline import jobs
from pipeline.settings import Settings
from pipeline.storage import connect
from sandbox.synthetic import study_shaped_cohort

DAY = date(2026, 6, 1)


def cohort(n: int, kind: str, seed: int = 7) -> dict[str, np.ndarray]:
    if kind == "synthetic":
        return study_shaped_cohort(n, seed)
    import pandas as pd

    rows = pd.read_csv(STUDY_FILE)
    rng = np.random.default_rng(seed)
    picked = rng.integers(0, len(rows), n)
    jitter = np.exp(rng.normal(0, 0.1, (n, 2)))
    return {
        "er": rows["ER"].to_numpy()[picked] * jitter[:, 0],
        "active_rate": rows["active_rate"].to_numpy()[picked] * jitter[:, 1],
        "follower": rows["follower"].to_numpy()[picked],
    }


def fill(warehouse: Path, values: dict[str, np.ndarray], day: date = DAY) -> None:
    """One feature date of clusterable influencers, written straight into features (in bulk)."""
    import pandas as pd

    n = len(values["er"])
    frame = pd.DataFrame({"i": np.arange(n), **values})  # noqa: F841 (read by DuckDB by name)
    with connect(warehouse) as con:
        con.execute(
            """
            INSERT INTO features.influencer_features BY NAME
            SELECT 'bench_' || lpad(i::VARCHAR, 8, '0') AS username, ?::DATE AS feature_date, 0 AS crawl_id,
                   'benchmark' AS source, follower, true AS open_account, false AS official_account,
                   er, active_rate, true AS is_clusterable, now() AS computed_at
            FROM frame
            """,
            [day],
        ).fetchall()


def kic_recluster(warehouse: Path) -> tuple[float, int]:
    """`kic recluster` in its own process: wall seconds and its peak RSS (bytes)."""
    # --force: the job just stored a snapshot of the same data, which would make this one a no-op.
    return run_process([sys.executable, "-m", "kic", "recluster", "--force", "-w", str(warehouse)])


def measure(n: int, kind: str, tmp: Path, process_only: bool = False) -> dict:
    warehouse = tmp / f"w{n}.duckdb"
    fill(warehouse, cohort(n, kind))
    if process_only:
        process_seconds, process_rss = kic_recluster(warehouse)
        with connect(warehouse, read_only=True) as con:
            published, clusters, path = con.execute(
                "SELECT published_candidate, n_clusters, json_extract_string(parameters, '$.path') "
                "FROM clusters.snapshots ORDER BY version DESC LIMIT 1"
            ).fetchone()
        return {
            "n": n,
            "parts": {},
            "job": math.nan,
            "process": (process_seconds, process_rss),
            "path": path,
            "published": published,
            "clusters": clusters,
        }
    meter = Meter()
    started = time.perf_counter()
    result = jobs.recluster(Settings(warehouse=warehouse), call=meter.call)
    whole = time.perf_counter() - started
    meter.running = False
    process_seconds, process_rss = kic_recluster(warehouse)
    return {
        "n": n,
        "parts": meter.parts,
        "job": whole,
        "process": (process_seconds, process_rss),
        "path": result.stored.parameters["path"],
        "published": result.stored.published,
        "clusters": result.stored.n_clusters,
    }


def report(runs: list[dict]) -> None:
    parts = list(runs[0]["parts"])
    print("\npart                      " + "".join(f"{r['n']:>22,}" for r in runs))
    for part in parts:
        cells = "".join(f"{r['parts'][part][0]:>10.2f} s {r['parts'][part][1] / MIB:>6.0f} MiB" for r in runs)
        print(f"{part:<26}{cells}")
    print(f"{'recluster job (in process)':<26}" + "".join(f"{r['job']:>10.2f} s {'':>10}" for r in runs))
    print(
        f"{'kic recluster (process)':<26}"
        + "".join(f"{r['process'][0]:>10.2f} s {r['process'][1] / MIB:>6.0f} MiB" for r in runs)
    )
    print("path: " + ", ".join(f"{r['n']:,}: {r['path']} ({r['published']}, {r['clusters']} clusters)" for r in runs))
    if len(runs) >= 2 and parts:
        small, large = runs[-2], runs[-1]
        ratio = math.log(large["n"] / small["n"])
        print(
            f"\ngrowth exponent from {small['n']:,} to {large['n']:,} (n log n = "
            f"{1 + math.log(math.log(large['n']) / math.log(small['n'])) / ratio:.2f}):"
        )
        for part in [*parts, "whole"]:
            a = small["process"][0] if part == "whole" else small["parts"][part][0]
            b = large["process"][0] if part == "whole" else large["parts"][part][0]
            if a > 0.05:
                print(f"  {part:<24}{math.log(b / a) / ratio:5.2f}")


def agreement(n: int, kind: str) -> None:
    """The scalable path against the exact algorithms on n influencers (n = 20,000 in the issue)."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score
    from sklearn_extra.cluster import KMedoids

    from models.config import ClusteringConfig
    from models.hierarchical import build_tree
    from models.scalable import ClaraKMedoids, SampledKMeans

    values = cohort(n, kind)
    X = np.column_stack([values["er"], values["active_rate"]])
    cfg = ClusteringConfig()
    print(f"\nagreement on {n:,} influencers ({kind}), defaults and smaller budgets:")
    started = time.perf_counter()
    exact_tree = fcluster(linkage(X, "complete"), 20, "distance")
    print(f"  SciPy complete linkage: {time.perf_counter() - started:.1f} s, {exact_tree.max()} clusters at t=20")
    # How far exact complete linkage itself moves when the points move a little: the floor
    # of any summary's agreement (merges of near-equal heights flip, and the cut with them).
    jitter = np.exp(np.random.default_rng(1).normal(0, 1e-4, X.shape))
    jittered = fcluster(linkage(X * jitter, "complete"), 20, "distance")
    print(
        f"  SciPy on the same points x (1 + 1e-4 noise): ARI {adjusted_rand_score(exact_tree, jittered):.4f} "
        f"({jittered.max()} clusters)"
    )
    for budget in sorted({cfg.max_micro_clusters, 20_000, 16_000, 14_000, 12_000, 10_000, 5_000}, reverse=True):
        tree = build_tree(X, "complete", budget)
        cut = tree.cut(20.0)
        print(
            f"  complete linkage t=20, max_micro_clusters={budget:,}: ARI {adjusted_rand_score(exact_tree, cut):.4f} "
            f"({cut.max() + 1} clusters, {tree.leaves:,} leaves, cell diameter {tree.max_cell_diameter:.4g})"
        )
    kmeans = KMeans(4, n_init=10, random_state=cfg.seed).fit(X).inertia_
    for sample in (cfg.kmeans_sample_size, 5_000, 2_000):
        sampled = SampledKMeans(4, sample_size=sample, random_state=cfg.seed).fit(X).inertia_
        print(f"  K-means K=4, kmeans_sample_size={sample:,}: SSE {sampled / kmeans:.5f} x KMeans(n_init=10)")
    clara = (
        ClaraKMedoids(4, sample_size=cfg.kmedoids_sample_size, n_samples=cfg.kmedoids_samples, random_state=cfg.seed)
        .fit(X)
        .inertia_
    )
    started = time.perf_counter()
    pam = KMedoids(4, metric="euclidean", method="pam", init="build", random_state=cfg.seed).fit(X).inertia_
    print(f"  K-medoids K=4: cost {clara / pam:.5f} x PAM (BUILD; PAM took {time.perf_counter() - started:.0f} s)")


def flow(n: int, kind: str, tmp: Path) -> None:
    """The weekly-recluster flow on n influencers, through a Prefect server; its artifacts."""
    # Nothing beyond loopback: the temporary server's telemetry stays off.
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.testing.utilities import prefect_test_harness

    from flows.weekly_recluster import weekly_recluster

    warehouse = tmp / f"flow{n}.duckdb"
    fill(warehouse, cohort(n, kind))
    with prefect_test_harness(server_startup_timeout=120):
        started = time.perf_counter()
        state = weekly_recluster(warehouse=str(warehouse), return_state=True)
        seconds = time.perf_counter() - started
        with get_client(sync_client=True) as client:
            found = client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
                )
            )
    print(f"\nweekly-recluster flow on {n:,} influencers: {state.type.value} in {seconds:.1f} s")
    for artifact in found:
        if artifact.key == "weekly-candidates":
            print(f"  {artifact.key}: {artifact.description}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--cohort", choices=["synthetic", "study"], default="synthetic")
    parser.add_argument("--process-only", action="store_true", help="time only `kic recluster` in its own process")
    parser.add_argument("--agreement", type=int, metavar="N", help="compare with the exact algorithms on N")
    parser.add_argument("--flow", type=int, metavar="N", help="run the weekly flow through Prefect on N")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.agreement:
            agreement(args.agreement, args.cohort)
        elif args.flow:
            flow(args.flow, args.cohort, tmp)
        else:
            runs = []
            for n in args.sizes:
                runs.append(measure(n, args.cohort, tmp, args.process_only))
                print(f"{n:,} influencers measured", flush=True)
            report(runs)


if __name__ == "__main__":
    main()
