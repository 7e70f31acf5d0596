"""`kic report`: one self-contained HTML file per snapshot, every chart drawn (checked in
headless Chromium), bounded work at any cohort size."""

import html
import json
import re
import shutil
import subprocess
import tempfile

import pandas as pd
import pytest

from conftest import STUDY_HEADER, assert_one_line_error, cli
from pipeline.report import render
from warehouse.db import connect, insert_frame
from warehouse.report import POINTS_MAX, read_report_data

HEADER = STUDY_HEADER
GRID = {
    "KIC_CLUSTERING__KMEANS_K": "[3, 4]",
    "KIC_CLUSTERING__KMEDOIDS_K": "[]",
    "KIC_CLUSTERING__ELBOW_K": "[1, 2, 3]",
    "KIC_CLUSTERING__MIN_PERSONAS": "3",
}
CHARTS = ["personas", "elbow", "silhouettes", "sizes", "moves"]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    """Two snapshots of 40 imported influencers (K = 3, then K = 4): some move persona."""
    folder = tmp_path_factory.mktemp("report")
    rows = [
        f"https://www.instagram.com/acct.{i:02d}/,10,{1000 + 211 * i},5,1,0,{20 + 7 * (i % 9)},{1 + i % 6},0,0,0,0"
        for i in range(40)
    ]
    (folder / "cohort.csv").write_text(HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    path = folder / "warehouse.duckdb"
    with pytest.MonkeyPatch.context() as env:
        for name, value in GRID.items():
            env.setenv(name, value)
        for args in (
            ["import-csv", folder / "cohort.csv", "--as-of", "2026-11-01"],
            ["recluster", "--publish", "kmeans-k3"],
            ["recluster", "--publish", "kmeans-k4"],
        ):
            result = cli(*args, "-w", path)
            assert result.returncode == 0, result.stderr
    return path


def test_the_report_is_one_offline_file_with_every_chart(warehouse, tmp_path):
    output = tmp_path / "report.html"
    result = cli("report", "-w", warehouse, "-o", output)
    assert result.returncode == 0, result.stderr
    assert str(output) in result.stdout
    page = output.read_text(encoding="utf-8")
    assert re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', page) == CHARTS
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing loaded from anywhere
    assert "Snapshot 2" in page and "kmeans-k4" in page and "mean ER (%)" in page
    # Without -o: under data/reports/ beside the warehouse, named by version.
    assert cli("report", "1", "-w", warehouse).returncode == 0
    first = warehouse.parent / "reports" / "snapshot-1.html"
    assert "The first snapshot: nothing to compare with." in first.read_text(encoding="utf-8")


def test_a_missing_version_is_one_line_and_writes_nothing(warehouse, tmp_path):
    assert_one_line_error(cli("report", "7", "-w", warehouse, "-o", tmp_path / "r.html"), "no snapshot version 7")
    assert not list(tmp_path.iterdir())


def test_the_moves_are_counted_between_the_last_two_snapshots(warehouse):
    with connect(warehouse, read_only=True) as con:
        data = read_report_data(con, 2)
        same = con.execute(
            "SELECT count(*) FROM clusters.assignments a JOIN clusters.assignments b USING (username) "
            "WHERE a.version = 1 AND b.version = 2 AND a.persona = b.persona"
        ).fetchone()[0]
    assert data.previous_version == 1 and not data.drawn_as_density
    assert data.moves["influencers"].sum() == 40 == len(data.points)
    stayed = data.moves[data.moves["previous_persona"] == data.moves["current_persona"]]
    assert stayed["influencers"].sum() == same


def test_a_big_cohort_is_drawn_as_density_from_bounded_rows(tmp_path):
    """A snapshot of POINTS_MAX + 30,000 influencers: the scatter reads grid cells, not them."""
    n = POINTS_MAX + 30_000
    with connect(tmp_path / "w.duckdb") as con:
        con.execute(
            "INSERT INTO clusters.snapshots VALUES (1, now(), DATE '2026-11-01', ?, 'x', 'test', "
            """'{"path": "scalable", "published_because": "as set"}', 'kmeans-k2', 2)""",
            [n],
        )
        profiles = pd.DataFrame(
            {
                "cluster": [1, 2],
                "size": [n - 100, 100],
                "mean_er": [2.0, 20.0],
                "median_er": [2.0, 20.0],
                "mean_active_rate": [3.0, 3.0],
                "median_active_rate": [3.0, 3.0],
                "median_follower": [5e4, 5e4],
                "er_level": ["low", "high"],
                "active_rate_level": ["low", "low"],
                "persona": ["Lowest benefit", "High Interactive"],
                "rank": [2, 1],
                "follower_tier": ["micro", "micro"],
            }
        )
        insert_frame(con, "clusters.profiles", profiles.assign(version=1))
        con.execute(
            "INSERT INTO clusters.assignments (version, username, cluster, persona, er, active_rate) "
            "SELECT 1, 'u' || i, CASE WHEN i < 100 THEN 2 ELSE 1 END, "
            "CASE WHEN i < 100 THEN 'High Interactive' ELSE 'Lowest benefit' END, "
            "CASE WHEN i < 100 THEN 20 ELSE 0.5 + (i % 500) / 100 END, 0.2 + (i % 97) / 10 FROM range(?) t(i)",
            [n],
        )
        data = read_report_data(con, 1)
    assert data.drawn_as_density
    assert data.points["influencers"].sum() == n and len(data.points) < 5_000
    assert set(data.points["persona"]) == {"High Interactive", "Lowest benefit"}
    assert render(data).count("data:image/png;base64,") == 4  # no previous snapshot: no moves chart


@pytest.mark.e2e  # a browser start
def test_every_chart_renders_in_headless_chromium(warehouse, tmp_path):
    """Chromium opens the report from disk and decodes every image (natural size > 0)."""
    if shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    output = tmp_path / "report.html"
    assert cli("report", "-w", warehouse, "-o", output).returncode == 0
    probe = (
        "<script>window.addEventListener('load', () => document.body.setAttribute('data-rendered', "
        "JSON.stringify([...document.images].map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight]))));"
        "</script></body>"
    )
    probed = tmp_path / "probed.html"
    probed.write_text(output.read_text(encoding="utf-8").replace("</body>", probe), encoding="utf-8")
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [
                shutil.which("chromium"),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=10000",
                "--dump-dom",
                probed.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
    rendered = json.loads(html.unescape(re.search(r'data-rendered="([^"]*)"', dom).group(1)))
    assert [alt for alt, *_ in rendered] == CHARTS
    for alt, complete, width, height in rendered:
        assert complete and width > 200 and height > 150, (alt, width, height)
