"""`kic report`: one self-contained HTML file per snapshot, every chart drawn (checked in
headless Chromium), bounded work at any cohort size."""

import html
import json
import re
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from scipy.cluster.hierarchy import is_valid_linkage

from conftest import STUDY_HEADER, assert_one_line_error, cli
from models.hierarchical import DENDROGRAM_MERGES, build_tree, top_merges
from pipeline import steps
from pipeline.settings import Settings
from warehouse.db import connect, insert_frame
from warehouse.report import POINTS_MAX, read_report_data

HEADER = STUDY_HEADER
GRID = {
    "KIC_CLUSTERING__KMEANS_K": "[3, 4]",
    "KIC_CLUSTERING__KMEDOIDS_K": "[]",
    "KIC_CLUSTERING__ELBOW_K": "[1, 2, 3]",
    "KIC_CLUSTERING__MIN_PERSONAS": "3",
}
CHARTS = ["scatter", "elbow", "silhouettes", "dendrogram", "sizes", "moves"]


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


def test_the_report_is_one_offline_file_with_every_chart(warehouse):
    result = cli("report", "-w", warehouse)
    assert result.returncode == 0, result.stderr
    # Without -o: under data/reports/ beside the warehouse, named by version (-o: the e2e test below).
    output = warehouse.parent / "reports" / "snapshot-2.html"
    assert str(output) in result.stdout
    page = output.read_text(encoding="utf-8")
    assert re.findall(r'<figure id="([a-z]+)"><img alt="[^"]+" src="data:image/png;base64,', page) == CHARTS
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing loaded from anywhere
    assert "Snapshot 2" in page and "kmeans-k4" in page and "mean ER (%)" in page
    with connect(warehouse, read_only=True) as con:
        first = read_report_data(con, 1)
    from pipeline.report import render

    assert "The first snapshot: nothing to compare with." in render(first, [])


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


@pytest.mark.parametrize("method,max_points", [("complete", None), ("complete", 40), ("average", None)])
def test_top_merges_are_the_top_of_the_tree_as_a_linkage(method, max_points):
    X = np.random.default_rng(1).lognormal(size=(300, 2))
    tree = build_tree(X, method, max_points)
    merges = top_merges(tree, 12)
    assert len(merges) == 12
    assert merges["height"].tolist() == tree.linkage[-12:, 2].tolist()
    assert merges["size"].iloc[-1] == len(X)  # the root holds everyone
    assert (merges["size"] == merges["left_size"] + merges["right_size"]).all()
    # SciPy's numbering: 13 truncated leaves 0..12, merge m makes node 13 + m, each used once.
    children = np.sort(np.concatenate([merges["left"], merges["right"]]))
    assert children.tolist() == list(range(12 + 12))
    from pipeline.report import tree_linkage  # matplotlib: imported by this file's worker only

    linkage, leaf_size = tree_linkage(merges)
    assert is_valid_linkage(linkage) and leaf_size.sum() == len(X)


def test_each_snapshot_stores_the_top_of_its_tree(warehouse):
    with connect(warehouse, read_only=True) as con:
        stored = con.execute(
            "SELECT version, count(*), max(merge), arg_max(size, merge) FROM clusters.dendrogram "
            "GROUP BY ALL ORDER BY 1"
        ).fetchall()
    # 40 influencers: 39 merges, of which the top DENDROGRAM_MERGES; the root holds all 40.
    assert stored == [(v, DENDROGRAM_MERGES, DENDROGRAM_MERGES - 1, 40) for v in (1, 2)]


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
    # No previous snapshot: no moves; no hierarchical candidate stored: no tree.
    from pipeline.report import draw, render

    assert render(data, draw(data)).count("data:image/png;base64,") == 4


def headless_dom(page) -> str:
    """The DOM headless Chromium builds from a local page, every host name resolving to nothing
    (anything the page needed from a network would be missing)."""
    if shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [
                shutil.which("chromium"),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--no-first-run",
                "--host-resolver-rules=MAP * ~NOTFOUND",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=10000",
                "--dump-dom",
                page.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout


@pytest.mark.e2e  # a browser start
def test_every_chart_renders_in_headless_chromium(warehouse, tmp_path):
    """Chromium opens the report from disk and decodes every image (natural size > 0)."""
    output = tmp_path / "report.html"
    assert cli("report", "-w", warehouse, "-o", output).returncode == 0
    probe = (
        "<script>window.addEventListener('load', () => document.body.setAttribute('data-rendered', "
        "JSON.stringify([...document.images].map(i => "
        "[i.parentElement.id, i.complete, i.naturalWidth, i.naturalHeight]))));"
        "</script></body>"
    )
    probed = tmp_path / "probed.html"
    probed.write_text(output.read_text(encoding="utf-8").replace("</body>", probe), encoding="utf-8")
    dom = headless_dom(probed)
    rendered = json.loads(html.unescape(re.search(r'data-rendered="([^"]*)"', dom).group(1)))
    assert [key for key, *_ in rendered] == CHARTS
    for key, complete, width, height in rendered:
        assert complete and width > 200 and height > 150, (key, width, height)


@pytest.fixture
def failed_validation(tmp_path):
    """A warehouse whose only validation failed one expectation."""
    settings = Settings(warehouse=tmp_path / "warehouse.duckdb")
    run = {"validation_id": "v-1", "run_at": datetime(2026, 3, 1, tzinfo=UTC), "suite": "raw_profiles", "crawl_id": 1}
    counts = {"rows_validated": 40, "expectations": 2, "passed": 1, "failed": 1, "rows_quarantined": 3}
    failed = {"validation_id": "v-1", "expectation": "expect_column_values_to_not_be_null(followers)"}
    with connect(settings.warehouse) as con:
        insert_frame(con, "quality.validation_runs", pd.DataFrame([{**run, **counts, "table_level_ok": True}]))
        insert_frame(
            con,
            "quality.expectation_results",
            pd.DataFrame([{**failed, "level": "row", "success": False, "unexpected_count": 3}]),
        )
    return settings


def test_the_validation_summary_is_written_beside_the_data_docs_with_nothing_to_fetch(failed_validation):
    page = steps.write_validation_summary(failed_validation)
    assert page == failed_validation.data_docs_path / "offline.html"
    text = page.read_text(encoding="utf-8")
    assert '<tr class="failed"><td>v-1</td><td>2026-03-01' in text
    assert "expect_column_values_to_not_be_null(followers)" in text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text) and "<script" not in text


@pytest.mark.e2e  # a browser start
def test_the_validation_summary_shows_its_rows_in_chromium_offline(failed_validation):
    dom = headless_dom(steps.write_validation_summary(failed_validation))
    assert re.search(r'<tr class="failed"><td>v-1</td>', dom)  # the list is not empty offline
    assert "<td>expect_column_values_to_not_be_null(followers)</td>" in dom
