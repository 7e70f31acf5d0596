"""`kic export` on a real warehouse and its analysts' copy: each format read back, the persona
filter, the jump flag, atomic writes and one-line errors."""

import csv
import resource
import subprocess
import sys
from datetime import date, timedelta

import duckdb
import pytest

from conftest import assert_one_line_error, cli, derive, subprocess_env, synthetic_crawl
from models.config import ClusteringConfig
from models.recluster import recluster
from sandbox.synthetic import Population
from transforms.features import load_clusterable
from warehouse import export as export_module
from warehouse.db import connect
from warehouse.publish import publish_copy, published_dir
from warehouse.snapshots import write_snapshot

FIRST = date(2026, 4, 1)
SNAPSHOT_DAY = FIRST + timedelta(days=28)
# Day 0, then every day from 21 to 28: growth over 7 and 28 days, and 7 daily rates before day 28.
CRAWL_DAYS = [FIRST] + [FIRST + timedelta(days=n) for n in range(21, 29)]
CLUSTERING = ClusteringConfig(kmeans_k=[3], kmedoids_k=[], elbow_k=[1], publish="kmeans-k3", min_personas=3)
COLUMNS = [
    "username",
    "profile_url",
    "persona",
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
]
# What each exported row must say, computed here from the stored tables by the crafted dates.
EXPECTED = """
SELECT a.username, 'https://www.instagram.com/' || a.username || '/', a.persona, now.follower,
       follower_tier(now.follower), a.er, a.active_rate,
       now.follower - week.follower, (now.follower - week.follower) * 100.0 / week.follower,
       now.follower - month.follower, (now.follower - month.follower) * 100.0 / month.follower,
       now.observed_on::VARCHAR
FROM clusters.assignments AS a
JOIN features.influencer_features AS now ON now.username = a.username AND now.feature_date = $today
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
        write_snapshot(con, recluster(load_clusterable(con, SNAPSHOT_DAY), CLUSTERING, SNAPSHOT_DAY))
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
    """Columns and rows of an exported file, read with the library of its format."""
    if path.suffix == ".xlsx":
        from openpyxl import load_workbook  # here: only this file's worker pays for importing it

        sheet = load_workbook(path, read_only=True).active
        header, *rows = sheet.iter_rows(values_only=True)
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
    got = sorted((*row[:-2], str(row[-1])) for row in rows)  # the jump flag: see the next test
    assert len(got) == len(expected) > 0
    for row, want in zip(got, sorted(expected), strict=True):
        assert row[:5] == want[:5] and row[-1] == want[-1] == str(SNAPSHOT_DAY)  # observed that day
        assert row[5:-1] == pytest.approx(want[5:-1])
    assert all(row[7] is not None and row[9] is not None for row in rows)  # growth over 7 and 28 days


def test_rows_come_best_persona_first_and_the_jump_flag_marks_the_doubled_account(warehouse, tmp_path):
    output = tmp_path / "out.csv"
    export(warehouse, "1", "--format", "csv", "-o", output)
    with output.open(newline="") as file:
        rows = list(csv.DictReader(file))
    ranks = dict(stored(warehouse, "SELECT persona, min(rank) FROM clusters.profiles GROUP BY ALL"))
    assert [ranks[r["persona"]] for r in rows] == sorted(ranks[r["persona"]] for r in rows)
    jumped = [r["username"] for r in rows if r["follower_jump"] == "true"]
    doubled = "SELECT min(username) FROM raw.profiles WHERE crawl_id = (SELECT max(crawl_id) FROM raw.crawl_runs) "
    assert jumped == list(stored(warehouse, doubled + "AND NOT is_private")[0])
    assert {r["follower_jump"] for r in rows if r["username"] not in jumped} == {"false"}


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
def test_xlsx_is_refused_above_excels_row_limit_before_anything_is_written(tmp_path, monkeypatch, influencers, refused):
    """At the limit: the header and the rows must fit a sheet (a sheet of 100 rows stands for
    Excel's 1,048,576, so that the test writes 100 rows, not a million)."""
    assert export_module.EXCEL_MAX_ROWS == 1_048_576  # Excel's rows per sheet
    monkeypatch.setattr(export_module, "EXCEL_MAX_ROWS", 100)
    warehouse = tmp_path / "warehouse.duckdb"
    with connect(warehouse) as con:  # a crafted snapshot of `influencers` influencers
        con.execute(
            "INSERT INTO clusters.snapshots BY NAME SELECT 1 AS version, now() AS created_at, "
            "DATE '2026-04-29' AS feature_date, $n AS n_influencers, 'x' AS data_fingerprint, "
            "'test' AS code_version, '{}' AS parameters, 'kmeans-k1' AS published_candidate, 1 AS n_clusters",
            {"n": influencers},
        ).fetchall()
        con.execute(
            "INSERT INTO clusters.profiles BY NAME SELECT 1 AS version, 1 AS cluster, $n AS size, "
            "1 AS mean_er, 1 AS median_er, 1 AS mean_active_rate, 1 AS median_active_rate, "
            "'low' AS er_level, 'low' AS active_rate_level, 'Lowest benefit' AS persona, 1 AS rank",
            {"n": influencers},
        ).fetchall()
        con.execute(
            "INSERT INTO clusters.assignments BY NAME SELECT 1 AS version, 'user' || i AS username, 1 AS cluster, "
            "'Lowest benefit' AS persona, 1 AS er, 1 AS active_rate FROM range($n) AS t(i)",
            {"n": influencers},
        ).fetchall()
    output = tmp_path / "all.xlsx"
    result = cli("export", "-w", warehouse, "-o", output)
    if refused:
        assert_one_line_error(result, f"{influencers} influencers", "(100 rows with the header)", "csv or parquet")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["warehouse.duckdb"]
    else:
        assert result.returncode == 0, result.stderr
        from openpyxl import load_workbook

        assert load_workbook(output, read_only=True).active.max_row == 1 + influencers


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
