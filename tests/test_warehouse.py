import duckdb
import pytest

from pipeline.storage import connect
from support import FETCHED_AT, append_raw, migrate_to
from transforms.relations import relations, view_sql
from warehouse import db
from warehouse.db import MIGRATIONS_DIR, apply_views, latest_version, migrate, migrations, scalar, schema_version
from warehouse.errors import KicError


def test_migrations_are_numbered_in_order_without_gaps():
    versions = [v for v, _, _ in migrations()]
    assert versions == list(range(1, len(versions) + 1))
    assert len(versions) == len(list(MIGRATIONS_DIR.glob("*.sql")))


def test_views_live_apart_from_migrations_and_exist_in_a_new_warehouse(warehouse_path):
    expected = {r.name for r in relations() if r.kind == "view"}
    with connect(warehouse_path) as con:
        made = {
            f"{s}.{n}"
            for s, n in con.execute("SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal").fetchall()
        }
        assert not apply_views(con, view_sql())  # applied once; nothing to do until a definition changes
    assert made == expected and "staging.readable_crawls" in made


def test_a_writer_without_views_leaves_the_views_as_they_are(warehouse_path):
    with connect(warehouse_path):
        pass
    with db.connect(warehouse_path) as con:
        assert scalar(con, "SELECT count(*) FROM duckdb_views() WHERE view_name = 'readable_crawls'") == 1
        assert apply_views(con, view_sql() + "\n-- an edit") and apply_views(con, view_sql())


def test_new_warehouse_has_latest_schema(warehouse_path):
    with connect(warehouse_path) as con:
        assert schema_version(con) == latest_version()
        schemas = {r[0] for r in con.execute("SELECT schema_name FROM information_schema.schemata").fetchall()}
    assert {"raw", "staging", "features", "clusters", "meta"} <= schemas


def test_opening_an_older_warehouse_upgrades_it_and_keeps_its_data(warehouse_path):
    con = duckdb.connect(str(warehouse_path))
    migrate_to(con, 1)
    assert schema_version(con) == 1
    # What a kic of schema version 1 wrote (today's writers write today's columns).
    (crawl_id,) = con.execute(
        "INSERT INTO raw.crawl_runs (source, origin, as_of_date, started_at, status) "
        "VALUES ('web', 'old', DATE '2026-01-01', now(), 'running') RETURNING crawl_id"
    ).fetchone()
    append_raw(con, "profiles", [{"crawl_id": crawl_id, "username": "kept", "followers": 5, "fetched_at": FETCHED_AT}])
    con.close()

    with connect(warehouse_path) as con:
        assert schema_version(con) == latest_version()
        assert con.execute("SELECT username, followers FROM raw.profiles").fetchall() == [("kept", 5)]
        applied = con.execute("SELECT version FROM meta.schema_migrations ORDER BY 1").fetchall()
    assert [v for (v,) in applied] == list(range(1, latest_version() + 1))


@pytest.mark.parametrize("failing", [2, latest_version()], ids=["the first pending", "the last"])
def test_failed_migration_leaves_the_schema_version_unchanged(warehouse_path, monkeypatch, failing):
    """Pending migrations go in together: one failing, even the last, leaves none of them applied."""
    con = duckdb.connect(str(warehouse_path))
    migrate_to(con, 1)
    broken = [(v, n, s if v != failing else s + "\nCREATE TABLE raw.posts (x INT);") for v, n, s in migrations()]
    monkeypatch.setattr("warehouse.db.migrations", lambda: broken)
    with pytest.raises(duckdb.Error):
        migrate(con)
    assert schema_version(con) == 1
    assert con.execute("SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'staging'").fetchall() == [
        (0,)
    ]
    con.close()


def test_read_only_open_of_a_missing_warehouse_names_it(tmp_path):
    missing = tmp_path / "nope.duckdb"
    with pytest.raises(KicError, match=r"nope\.duckdb"), connect(missing, read_only=True):
        pass
    assert not missing.exists()


def test_read_only_open_of_an_outdated_warehouse_asks_for_an_upgrade(warehouse_path):
    con = duckdb.connect(str(warehouse_path))
    migrate_to(con, 1)
    con.close()
    with pytest.raises(KicError, match="schema version 1"), connect(warehouse_path, read_only=True):
        pass
