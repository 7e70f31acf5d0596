import re
from datetime import date

import duckdb
import pytest
from conftest import FETCHED_AT, synthetic_crawl

from kic.errors import KicError
from kic.settings import ClusteringSettings
from kic.synthetic import Population
from models.recluster import recluster
from transforms.features import derive_features, load_clusterable
from transforms.validation import Validator, raw_profiles_suite
from warehouse import raw, watchlist
from warehouse.db import (
    MIGRATIONS_DIR,
    connect,
    latest_version,
    migrate,
    migrations,
    schema_version,
)
from warehouse.quality import quarantine_frame, store_validations
from warehouse.snapshots import write_snapshot

GRAIN = re.compile(
    r"-- Grain: (?P<grain>[^\n]*?)(?:\n-- [^\n]*)*?Key: (?P<key>\([^)]*\)|\w+)\.?[^\n]*\n"
    r"(?:--[^\n]*\n)*CREATE (?:TABLE|VIEW) (?P<name>[\w.]+)",
)


def declared_tables():
    """(name, grain, key columns) of every table and view the migrations declare."""
    found = []
    for _, _, sql in migrations():
        for m in GRAIN.finditer(sql):
            key = [c.strip() for c in m.group("key").strip("()").split(",")]
            found.append((m.group("name"), m.group("grain"), key))
    return found


def test_migrations_are_numbered_in_order_without_gaps():
    versions = [v for v, _, _ in migrations()]
    assert versions == list(range(1, len(versions) + 1))
    assert len(versions) == len(list(MIGRATIONS_DIR.glob("*.sql")))


def test_every_table_and_view_states_its_grain_and_key():
    created = set()
    for _, _, sql in migrations():
        created |= set(re.findall(r"CREATE (?:TABLE|VIEW) ([\w.]+)", sql))
    assert created == {name for name, _, _ in declared_tables()}


def test_new_warehouse_has_latest_schema(warehouse_path):
    with connect(warehouse_path) as con:
        assert schema_version(con) == latest_version()
        schemas = {r[0] for r in con.execute("SELECT schema_name FROM information_schema.schemata").fetchall()}
    assert {"raw", "staging", "features", "clusters", "meta"} <= schemas


def test_opening_an_older_warehouse_upgrades_it_and_keeps_its_data(warehouse_path):
    con = duckdb.connect(str(warehouse_path))
    migrate(con, target=1)
    assert schema_version(con) == 1
    crawl_id = raw.open_run(con, "web", "old", date(2026, 1, 1))
    raw.append(con, "profiles", [{"crawl_id": crawl_id, "username": "kept", "followers": 5,
                                  "fetched_at": FETCHED_AT}])
    con.close()

    with connect(warehouse_path) as con:
        assert schema_version(con) == latest_version()
        assert con.execute("SELECT username, followers FROM raw.profiles").fetchall() == [("kept", 5)]
        applied = con.execute("SELECT version FROM meta.schema_migrations ORDER BY 1").fetchall()
    assert [v for (v,) in applied] == list(range(1, latest_version() + 1))


def test_failed_migration_leaves_the_schema_version_unchanged(warehouse_path, monkeypatch):
    con = duckdb.connect(str(warehouse_path))
    migrate(con, target=1)
    broken = [(v, n, s if v != 2 else s + "\nCREATE TABLE raw.posts (x INT);") for v, n, s in migrations()]
    monkeypatch.setattr("warehouse.db.migrations", lambda: broken)
    with pytest.raises(duckdb.Error):
        migrate(con)
    assert schema_version(con) == 1
    assert con.execute("SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'staging'").fetchall() == [(0,)]
    con.close()


def test_read_only_open_of_a_missing_warehouse_names_it(tmp_path):
    missing = tmp_path / "nope.duckdb"
    with pytest.raises(KicError, match="nope.duckdb"):
        with connect(missing, read_only=True):
            pass
    assert not missing.exists()


def test_read_only_open_of_an_outdated_warehouse_asks_for_an_upgrade(warehouse_path):
    con = duckdb.connect(str(warehouse_path))
    migrate(con, target=1)
    con.close()
    with pytest.raises(KicError, match="schema version 1"):
        with connect(warehouse_path, read_only=True):
            pass


@pytest.fixture(scope="module")
def populated(tmp_path_factory):
    """A warehouse with two synthetic crawls, features and two snapshots."""
    path = tmp_path_factory.mktemp("keys") / "warehouse.duckdb"
    population = Population(150, seed=3)
    cfg = ClusteringSettings(kmeans_k=[3], kmedoids_k=[3], elbow_k=[1, 2])
    with connect(path) as con:
        watchlist.add(con, [a.username for a in population.accounts[:20]], "manual")
        for day in (date(2026, 3, 1), date(2026, 3, 8)):
            synthetic_crawl(con, population, day)
            derive_features(con, day)
            write_snapshot(con, recluster(load_clusterable(con, day), cfg, day))
        # A validation that quarantines a row (made bad in memory only).
        profiles = con.execute("SELECT * FROM raw.profiles WHERE crawl_id = 1 ORDER BY username").df()
        profiles.loc[0, "followers"] = -1
        validator = Validator(path.parent / "docs", path.parent / "results")
        checked = validator.validate(profiles, raw_profiles_suite(), "crawl-1")
        quarantine = quarantine_frame(checked, profiles, "raw.profiles", ["crawl_id", "username"])
        store_validations(con, [checked], quarantine, crawl_id=1)
    return path


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
    if name not in ("raw.imported_media_means", "raw.rejected_rows", "clusters.changes"):
        assert rows > 0, f"{name} is empty in the populated warehouse: the key test would prove nothing"
