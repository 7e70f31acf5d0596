"""`kic report`: one self-contained HTML file per snapshot, every chart drawn (checked in
headless Chromium), bounded work at any cohort size."""

import csv
import html
import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.cluster.hierarchy import is_valid_linkage

from models.hierarchical import DENDROGRAM_MERGES, build_tree, top_merges
from pipeline import steps
from pipeline.settings import Settings
from pipeline.storage import connect
from support import STUDY_HEADER, assert_one_line_error, cli, environment, headless_chromium
from transforms.report import POINTS_MAX, read_report_data
from warehouse.db import insert_frame

HEADER = STUDY_HEADER
GRID = {
    "KIC_CLUSTERING__KMEANS_K": "[3, 4]",
    "KIC_CLUSTERING__KMEDOIDS_K": "[]",
    "KIC_CLUSTERING__ELBOW_K": "[1, 2, 3]",
    "KIC_CLUSTERING__MIN_PERSONAS": "3",
}
CHARTS = ["scatter", "sizes", "moves", "elbow", "silhouettes", "dendrogram"]
APPENDIX = ["elbow", "silhouettes", "dendrogram"]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    """Two snapshots of 40 imported influencers (K = 3, then K = 4): some move persona; 7 have
    no image comments (active_rate 0)."""
    folder = tmp_path_factory.mktemp("report")
    rows = [
        f"https://www.instagram.com/acct.{i:02d}/,10,{1000 + 211 * i},5,1,0,{20 + 7 * (i % 9)},{i % 6},0,0,0,0"
        for i in range(40)
    ]
    (folder / "cohort.csv").write_text(HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    path = folder / "warehouse.duckdb"
    with environment(GRID):
        for args in (
            ["import-csv", folder / "cohort.csv", "--as-of", "2026-11-01"],
            ["recluster", "--publish", "kmeans-k3"],
            ["recluster", "--publish", "kmeans-k4"],
        ):
            result = cli(*args, "-w", path)
            assert result.returncode == 0, result.stderr
    return path


def stored(warehouse, sql, params=None):
    with connect(warehouse, read_only=True) as con:
        return con.execute(sql, params).fetchall()


CARD = re.compile(
    r'<article class="persona" id="persona-(?P<id>\d+)" data-persona-id="(?P=id)" style="--colour: (?P<colour>#\w+)">'
    r"(?P<body>.*?)</article>",
    flags=re.S,
)


def cards_of(page: str) -> list[dict]:
    return [match.groupdict() for match in CARD.finditer(page)]


@pytest.fixture(scope="module")
def latest_report(warehouse):
    """`kic report` of the latest snapshot, without -o: under reports/ beside the warehouse."""
    result = cli("report", "-w", warehouse)
    assert result.returncode == 0, result.stderr
    return result, warehouse.parent / "reports" / "snapshot-2.html"


def test_reports_in_the_default_place_keep_the_newest_snapshots_and_none_asked_for_is_removed(warehouse, tmp_path):
    """`reports_kept` bounds data/reports/ (the weekly flow's): an older snapshot's page and member
    lists go once newer ones are written; a report written where asked (-o) is never removed."""
    shutil.copy(warehouse, tmp_path / "warehouse.duckdb")
    settings = Settings(warehouse=tmp_path / "warehouse.duckdb", reports_kept=1)
    chosen = steps.report(settings, 1, tmp_path / "mine.html")
    first = steps.report(settings, 1)
    assert first.path.exists() and all(path.exists() for path in first.member_lists.values())
    second = steps.report(settings, 2)
    assert not first.path.exists() and not steps.member_folder(first.path).exists()
    assert second.path.exists() and all(path.exists() for path in second.member_lists.values())
    assert chosen.path.exists() and all(path.exists() for path in chosen.member_lists.values())
    again = steps.report(Settings(warehouse=settings.warehouse, reports_kept=2), 1)
    assert again.path.exists() and second.path.exists()  # two kept now: an older one written again stays


def test_the_report_is_one_offline_file_with_every_chart(warehouse, latest_report):
    result, output = latest_report
    # Without -o: under data/reports/ beside the warehouse, named by version (-o: the e2e test below).
    assert str(output) in result.stdout
    page = output.read_text(encoding="utf-8")
    assert re.findall(r'<figure id="([a-z]+)"><img alt="[^"]+" src="data:image/png;base64,', page) == CHARTS
    assert not re.search(r"""src=["']?(https?:)?//""", page)  # nothing loaded from anywhere
    # The only links: the influencers' profiles, each persona's member list beside the page, anchors.
    links = re.findall(r'href="([^"]+)"', page)
    assert links and all(
        link.startswith(("https://www.instagram.com/", "snapshot-2-members/persona-", "#persona-")) for link in links
    )
    appendix = page[page.index('<section id="appendix">') :]
    assert re.findall(r'<figure id="([a-z]+)">', appendix) == APPENDIX  # the diagnostics follow the personas
    assert page.index('<section id="personas"') < page.index('<figure id="scatter">')
    assert "Snapshot 2" in page and "kmeans-k4" in page and "typical ER (median)" in page
    with connect(warehouse, read_only=True) as con:
        first = read_report_data(con, 1)
    from renderers.snapshot_page import render

    assert "The first snapshot: nothing to compare with." in render(first, [])


def test_a_card_per_persona_best_first_with_its_meaning_figures_and_best_fits(warehouse, latest_report):
    """Each persona of the snapshot has a card, in rank order: plain words for its levels, the
    campaigns it suits, its figures formatted for people, its ten best fits linked to their
    profiles, and its whole member list in a CSV beside the page, best fit first."""
    from renderers.persona_guide import look, meaning, suits

    _, output = latest_report
    page = output.read_text(encoding="utf-8")
    personas = stored(
        warehouse,
        "SELECT persona_id, persona, size, er_level, active_rate_level, median_follower FROM clusters.profiles "
        "WHERE version = 2 ORDER BY rank",
    )
    cards = cards_of(page)
    assert [int(card["id"]) for card in cards] == [p[0] for p in personas]
    for card, (persona_id, name, size, er_level, active_rate_level, median_follower) in zip(
        cards, personas, strict=True
    ):
        body = html.unescape(card["body"])
        assert card["colour"] == look(persona_id).colour
        assert (
            name in body and meaning(er_level, active_rate_level) in body and suits(er_level, active_rate_level) in body
        )
        assert f"<dt>median followers</dt><dd>{round(median_follower):,}</dd>" in body  # no ".50" followers
        assert f"<dt>influencers</dt><dd>{size:,}</dd>" in body
        assert re.search(r"<dt>typical ER \(median\)</dt><dd>\d+\.\d\d %</dd>", body)
        assert "<dt>oldest observation</dt><dd>2026-11-01</dd>" in body  # the import's as-of date
        shown = re.findall(r'<td class="name"><a href="https://www.instagram.com/([^/"]+)/"', body)
        best = stored(
            warehouse,
            "SELECT username FROM clusters.persona_fit(2) WHERE persona = ? AND fit_rank <= 10 ORDER BY fit_rank",
            [name],
        )
        assert shown == [u for (u,) in best] and 0 < len(shown) <= 10
        (members,) = re.findall(r'<a href="(snapshot-2-members/persona-\d+\.csv)">All (\d+) member', body)
        listed = output.parent / members[0]
        with listed.open(newline="", encoding="utf-8") as file:
            rows = list(csv.DictReader(file))
        assert int(members[1]) == size == len(rows)
        assert [int(r["fit_rank"]) for r in rows] == list(range(1, size + 1))
        assert [r["username"] for r in rows[: len(shown)]] == shown
        assert {r["persona_id"] for r in rows} == {str(persona_id)} and {r["snapshot_version"] for r in rows} == {"2"}


def test_the_fit_score_ranks_by_buying_intent_then_trust_within_each_persona(warehouse):
    """clusters.persona_fit: 100 x (3 x active_rate percentile + 2 x ER percentile) / 5 within the
    persona (cume_dist), one row per influencer; rank 1 the best."""
    with connect(warehouse, read_only=True) as con:
        fit = con.execute("FROM clusters.persona_fit(2)").df()
        members = con.execute(
            "SELECT username, cluster, er, active_rate FROM clusters.assignments WHERE version = 2"
        ).df()
    assert fit["username"].is_unique and len(fit) == len(members) == 40
    by_cluster = members.groupby("cluster")
    expected = (
        100
        * (
            3 * by_cluster["active_rate"].rank(method="max", pct=True)
            + 2 * by_cluster["er"].rank(method="max", pct=True)
        )
        / 5
    )
    got = fit.set_index("username")["fit_score"]
    assert got[members["username"]].to_numpy() == pytest.approx(expected.to_numpy())
    for _, persona in fit.groupby("cluster"):
        ordered = persona.sort_values("fit_rank")
        assert ordered["fit_rank"].tolist() == list(range(1, len(persona) + 1))
        assert ordered["fit_score"].is_monotonic_decreasing
        best = ordered.iloc[0]
        # Nobody in the persona beats the best fit on both counts.
        assert not ((persona["active_rate"] > best["active_rate"]) & (persona["er"] > best["er"])).any()


def test_a_persona_keeps_its_colour_from_one_report_to_the_next(warehouse):
    """Colours follow persona ids, not ranks or names: an id present in both snapshots has the
    same colour in both reports, and the personas of one report are told apart."""
    from renderers.snapshot_page import render

    pages = {}
    with connect(warehouse, read_only=True) as con:
        for version in (1, 2):
            page = render(read_report_data(con, version), [])  # the cards alone: no chart drawn
            pages[version] = {int(c["id"]): c["colour"] for c in cards_of(page)}
    shared = pages[1].keys() & pages[2].keys()
    assert shared  # some personas continued
    assert all(pages[1][i] == pages[2][i] for i in shared)
    assert len(set(pages[2].values())) == len(pages[2])
    ranks = dict(stored(warehouse, "SELECT persona_id, rank FROM clusters.profiles WHERE version = 1"))
    ranks_now = dict(stored(warehouse, "SELECT persona_id, rank FROM clusters.profiles WHERE version = 2"))
    assert any(ranks[i] != ranks_now[i] for i in shared) or len(shared) < len(pages[2])  # not by rank


def test_the_zero_line_is_counted_labelled_and_explained(warehouse):
    from renderers.snapshot_page import CHARTS, scatter

    with connect(warehouse, read_only=True) as con:
        data = read_report_data(con, 2)
    (zeros,) = stored(warehouse, "SELECT count(*) FROM clusters.assignments WHERE version = 2 AND active_rate = 0")[0]
    assert zeros == 7 and data.profiles["zero_active_rate"].sum() == zeros
    (ax,) = scatter(data).axes
    labels = [text.get_text() for text in ax.texts]
    assert f"active_rate 0 %: {zeros} influencer(s) with no comments" in labels
    assert "at 0 %" in CHARTS["scatter"][1] and "dotted" in CHARTS["scatter"][1]


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
    from renderers.snapshot_page import tree_linkage  # matplotlib: imported by this file's worker only

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
            "INSERT INTO clusters.snapshots BY NAME SELECT 1 AS version, now() AS created_at, "
            "DATE '2026-11-01' AS feature_date, ? AS n_influencers, 'x' AS data_fingerprint, 'test' AS code_version, "
            """'{"path": "scalable", "published_because": "as set"}' AS parameters, """
            "'kmeans-k2' AS published_candidate, 2 AS n_clusters",
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
                "persona_id": [1, 2],
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
    assert set(data.points["cluster"]) == {1, 2}
    assert data.top.groupby("cluster").size().to_dict() == {1: 10, 2: 10}  # the cards' best fits, not everyone
    # No previous snapshot: no moves; no hierarchical candidate stored: no tree.
    from renderers.snapshot_page import draw, render

    page = render(data, draw(data))
    assert page.count("data:image/png;base64,") == 4 and len(cards_of(page)) == 2


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--virtual-time-budget=10000",
]


def chromium(*args) -> str:
    """Headless Chromium on a local page, every host name resolving to nothing (anything the
    page needed from a network would be missing); its stdout."""
    if shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    return headless_chromium(CHROMIUM_FLAGS, *args).stdout


def headless_dom(page) -> str:
    """The DOM headless Chromium builds from a local page."""
    return chromium("--dump-dom", page.as_uri())


# Run in the page once loaded: what a reader sees, as JSON in an attribute of <body>.
PROBE = """<script>window.addEventListener('load', () => document.body.setAttribute('data-rendered', JSON.stringify({
  images: [...document.images].map(i => [i.closest('section').id, i.parentElement.id, i.complete, i.naturalWidth,
                                         i.naturalHeight]),
  cards: [...document.querySelectorAll('article.persona')].map(a => ({
    id: Number(a.dataset.personaId), colour: getComputedStyle(a).borderTopColor,
    visible: a.getBoundingClientRect().height > 100,
    links: [...a.querySelectorAll('table.top a')].map(l => [l.textContent, l.href]),
    members: a.querySelector('p.members a').href})),
})));</script></body>"""


def rgb(colour: str) -> str:
    return "rgb({}, {}, {})".format(*(int(colour[i : i + 2], 16) for i in (1, 3, 5)))


@pytest.mark.e2e  # a browser start
def test_the_report_shows_its_cards_best_fits_and_appendix_in_headless_chromium(warehouse, tmp_path):
    """Chromium opens the report from disk: a card per persona in its colour, with its best fits
    linked to their profiles and a link to its member list (a file beside the page); every chart
    decoded, the diagnostics in the appendix; and a screenshot of the first screen."""
    from renderers.persona_guide import look

    output = tmp_path / "report.html"
    assert cli("report", "-w", warehouse, "-o", output).returncode == 0
    probed = tmp_path / "probed.html"  # beside the report: its member-list links resolve alike
    probed.write_text(output.read_text(encoding="utf-8").replace("</body>", PROBE), encoding="utf-8")
    seen = json.loads(html.unescape(re.search(r'data-rendered="([^"]*)"', headless_dom(probed)).group(1)))

    assert [key for _, key, *_ in seen["images"]] == CHARTS
    assert [key for section, key, *_ in seen["images"] if section == "appendix"] == APPENDIX
    for _, key, complete, width, height in seen["images"]:
        assert complete and width > 200 and height > 150, (key, width, height)
    personas = stored(warehouse, "SELECT persona_id, size FROM clusters.profiles WHERE version = 2 ORDER BY rank")
    assert [card["id"] for card in seen["cards"]] == [persona_id for persona_id, _ in personas]
    for card, (persona_id, size) in zip(seen["cards"], personas, strict=True):
        assert card["visible"] and card["colour"] == rgb(look(persona_id).colour)
        assert len(card["links"]) == min(size, 10)
        for username, link in card["links"]:
            assert link == f"https://www.instagram.com/{username}/"
        members = Path(card["members"].removeprefix("file://"))
        assert members.parent == tmp_path / "report-members" and members.is_file()
    screenshot = tmp_path / "report-first-screen.png"
    chromium("--window-size=1400,900", f"--screenshot={screenshot}", output.as_uri())
    assert screenshot.stat().st_size > 20_000


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
