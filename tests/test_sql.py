"""`kic sql` on a real published copy: one read-only SELECT-like statement, no file reached
beyond the copy and its Parquet folder, time and rows bounded. Every refused statement is
tried for real, and every file under the test's folder (the warehouse, the copy, its
partitions) is hashed before and after."""

from datetime import date
from pathlib import Path

import duckdb
import pytest

from pipeline.storage import connect, publish_copy
from sandbox.synthetic import Population
from support import Files, assert_one_line_error, cli, derive, synthetic_crawl
from warehouse.publish import published_dir

DAY = date(2026, 6, 1)
INFLUENCERS = 40


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A folder holding a warehouse with one crawl and its features, its published copy, and
    a file of the user's (secret.csv) that no query may read."""
    folder = tmp_path_factory.mktemp("sql")
    warehouse = folder / "data" / "warehouse.duckdb"
    with connect(warehouse) as con:
        synthetic_crawl(con, Population(INFLUENCERS, seed=6), DAY)
        derive(con, DAY)
    publish_copy(warehouse, warehouse.with_name("analytics.duckdb"))
    (folder / "secret.csv").write_text("password\nhunter2\n")
    (folder / "exports").mkdir()
    return folder


@pytest.fixture
def warehouse(root) -> Path:
    return root / "data" / "warehouse.duckdb"


# (statement, a fragment of the one-line error it must give); {names} are paths of `places`.
REFUSED = [
    ("COPY (SELECT 1) TO '{root}/any.csv'", "refuses COPY"),
    ("COPY (SELECT 'x') TO '{warehouse}' (FORMAT csv)", "refuses COPY"),
    ("COPY (SELECT 'x') TO '{copy}' (FORMAT csv)", "refuses COPY"),
    ("COPY (SELECT 1) TO '{partition}' (FORMAT parquet)", "refuses COPY"),  # inside the copy's own folder
    ("COPY raw.crawl_runs FROM '{root}/secret.csv'", "refuses COPY"),
    ("EXPORT DATABASE '{root}/exported'", "refuses EXPORT DATABASE"),
    ("ATTACH '{warehouse}' AS scheduler", "refuses ATTACH"),
    ("DETACH analytics", "refuses DETACH"),
    ("INSTALL httpfs", "refuses INSTALL and LOAD"),
    ("LOAD httpfs", "refuses INSTALL and LOAD"),
    ("SET enable_external_access = true", "refuses SET"),
    ("SET lock_configuration = false", "refuses SET"),
    ("RESET max_execution_time", "refuses SET"),
    ("PRAGMA threads = 1", "refuses SET"),  # DuckDB's parser reads it as SET
    ("PRAGMA show_tables", "refuses PRAGMA"),
    ("CALL pragma_version()", "refuses CALL"),
    ("CHECKPOINT", "refuses CALL"),
    ("EXPLAIN ANALYZE COPY (SELECT 1) TO '{root}/explained.csv'", "refuses EXPLAIN"),
    ("UPDATE EXTENSIONS", "refuses this kind of statement"),
    ("DELETE FROM raw.crawl_runs", "read-only"),
    ("CREATE TEMP TABLE t AS SELECT 1", "read-only"),
    ("SELECT 1; COPY (SELECT 1) TO '{root}/second.csv'", "one statement at a time"),
    ("SELECT 1; SELECT 2", "one statement at a time"),
    ("PIVOT raw.account_outcomes ON status USING count(*)", "refuses PIVOT without IN"),
    ("SELECT * FROM read_csv('{root}/secret.csv')", 'Cannot access file "{root}/secret.csv"'),
    ("SELECT * FROM read_csv('/etc/passwd')", "beyond the analysts' copy"),
    ("SELECT * FROM read_text('{root}/secret.csv')", "beyond the analysts' copy"),
    ("SELECT * FROM read_blob('{warehouse}')", "beyond the analysts' copy"),
    ("SELECT * FROM glob('{root}/*')", "beyond the analysts' copy"),
    ("SELECT * FROM '{root}/secret.csv'", "beyond the analysts' copy"),
    ("SELECT * FROM read_csv('http://127.0.0.1:9/x.csv')", "beyond the analysts' copy"),
    ("   ", "no SQL statement"),
]


def places(root: Path) -> dict[str, Path]:
    copy = root / "data" / "analytics.duckdb"
    partitions = published_dir(copy) / "features" / "influencer_features"
    return {
        "root": root,
        "warehouse": root / "data" / "warehouse.duckdb",
        "copy": copy,
        "partition": next(partitions.glob("*.parquet")),
    }


@pytest.mark.parametrize(("statement", "says"), REFUSED, ids=[s.strip()[:40] or "blank" for s, _ in REFUSED])
def test_a_refused_statement_is_one_line_and_touches_no_file(root, warehouse, statement, says):
    before = Files(root)
    result = cli("sql", "-w", warehouse, statement.format(**places(root)))
    assert_one_line_error(result, says.format(**places(root)))
    assert Files(root) == before  # nothing written, nothing removed, the warehouse and the copy intact


def test_an_attach_attempt_leaves_the_warehouse_free_for_runs(warehouse):
    assert_one_line_error(cli("sql", "-w", warehouse, f"ATTACH '{warehouse}' AS scheduler"), "ATTACH")
    with connect(warehouse, lock_wait_seconds=0) as con:  # not held: a run opens it at once
        assert con.execute("SELECT count(*) FROM raw.crawl_runs").fetchall() == [(1,)]


def test_select_like_statements_read_the_copy_and_its_partitions(warehouse):
    def csv(statement):
        result = cli("sql", "-w", warehouse, "-f", "csv", statement)
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()

    # features.influencer_features is a view over Parquet files in the copy's folder.
    assert csv("SELECT count(*) AS n FROM features.influencer_features") == ["n", str(INFLUENCERS)]
    assert "username" in csv("DESCRIBE features.influencer_features")[1]
    assert csv("FROM raw.crawl_runs SELECT crawl_id") == ["crawl_id", "1"]
    pivot = "PIVOT raw.account_outcomes ON status IN ('ok') USING count(*) GROUP BY crawl_id"
    assert csv(pivot)[0] == "crawl_id,ok"
    assert csv("WITH d AS (SELECT DISTINCT feature_date FROM features.influencer_features) TABLE d;") == [
        "feature_date",
        str(DAY),
    ]


def test_the_row_limit_refuses_a_result_larger_than_it(warehouse, monkeypatch):
    monkeypatch.setenv("KIC_SQL_MAX_ROWS", "10")
    at_limit = cli("sql", "-w", warehouse, "-f", "csv", "SELECT * FROM range(10)")
    assert at_limit.returncode == 0 and len(at_limit.stdout.splitlines()) == 11
    assert_one_line_error(
        cli("sql", "-w", warehouse, "SELECT * FROM range(11)"), "more than 10 rows", "KIC_SQL_MAX_ROWS"
    )


def test_the_time_limit_stops_a_long_query(warehouse, monkeypatch):
    monkeypatch.setenv("KIC_SQL_TIMEOUT_SECONDS", "0.05")
    long = "SELECT sum(a.range * b.range) FROM range(100000) a, range(100000) b"  # 10^10 rows: many seconds
    assert_one_line_error(cli("sql", "-w", warehouse, long), "ran for 0.05 s", "KIC_SQL_TIMEOUT_SECONDS")


def test_allow_files_reads_and_writes_the_named_folder_only(root, warehouse):
    exports = root / "exports"
    target = exports / "features.parquet"
    written = cli(
        "sql",
        "-w",
        warehouse,
        "--allow-files",
        exports,
        "-f",
        "csv",
        f"COPY features.influencer_features TO '{target}'",
    )
    assert written.returncode == 0, written.stderr
    assert written.stdout.splitlines() == ["Count", str(INFLUENCERS)]
    with duckdb.connect() as con:
        assert con.execute(f"SELECT count(*) FROM '{target}'").fetchall() == [(INFLUENCERS,)]
    back = cli("sql", "-w", warehouse, "--allow-files", exports, "-f", "csv", f"SELECT count(*) AS n FROM '{target}'")
    assert back.stdout.splitlines() == ["n", str(INFLUENCERS)]
    # Still nowhere else, and still one statement of the accepted kinds.
    before = Files(root / "data")
    for statement, says in [
        (f"COPY (SELECT 'x') TO '{warehouse}' (FORMAT csv)", "beyond the analysts' copy"),
        (f"SELECT * FROM read_csv('{root}/secret.csv')", "beyond the analysts' copy"),
        (f"ATTACH '{warehouse}' AS scheduler", "refuses ATTACH"),
        (f"EXPORT DATABASE '{exports}/db'", "refuses EXPORT DATABASE"),
    ]:
        assert_one_line_error(cli("sql", "-w", warehouse, "--allow-files", exports, statement), says)
    assert Files(root / "data") == before
    assert not (exports / "db").exists()


def test_allow_files_refuses_a_folder_holding_the_warehouse_or_the_copy(root, warehouse):
    for folder in (root, root / "data", published_dir(root / "data" / "analytics.duckdb")):
        result = cli("sql", "-w", warehouse, "--allow-files", folder, "SELECT 1")
        assert_one_line_error(result, f"--allow-files {folder}", "overlaps")
    assert_one_line_error(cli("sql", "-w", warehouse, "--allow-files", root / "none", "SELECT 1"), "no such folder")
