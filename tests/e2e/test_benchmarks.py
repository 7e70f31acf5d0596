"""Every benchmark still runs against today's code, on a tiny input: its figures in the docs are
only as good as the script that printed them, and a script that writes tables positionally
breaks silently when a migration adds a column. Nothing here is timed (the benchmarks are)."""

import subprocess
import sys

import pytest

from support import REPO, subprocess_env

# (script and its smallest arguments that take its whole path, a line its output always has)
BENCHMARKS = {
    "crawl_throughput": (["--accounts", "100"], "ratio landing / discard:"),
    "history_export": (["--influencers", "2000", "--days", "57", "--xlsx", "--copy"], "kic export --format xlsx"),
    "import_scale": (["--rows", "2000"], "kic import-csv (process)"),
    "nightly_scale": (["--sizes", "1000", "2000", "--crawl-up-to", "1000"], "after the crawl (process)"),
    "persona_stability": (["--sizes", "2000", "--noise", "0.01"], "| target |"),
    "publish_history": (["--influencers", "2000", "--histories", "1,3", "--repeats", "1"], "| 3 |"),
    "recluster_scale": (["--sizes", "3000"], "3,000 influencers measured"),
    "refresh_plan": (["--accounts", "2000", "--days", "3", "--tokens", "1", "2"], "2 token(s): done"),
    "report_scale": (["--influencers", "2000"], "2,000 influencers: report of snapshot 2"),
    "validation_memory": (["--sizes", "1000"], "target (≤ 2 GiB at 1M accounts):"),
}


def test_every_benchmark_is_listed_here():
    scripts = {path.stem for path in (REPO / "benchmarks").glob("*.py")} - {"meter", "discard_pipeline"}
    assert scripts == set(BENCHMARKS)


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_the_benchmark_runs_to_its_end_on_a_tiny_input(name, tmp_path):
    args, last_words = BENCHMARKS[name]
    ran = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / f"{name}.py"), *args],
        cwd=tmp_path,
        env=subprocess_env({"TMPDIR": str(tmp_path)}),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert last_words in ran.stdout, ran.stdout[-3000:]
