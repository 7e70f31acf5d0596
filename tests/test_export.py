"""`kic export` on a real warehouse and its analysts' copy: each format read back, the persona
filter, the jump flag, atomic writes and one-line errors."""

import csv
import resource
import subprocess
import sys
from datetime import date, datetime, timedelta

import duckdb
import pytest

from models.config import ClusteringConfig
from models.recluster import recluster
from pipeline.storage import connect, publish_copy
from sandbox.synthetic import Population
from support import assert_one_line_error, cli, derive, store_new_snapshot, subprocess_env, synthetic_crawl
from transforms import export as export_module
from transforms.features import load_clusterable
from warehouse.publish import published_dir

FIRST = date(2026, 4, 1)
SNAPSHOT_DAY = FIRST + timedelta(days=28)
# Day 0, then every day from 21 to 28: growth over 7 and 28 days, and 7 daily rates before day 28.
CRAWL_DAYS = [FIRST] + [FIRST + timedelta(days=n) for n in range(21, 29)]
CLUSTERING = ClusteringConfig(kmeans_k=[3], kmedoids_k=[], elbow_k=[1], publish="kmeans-k3", min_personas=3)
COLUMNS = [
    "username",
    "profile_url",
    "persona",
    "persona_id",
    "fit_rank",
    "fit_score",
    "followers",
    "follower_tier",
    "er_pct",
    "active_rate_pct",
    "follower_growth_7d",
    "follower_growth_7d_pct",
    "follower_growth_28d",
    "follower_growth_28d_pct",
    "follower_jump",
    "observed_on",
    "feature_date",
    "snapshot_version",
]
JUMP = COLUMNS.index("follower_jump")
# What each exported row must say, computed here from the stored tables by the crafted dates.
EXPECTED = """
SELECT a.username, 'https://www.instagram.com/' || a.username || '/', a.persona, p.persona_id, fit.fit_rank,
       fit.fit_score, now.follower, follower_tier(now.follower), a.er, a.active_rate,
       now.follower - week.follower, (now.follower - week.follower) * 100.0 / week.follower,
       now.follower - month.follower, (now.follower - month.follower) * 100.0 / month.follower,
       runs.as_of_date, now.feature_date, a.version
FROM clusters.assignments AS a
JOIN clusters.profiles AS p USING (version, cluster)
JOIN clusters.persona_fit(1) AS fit USING (username)
JOIN features.influencer_features AS now ON now.username = a.username AND now.feature_date = $today
JOIN raw.crawl_runs AS runs ON runs.crawl_id = now.crawl_id
JOIN features.influencer_features AS week ON week.username = a.username AND week.feature_date = $today - 7
JOIN features.influencer_features AS month ON month.username = a.username AND month.feature_date = $today - 28
WHERE a.version = 1
"""


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    """60 synthetic influencers crawled on day 0 and days 21 to 28, one of them doubling its
    followers on day 28; a snapshot of day 28; the analysts' copy published."""
    path = tmp_path_factory.mktemp("export") / "warehouse.duckdb"
    population = Population(60, seed=5)
    with connect(path) as con:
        for day in CRAWL_DAYS:
            crawl_id = synthetic_crawl(con, population, day)
            if day == SNAPSHOT_DAY:
                con.execute(
                    "UPDATE raw.profiles SET followers = followers * 2 WHERE crawl_id = ? AND username = "
                    "(SELECT min(username) FROM raw.profiles WHERE crawl_id = ? AND NOT is_private)",
                    [crawl_id, crawl_id],
                ).fetchall()
            derive(con, day)
        store_new_snapshot(con, recluster(load_clusterable(con, SNAPSHOT_DAY), CLUSTERING, SNAPSHOT_DAY))
    publish_copy(path, path.with_name("analytics.duckdb"))
    return path


def stored(warehouse, sql, params=None):
    with connect(warehouse, read_only=True) as con:
        return con.execute(sql, params).fetchall()


def export(warehouse, *args):
    result = cli("export", "-w", warehouse, *args)
    assert result.returncode == 0, result.stderr
    return result


def read_back(path) -> tuple[list[str], list[tuple]]:
    """Columns and rows of an exported file, read with the library of its format (xlsx: every
    persona's sheet, in order; dates as dates)."""
    if path.suffix == ".xlsx":
        from openpyxl import load_workbook  # here: only this file's worker pays for importing it

        workbook = load_workbook(path, read_only=True)
        header, rows = None, []
        for name in workbook.sheetnames[1:]:  # the first is the summary
            header, *mine = workbook[name].iter_rows(values_only=True)
            rows += [tuple(v.date() if isinstance(v, datetime) else v for v in row) for row in mine]
        return list(header), rows
    with duckdb.connect() as con:
        result = con.execute("FROM read_parquet(?)" if path.suffix == ".parquet" else "FROM read_csv(?)", [str(path)])
        return [column for column, *_ in result.description], result.fetchall()


@pytest.mark.parametrize("fmt", ["csv", "parquet", "xlsx"])
def test_each_format_reads_back_one_row_per_influencer_of_the_snapshot(warehouse, tmp_path, fmt):
    output = tmp_path / f"influencers.{fmt}"
    result = export(warehouse, "-o", output)  # the format from the suffix
    assert [p.name for p in tmp_path.iterdir()] == [output.name]  # no temporary file left
    columns, rows = read_back(output)
    expected = stored(warehouse, EXPECTED, {"today": SNAPSHOT_DAY})
    assert columns == COLUMNS
    assert f"{len(expected)} influencer(s) of snapshot 1 written to {output}" in result.stdout
    got = sorted(row[:JUMP] + row[JUMP + 1 :] for row in rows)  # the jump flag: see the next test
    assert len(got) == len(expected) > 0
    for row, want in zip(got, sorted(expected), strict=True):
        assert row[:5] + row[7:8] == want[:5] + want[7:8]  # names, ids, rank, tier
        assert row[5:7] + row[8:14] == pytest.approx(want[5:7] + want[8:14])  # every digit, in every format
        assert row[14:] == want[14:] == (SNAPSHOT_DAY, SNAPSHOT_DAY, 1)  # observed, feature date, snapshot
    assert all(row[10] is not None and row[12] is not None for row in rows)  # growth over 7 and 28 days


def test_rows_come_best_persona_first_then_best_fit_and_the_jump_flag_marks_the_doubled_account(warehouse, tmp_path):
    output = tmp_path / "out.csv"
    export(warehouse, "1", "--format", "csv", "-o", output)
    with output.open(newline="") as file:
        rows = list(csv.DictReader(file))
    ranks = dict(stored(warehouse, "SELECT persona, min(rank) FROM clusters.profiles GROUP BY ALL"))
    order = [(ranks[r["persona"]], int(r["fit_rank"])) for r in rows]
    assert order == sorted(order) and order[0] == (1, 1)
    for persona in ranks:
        scores = [float(r["fit_score"]) for r in rows if r["persona"] == persona]
        assert scores == sorted(scores, reverse=True)
    jumped = [r["username"] for r in rows if r["follower_jump"] == "true"]
    doubled = "SELECT min(username) FROM raw.profiles WHERE crawl_id = (SELECT max(crawl_id) FROM raw.crawl_runs) "
    assert jumped == list(stored(warehouse, doubled + "AND NOT is_private")[0])
    assert {r["follower_jump"] for r in rows if r["username"] not in jumped} == {"false"}


def test_the_workbook_has_a_summary_then_a_sheet_per_persona_ready_to_hand_on(warehouse, tmp_path):
    """openpyxl reads what Excel shows: a summary sheet (one row per persona, linked to its
    sheet, in its colour), then each persona's sheet, best fit first: header frozen, a filter
    on every column, widths, number formats, clickable profile links, real dates."""
    from openpyxl import load_workbook

    from renderers.persona_guide import look, meaning
    from renderers.workbook import SUMMARY_COLUMNS

    output = tmp_path / "influencers.xlsx"
    export(warehouse, "-o", output)
    book = load_workbook(output)
    personas = stored(
        warehouse,
        "SELECT rank, persona, persona_id, size, er_level, active_rate_level FROM clusters.profiles "
        "WHERE version = 1 ORDER BY rank",
    )
    assert book.sheetnames == ["personas", *(f"{rank} {name}" for rank, name, *_ in personas)]

    summary = book["personas"]
    assert [c.value for c in summary[1]] == SUMMARY_COLUMNS
    assert summary.freeze_panes == "B2" and summary.auto_filter.ref == f"A1:S{1 + len(personas)}"
    col = {name: i + 1 for i, name in enumerate(SUMMARY_COLUMNS)}
    for r, (rank, name, persona_id, size, er_level, active_rate_level) in enumerate(personas, start=2):
        cell = lambda column, r=r: summary.cell(r, col[column])  # noqa: E731
        assert (cell("rank").value, cell("persona").value, cell("influencers").value) == (rank, name, size)
        assert cell("sheet").hyperlink.location == f"'{rank} {name}'!A1"
        assert cell("colour").fill.fgColor.rgb == "FF" + look(persona_id).colour[1:].upper()
        assert cell("meaning").value == meaning(er_level, active_rate_level)
        assert cell("median_followers").number_format == "#,##0"
        assert cell("median_er_pct").number_format == '0.00" %"'
        assert cell("oldest_observed_on").value.date() == SNAPSHOT_DAY  # a date, formatted as one
        assert cell("oldest_observed_on").number_format == cell("feature_date").number_format == "yyyy-mm-dd"
        assert cell("snapshot_version").value == 1

    export(warehouse, "-o", output.with_suffix(".csv"))
    with output.with_suffix(".csv").open(newline="") as file:
        machine = {row["username"]: row for row in csv.DictReader(file)}
    for rank, name, persona_id, size, *_ in personas:
        sheet = book[f"{rank} {name}"]
        assert [c.value for c in sheet[1]] == COLUMNS
        assert sheet.freeze_panes == "B2" and sheet.auto_filter.ref == f"A1:R{1 + size}"
        assert (
            sheet.max_row == 1 + size
            and sheet.sheet_properties.tabColor.rgb == "FF" + look(persona_id).colour[1:].upper()
        )
        assert sheet.column_dimensions["A"].width >= 20 and sheet.column_dimensions["B"].width >= 40
        col = {column: i + 1 for i, column in enumerate(COLUMNS)}
        ranks = [sheet.cell(r, col["fit_rank"]).value for r in range(2, size + 2)]
        assert ranks == list(range(1, size + 1))  # best fit first
        for r in range(2, size + 2):
            row = {column: sheet.cell(r, i) for column, i in col.items()}
            url = row["profile_url"]
            assert url.hyperlink.target == url.value == f"https://www.instagram.com/{row['username'].value}/"
            assert row["er_pct"].number_format == row["active_rate_pct"].number_format == '0.00" %"'
            assert row["followers"].number_format == "#,##0" and row["fit_score"].number_format == "0.0"
            assert row["observed_on"].value.date() == row["feature_date"].value.date() == SNAPSHOT_DAY
            assert row["observed_on"].number_format == "yyyy-mm-dd"
            assert (row["persona_id"].value, row["snapshot_version"].value) == (persona_id, 1)
            # The values are the csv's machine values, formatted for people, not rounded (to the 15-16
            # significant digits a spreadsheet keeps).
            assert row["er_pct"].value == pytest.approx(float(machine[row["username"].value]["er_pct"]), rel=1e-15)


def test_persona_filter_keeps_that_personas_influencers(warehouse, tmp_path):
    persona, size = stored(
        warehouse, "SELECT persona, sum(size) FROM clusters.profiles GROUP BY ALL ORDER BY 2 LIMIT 1"
    )[0]
    output = tmp_path / "one.parquet"
    export(warehouse, "--persona", persona, "-o", output)
    _, rows = read_back(output)
    assert len(rows) == size and {row[2] for row in rows} == {persona}


def test_errors_name_the_version_the_persona_or_the_format(warehouse, tmp_path):
    output = tmp_path / "out.csv"
    assert_one_line_error(cli("export", "7", "-w", warehouse, "-o", output), "no snapshot version 7")
    personas = [p for (p,) in stored(warehouse, "SELECT DISTINCT persona FROM clusters.profiles")]
    assert_one_line_error(
        cli("export", "-w", warehouse, "--persona", "Nobody", "-o", output), "'Nobody'", "snapshot 1", *personas
    )
    assert_one_line_error(cli("export", "-w", warehouse, "-o", tmp_path / "out.txt"), "--format", "out.txt")
    assert not any(tmp_path.iterdir())


def test_a_failed_export_leaves_no_file_and_the_previous_one_whole(warehouse, tmp_path):
    missing = tmp_path / "no-such-folder" / "out.csv"
    assert_one_line_error(cli("export", "-w", warehouse, "-o", missing), str(missing))
    assert not missing.parent.exists()
    # A real failure while the rows are read: the last partition file of the copy's features is damaged.
    broken = tmp_path / "warehouse.duckdb"
    broken.write_bytes(warehouse.read_bytes())
    publish_copy(broken, broken.with_name("analytics.duckdb"))
    partitions = sorted(published_dir(broken.with_name("analytics.duckdb")).glob("features/influencer_features/*"))
    partitions[-1].write_bytes(b"PAR1 damaged PAR1")
    outputs = tmp_path / "out"
    outputs.mkdir()
    for fmt in ("csv", "parquet", "xlsx"):
        previous = outputs / f"previous.{fmt}"
        previous.write_text("an earlier export")
        assert_one_line_error(cli("export", "-w", broken, "-o", previous), str(previous), partitions[-1].name)
        assert previous.read_text() == "an earlier export"
    assert sorted(p.name for p in outputs.iterdir()) == ["previous.csv", "previous.parquet", "previous.xlsx"]


@pytest.mark.parametrize("influencers,refused", [(99, False), (100, True)])
def test_xlsx_is_refused_when_a_persona_outgrows_an_excel_sheet(tmp_path, monkeypatch, influencers, refused):
    """At the limit: a persona's header and rows must fit its sheet (a sheet of 100 rows stands
    for Excel's 1,048,576, so that the test writes 100 rows, not a million). Two personas, 149
    influencers in all: the limit is per sheet. Past Excel's hyperlinks per sheet (40 here) a
    profile link is a HYPERLINK formula."""
    from renderers import workbook

    assert export_module.EXCEL_MAX_ROWS == 1_048_576  # Excel's rows per sheet
    assert workbook.MAX_LINKS_PER_SHEET == 65_530  # Excel's hyperlinks per sheet
    monkeypatch.setattr(export_module, "EXCEL_MAX_ROWS", 100)
    monkeypatch.setattr(workbook, "MAX_LINKS_PER_SHEET", 40)
    warehouse = tmp_path / "warehouse.duckdb"
    with connect(warehouse) as con:  # a crafted snapshot: `influencers` in one persona, 50 in another
        con.execute(
            "INSERT INTO clusters.snapshots BY NAME SELECT 1 AS version, now() AS created_at, "
            "DATE '2026-04-29' AS feature_date, $n + 50 AS n_influencers, 'x' AS data_fingerprint, "
            "'test' AS code_version, '{}' AS parameters, 'kmeans-k2' AS published_candidate, 2 AS n_clusters",
            {"n": influencers},
        ).fetchall()
        con.execute(
            "INSERT INTO clusters.profiles BY NAME SELECT 1 AS version, c AS cluster, "
            "CASE c WHEN 1 THEN $n ELSE 50 END AS size, c AS mean_er, c AS median_er, 1 AS mean_active_rate, "
            "1 AS median_active_rate, 'low' AS er_level, 'low' AS active_rate_level, "
            "CASE c WHEN 1 THEN 'Lowest benefit' ELSE 'Middle Interactive' END AS persona, 3 - c AS rank, "
            "c AS persona_id FROM range(1, 3) AS t(c)",
            {"n": influencers},
        ).fetchall()
        con.execute(
            "INSERT INTO clusters.assignments BY NAME SELECT 1 AS version, 'user' || i AS username, "
            "CASE WHEN i < $n THEN 1 ELSE 2 END AS cluster, "
            "CASE WHEN i < $n THEN 'Lowest benefit' ELSE 'Middle Interactive' END AS persona, "
            "1 + i / 1000 AS er, 1 AS active_rate FROM range($n + 50) AS t(i)",
            {"n": influencers},
        ).fetchall()
    output = tmp_path / "all.xlsx"
    result = cli("export", "-w", warehouse, "-o", output)
    if refused:
        assert_one_line_error(
            result, "'Lowest benefit'", f"{influencers} influencers", "(100 rows with the header)", "csv or parquet"
        )
        assert sorted(p.name for p in tmp_path.iterdir()) == ["warehouse.duckdb"]
    else:
        assert result.returncode == 0, result.stderr
        from openpyxl import load_workbook

        book = load_workbook(output)
        assert book.sheetnames == ["personas", "1 Middle Interactive", "2 Lowest benefit"]
        sheet = book["2 Lowest benefit"]
        assert sheet.max_row == 1 + influencers
        links = [sheet.cell(row, 2) for row in range(2, influencers + 2)]
        assert all(cell.hyperlink.target == cell.value for cell in links[:40])  # real links
        for cell in links[40:]:  # rows 42 on: links by formula
            assert cell.hyperlink is None and cell.value.startswith('=HYPERLINK("https://www.instagram.com/user')


@pytest.mark.e2e
def test_a_write_cut_short_leaves_no_half_file(warehouse, tmp_path):
    """`kic export` in a process whose files may not grow past 2 KiB (RLIMIT_FSIZE): every
    format's write fails part-way, as on a full disk. (The process writes no bytecode: a
    cut-short .pyc would break the next start.)"""

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))

    env = {**subprocess_env(), "PYTHONDONTWRITEBYTECODE": "1"}
    for fmt in ("csv", "parquet", "xlsx"):
        previous = tmp_path / f"previous.{fmt}"
        previous.write_text("an earlier export")
        failed = subprocess.run(
            [sys.executable, "-m", "kic", "export", "-w", str(warehouse), "-o", str(previous)],
            capture_output=True,
            text=True,
            env=env,
            preexec_fn=small_files,
            timeout=120,
        )
        assert_one_line_error(failed, str(previous))
        assert previous.read_text() == "an earlier export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["previous.csv", "previous.parquet", "previous.xlsx"]


def test_a_copy_published_with_other_views_is_refused_with_what_to_run(warehouse, tmp_path):
    older = tmp_path / "warehouse.duckdb"  # no analysts' copy beside it: export reads the warehouse
    older.write_bytes(warehouse.read_bytes())
    with duckdb.connect(str(older)) as con:  # as a kic of other views left it
        con.execute("UPDATE meta.applied_views SET fingerprint = 'views of another kic'").fetchall()
    assert_one_line_error(cli("export", "-w", older, "-o", tmp_path / "out.csv"), "kic features", str(older))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warehouse.duckdb"]
