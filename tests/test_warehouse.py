import re
import shutil
from datetime import date

import duckdb
import pandas as pd
import pytest

from sandbox.synthetic import Population
from support import FETCHED_AT, migrate_to, synthetic_crawl
from warehouse import raw
from warehouse.db import (
    MIGRATIONS_DIR,
    apply_views,
    connect,
    latest_version,
    migrate,
    migrations,
    schema_version,
    views,
)
from warehouse.errors import KicError
from warehouse.landing import Landing
from warehouse.loading import load_crawl
from warehouse.plans import NightBudget, make_plan, store_plan

GRAIN = re.compile(
    r"-- Grain: (?P<grain>[^\n]*?)(?:\n-- [^\n]*)*?Key: (?P<key>\([^)]*\)|\w+)\.?[^\n]*\n"
    r"(?:--[^\n]*\n)*CREATE (?:OR REPLACE )?(?P<kind>TABLE|VIEW) (?P<name>[\w.]+)",
)
CREATED = re.compile(r"CREATE (?:OR REPLACE )?(TABLE|VIEW) ([\w.]+)")


def current_objects() -> set[tuple[str, str]]:
    """(kind, name) of every table the migrations leave, and every view of warehouse/views/."""
    tables, dropped = set(), set()
    for _, _, sql in migrations():
        tables |= {name for kind, name in CREATED.findall(sql) if kind == "TABLE"}
        dropped |= set(re.findall(r"DROP TABLE ([\w.]+)", sql))
    shipped_views = {name for _, _, sql in views() for _, name in CREATED.findall(sql)}
    return {("TABLE", t) for t in tables - dropped} | {("VIEW", v) for v in shipped_views}


def declared_tables() -> list[tuple[str, str, tuple[str, ...]]]:
    """(name, grain, key columns) of every current table (from its migration) and view (from its file)."""
    current = current_objects()
    found = {}
    for kind, files in (("TABLE", migrations()), ("VIEW", views())):
        for _, _, sql in files:
            for m in GRAIN.finditer(sql):
                if m.group("kind") == kind and (kind, m.group("name")) in current:
                    key = tuple(c.strip() for c in m.group("key").strip("()").split(","))
                    found[m.group("name")] = (m.group("grain"), key)
    return sorted((name, grain, key) for name, (grain, key) in found.items())


def test_migrations_are_numbered_in_order_without_gaps():
    versions = [v for v, _, _ in migrations()]
    assert versions == list(range(1, len(versions) + 1))
    assert len(versions) == len(list(MIGRATIONS_DIR.glob("*.sql")))


def test_every_table_and_view_states_its_grain_and_key():
    assert {name for _, name in current_objects()} == {name for name, _, _ in declared_tables()}


def test_the_history_view_declares_its_key_so_the_key_test_covers_it():
    declared = {name: key for name, _, key in declared_tables()}
    assert declared["features.influencer_history"] == ("username", "feature_date")


def test_views_live_apart_from_migrations_and_exist_in_a_new_warehouse(warehouse_path):
    expected = {name for kind, name in current_objects() if kind == "VIEW"}
    with connect(warehouse_path) as con:
        made = {
            f"{s}.{n}"
            for s, n in con.execute("SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal").fetchall()
        }
        assert not apply_views(con)  # applied once; nothing to do until a definition changes
    assert made == expected and "staging.readable_crawls" in made


def test_new_warehouse_has_latest_schema(warehouse_path):
    with connect(warehouse_path) as con:
        assert schema_version(con) == latest_version()
        schemas = {r[0] for r in con.execute("SELECT schema_name FROM information_schema.schemata").fetchall()}
    assert {"raw", "staging", "features", "clusters", "meta"} <= schemas


def test_opening_an_older_warehouse_upgrades_it_and_keeps_its_data(warehouse_path):
    con = duckdb.connect(str(warehouse_path))
    migrate_to(con, 1)
    assert schema_version(con) == 1
    crawl_id = raw.open_run(con, "web", "old", date(2026, 1, 1))
    raw.append(con, "profiles", [{"crawl_id": crawl_id, "username": "kept", "followers": 5, "fetched_at": FETCHED_AT}])
    con.close()

    with connect(warehouse_path) as con:
        assert schema_version(con) == latest_version()
        assert con.execute("SELECT username, followers FROM raw.profiles").fetchall() == [("kept", 5)]
        applied = con.execute("SELECT version FROM meta.schema_migrations ORDER BY 1").fetchall()
    assert [v for (v,) in applied] == list(range(1, latest_version() + 1))


def test_failed_migration_leaves_the_schema_version_unchanged(warehouse_path, monkeypatch):
    con = duckdb.connect(str(warehouse_path))
    migrate_to(con, 1)
    broken = [(v, n, s if v != 2 else s + "\nCREATE TABLE raw.posts (x INT);") for v, n, s in migrations()]
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


@pytest.fixture(scope="module")
def populated(pipeline_warehouse, tmp_path_factory):
    """A warehouse filled through the real pipeline, so that every table and view has rows: the
    session's pipeline warehouse (an import with a rejected row, two validated crawls with
    quarantined rows, features, two snapshots whose personas differ for someone, a watchlist),
    plus a crawl no one has validated yet and two crawls that came through the landing area,
    each planned first (the nightly plan's tables)."""
    tmp = tmp_path_factory.mktemp("keys")
    path = tmp / "warehouse.duckdb"
    shutil.copy(pipeline_warehouse, path)
    with connect(path) as con:
        synthetic_crawl(con, Population(12, seed=5), date(2026, 6, 10), validated=False)
    landing = Landing(str(tmp / "landing"))
    budget = NightBudget("web", 1, 75, 660.0, 0.85, 20.0, 1.0)
    for n, key in enumerate(("web-2026-06-11-a", "web-2026-06-12-b")):
        with connect(path) as con:
            plan = make_plan(con, key, ["landed.one", "landed.two"], date(2026, 6, 11 + n), budget, ["s1"], 30)
            store_plan(con, plan, FETCHED_AT)
        landing.open_crawl(key, "web", None, date(2026, 6, 11 + n), {"shard-001-of-001": ["landed.one", "landed.two"]})
        outcomes = pd.DataFrame({"username": ["landed.one", "landed.two"], "status": "ok", "fetched_at": FETCHED_AT})
        landing.put_batch(key, "shard-001-of-001", "0000aaaa-000001", {"account_outcomes": outcomes})
        with connect(path) as con:
            load_crawl(con, landing, key)
    return path


def test_landing_keys_are_unique(populated):
    with connect(populated, read_only=True) as con:
        keys = [
            k for (k,) in con.execute("SELECT landing_key FROM raw.crawl_runs WHERE landing_key IS NOT NULL").fetchall()
        ]
    assert len(keys) == 2 and len(set(keys)) == 2


@pytest.mark.parametrize("name,grain,key", declared_tables(), ids=[t[0] for t in declared_tables()])
def test_table_key_is_unique_and_not_null(populated, name, grain, key):
    with connect(populated, read_only=True) as con:
        rows = con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0]
        columns = ", ".join(key)
        nulls = con.execute(
            f"SELECT count(*) FROM {name} WHERE " + " OR ".join(f"{c} IS NULL" for c in key)
        ).fetchall()[0][0]
        duplicates = con.execute(
            f"SELECT count(*) FROM (SELECT {columns} FROM {name} GROUP BY ALL HAVING count(*) > 1)"
        ).fetchall()[0][0]
    assert nulls == 0 and duplicates == 0, f"{name} ({grain}): key {key}"
    assert rows > 0, f"{name} is empty in the populated warehouse: the key test would prove nothing"
