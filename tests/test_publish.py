"""The analysts' copy: a small DuckDB file of small tables and views over Parquet partitions,
published incrementally. Real DuckDB files; each test publishes its own copy of the
session's pipeline warehouse (conftest.pipeline_warehouse)."""

import json
import re
import shutil
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import duckdb
import pytest

from pipeline.storage import connect, publish_copy
from sandbox.synthetic import Population
from support import PIPELINE_CLUSTERING as CLUSTERING
from support import PIPELINE_NIGHTS as NIGHTS
from support import REPO, assert_one_line_error, cli, derive, fill, synthetic_crawl
from warehouse.publish import PARTITIONED, published_dir

# The analysts' example queries: the README's, and those of docs/sql.md and docs/personas.md.
README_QUERIES = [
    q.strip()
    for page in ("README.md", "docs/sql.md", "docs/personas.md")
    for block in re.findall(r"```sql\n(.*?)```", (REPO / page).read_text(encoding="utf-8"), flags=re.S)
    for q in block.split(";")
    if q.strip()
]
DUCKDB_CLI = Path(sys.executable).parent / "duckdb"
# What the copy leaves out (see docs/sql.md): posts, and the view built on them.
NOT_IN_COPY = {"raw.posts", "staging.media_means"}


@pytest.fixture
def warehouse(pipeline_warehouse, tmp_path):
    """This test's own warehouse (a copy of the session's pipeline warehouse), not published yet."""
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(pipeline_warehouse, path)
    return path


@pytest.fixture
def copy(warehouse):
    return warehouse.with_name("analytics.duckdb")


def rows(source, sql, params=None):
    """A query's rows, from a DuckDB file (opened for this query) or an open connection."""
    if isinstance(source, duckdb.DuckDBPyConnection):
        return source.execute(sql, params).fetchall()
    with duckdb.connect(str(source), read_only=True) as con:
        return con.execute(sql, params).fetchall()


def relations(path) -> list[str]:
    """Every table and view of a DuckDB file, as schema.name."""
    sql = (
        "SELECT schema_name || '.' || table_name FROM duckdb_tables() WHERE NOT internal "
        "UNION ALL SELECT schema_name || '.' || view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1"
    )
    return [name for (name,) in rows(path, sql)]


def sorted_rows(path, sql) -> list:
    return sorted(rows(path, sql), key=repr)


def files(copy) -> dict[Path, int]:
    """The partition files, with their modification times (ns)."""
    return {path: path.stat().st_mtime_ns for path in published_dir(copy).rglob("*") if path.is_file()}


def partitions(copy, table) -> list[Path]:
    schema, name = table.split(".")
    return sorted((published_dir(copy) / schema / name).glob("*.parquet"))


def test_the_copy_answers_every_query_as_the_warehouse_does(warehouse, copy):
    publish_copy(warehouse, copy)
    size = copy.stat().st_size, warehouse.stat().st_size
    # Each file opened once for the whole comparison (opening one costs more than most queries).
    with duckdb.connect(str(copy), read_only=True) as copied, duckdb.connect(str(warehouse), read_only=True) as kept:
        compare_every_query(kept, copied)
    assert size[0] < size[1]


def compare_every_query(warehouse, copy):
    assert relations(copy) == relations(warehouse)
    for name in relations(warehouse):
        if name in NOT_IN_COPY:
            continue
        columns = f"SELECT column_name, column_type FROM (DESCRIBE {name})"
        assert rows(copy, columns) == rows(warehouse, columns), name
        assert sorted_rows(copy, f"FROM {name}") == sorted_rows(warehouse, f"FROM {name}"), name
    comments = "SELECT table_name, column_name, comment FROM duckdb_columns() WHERE comment IS NOT NULL ORDER BY ALL"
    assert ("profiles", "mean_er", "mean ER of the cluster, percent") in rows(warehouse, comments)
    assert rows(copy, comments) == rows(warehouse, comments)  # units travel with the copy
    for query in README_QUERIES:
        assert sorted_rows(copy, query) == sorted_rows(warehouse, query), query
    # Not a vacuous comparison: every partitioned table has rows, the copy is small.
    for table in PARTITIONED:
        assert rows(copy, f"SELECT count(*) FROM {table}")[0][0] > 0, table
        assert rows(copy, "SELECT count(*) FROM duckdb_views() WHERE schema_name || '.' || view_name = ?", [table])
    assert rows(copy, "SELECT count(*) FROM clusters.latest_assignments")[0][0] > 0
    assert rows(copy, "SELECT DISTINCT table_name FROM quality.quarantined_rows") == [("raw.profiles",)]


def test_posts_are_left_out_of_the_copy_and_say_so(warehouse, copy):
    publish_copy(warehouse, copy)
    assert rows(warehouse, "SELECT count(*) FROM raw.posts")[0][0] > 0
    for name in NOT_IN_COPY:
        with pytest.raises(duckdb.Error, match=r"raw\.posts is not in the analysts' copy"):
            rows(copy, f"SELECT count(*) FROM {name}")
    # ...and nothing of them was written.
    assert not (published_dir(copy) / "raw" / "posts").exists()


def test_a_second_publish_with_nothing_changed_writes_no_partition(warehouse, copy):
    publish_copy(warehouse, copy)
    before = files(copy)
    assert len(before) >= len(PARTITIONED)
    publish_copy(warehouse, copy)
    assert files(copy) == before


def test_rederiving_a_date_replaces_that_dates_partition_only(warehouse, copy):
    publish_copy(warehouse, copy)
    old = partitions(copy, "features.influencer_features")
    assert [p.name[:10] for p in old] == [str(d) for d in NIGHTS]
    before = files(copy)
    with connect(warehouse) as con:
        derive(con, NIGHTS[0])
    publish_copy(warehouse, copy)

    new = partitions(copy, "features.influencer_features")
    assert not old[0].exists() and new[1] == old[1]  # the other date's file is untouched
    assert new[0].name[:10] == str(NIGHTS[0]) and new[0] != old[0]
    assert {p: t for p, t in files(copy).items() if p != new[0]} == {p: t for p, t in before.items() if p != old[0]}
    newest = "SELECT max(computed_at), count(*) FROM features.influencer_features WHERE feature_date = ?"
    assert rows(copy, newest, [NIGHTS[0]]) == rows(warehouse, newest, [NIGHTS[0]])


def test_a_new_crawl_adds_its_partitions_and_keeps_the_others(warehouse, copy):
    publish_copy(warehouse, copy)
    before = files(copy)
    with connect(warehouse) as con:
        crawl_id = synthetic_crawl(con, Population(30, seed=5), date(2026, 6, 9))
    publish_copy(warehouse, copy)
    after = files(copy)
    assert {p: t for p, t in after.items() if p in before} == before
    added = sorted(p.relative_to(published_dir(copy)).parts[:2] for p in set(after) - set(before))
    assert added == [("raw", "account_outcomes"), ("raw", "profiles")]
    count = "SELECT count(*) FROM raw.profiles WHERE crawl_id = ?"
    assert rows(copy, count, [crawl_id]) == [(30,)]


def test_a_running_crawl_is_published_as_far_as_it_got(warehouse, copy):
    with connect(warehouse) as con:
        crawl_id = synthetic_crawl(con, Population(30, seed=5), date(2026, 6, 9))
        con.execute("UPDATE raw.crawl_runs SET status = 'running', finished_at = NULL WHERE crawl_id = ?", [crawl_id])
    publish_copy(warehouse, copy)
    count = "SELECT count(*) FROM raw.profiles WHERE crawl_id = ?"
    assert rows(copy, count, [crawl_id]) == [(30,)]
    with connect(warehouse) as con:  # more of the running crawl is loaded
        con.execute(
            "INSERT INTO raw.profiles (crawl_id, username, fetched_at) SELECT ?, 'late_one', now()", [crawl_id]
        ).fetchall()
    publish_copy(warehouse, copy)
    assert rows(copy, count, [crawl_id]) == [(31,)]


def test_missing_or_damaged_partitions_and_a_missing_copy_are_rebuilt(warehouse, copy):
    publish_copy(warehouse, copy)
    expected = sorted_rows(copy, "FROM features.influencer_features")
    listed = sorted(files(copy))
    deleted, damaged = partitions(copy, "features.influencer_features")
    deleted.unlink()
    damaged.write_bytes(damaged.read_bytes()[:100])  # cut short
    copy.unlink()
    (published_dir(copy) / "raw" / "profiles" / "leftover.parquet.tmp").write_bytes(b"PAR1")

    publish_copy(warehouse, copy)
    assert sorted(files(copy)) == listed  # the same files, the leftover gone
    assert sorted_rows(copy, "FROM features.influencer_features") == expected

    shutil.rmtree(published_dir(copy))
    publish_copy(warehouse, copy)
    assert sorted(files(copy)) == listed
    assert sorted_rows(copy, "FROM features.influencer_features") == expected


def test_an_open_session_on_the_copy_does_not_block_a_publish(warehouse, copy):
    publish_copy(warehouse, copy)
    script = textwrap.dedent(f"""
        import duckdb, sys
        con = duckdb.connect({str(copy)!r}, read_only=True)
        print(con.execute("SELECT count(*) FROM watchlist.accounts").fetchall()[0][0], flush=True)
        sys.stdin.readline()  # hold the file until told
        print(con.execute("SELECT count(*) FROM watchlist.accounts").fetchall()[0][0], flush=True)
    """)
    holder = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "2"  # the session holds the copy now
        with connect(warehouse) as con:
            con.execute("INSERT INTO watchlist.accounts VALUES ('new_one', now(), 'manual', true)").fetchall()
        publish_copy(warehouse, copy, lock_wait_seconds=5)
        out, _ = holder.communicate("go\n", timeout=30)
    finally:
        holder.kill()
    assert holder.returncode == 0 and out.strip() == "2"  # it kept what it opened, unbroken
    assert rows(copy, "SELECT count(*) FROM watchlist.accounts") == [(3,)]


def test_the_copy_reads_only_its_folder_and_opens_in_the_duckdb_cli(warehouse, copy):
    publish_copy(warehouse, copy)
    features = "SELECT count(*), max(feature_date) FROM features.influencer_features"
    expected = rows(warehouse, features)
    # What `kic sql` will do: no access outside the published folder.
    with duckdb.connect(str(copy), read_only=True) as con:
        con.execute("SET allowed_directories = ?", [[str(published_dir(copy)) + "/"]])
        con.execute("SET enable_external_access = false")
        assert con.execute(features).fetchall() == expected
        with pytest.raises(duckdb.PermissionException):
            con.execute(f"FROM read_parquet('{copy.parent}/elsewhere.parquet')")
    cli = subprocess.run(
        [str(DUCKDB_CLI), "-readonly", "-csv", "-noheader", str(copy)],
        input=features + ";\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.strip() == f"{expected[0][0]},{expected[0][1]}"


# No room at all: the new snapshot's partition fails; room for partitions: the copy itself fails.
@pytest.mark.parametrize("room", [0, 256 * 1024], ids=["partition", "copy"])
def test_a_full_disk_while_publishing_says_what_is_stored_and_leaves_no_temporary_file(
    warehouse, small_disk, monkeypatch, room
):
    copy = small_disk / "analytics.duckdb"
    publish_copy(warehouse, copy)  # the copy as analysts have it, two snapshots
    snapshots = "SELECT count(*) FROM clusters.snapshots"
    assert rows(copy, snapshots) == [(2,)]
    before = {path: path.read_bytes() for path in small_disk.rglob("*") if path.is_file()}
    filler = fill(small_disk, room)
    monkeypatch.setenv("KIC_ANALYTICS_COPY", str(copy))
    for name, value in CLUSTERING.items():
        monkeypatch.setenv(f"KIC_CLUSTERING__{name.upper()}", value if isinstance(value, str) else json.dumps(value))

    result = cli("recluster", "--force", "-w", warehouse)  # same data as snapshot 2: forced

    assert_one_line_error(
        result, f"snapshot 3: stored in the warehouse {warehouse}", f"analysts' copy {copy}", "no space left"
    )
    assert rows(warehouse, snapshots) == [(3,)]
    # Nothing left half-written on the full disk (a new partition may stay: it is whole, and
    # listed by the next copy), and what analysts had is as it was.
    after = {path: path.read_bytes() for path in small_disk.rglob("*") if path.is_file() and path != filler}
    assert {path: content for path, content in after.items() if path in before} == before
    assert [path.name for path in set(after) - set(before) if not path.name.endswith(".parquet")] == []
    assert rows(copy, snapshots) == [(2,)]
    filler.unlink()  # room again: the next publish catches up
    publish_copy(warehouse, copy)
    assert rows(copy, snapshots) == [(3,)]


def test_kic_recluster_date_clusters_the_feature_date_asked_for(warehouse, monkeypatch):
    """An older feature date, not the latest: what reproducing the study on a warehouse in use needs."""
    for name, value in CLUSTERING.items():
        monkeypatch.setenv(f"KIC_CLUSTERING__{name.upper()}", value if isinstance(value, str) else json.dumps(value))
    result = cli("recluster", "--date", NIGHTS[0].isoformat(), "-w", warehouse)
    assert result.returncode == 0, result.stderr
    assert rows(warehouse, "SELECT feature_date FROM clusters.snapshots ORDER BY version DESC LIMIT 1") == [
        (NIGHTS[0],)
    ]
    assert_one_line_error(cli("recluster", "--date", "2001-01-01", "-w", warehouse), "no features for 2001-01-01")
