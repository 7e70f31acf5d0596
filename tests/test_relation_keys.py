"""Every relation states its grain and key, and its contract holds on a filled warehouse (generic tests).

A table's grain and key are in the comment above its CREATE TABLE in warehouse/migrations/ (the
latest migration that creates it): "-- Grain: one row per … Key: (a, b)."; every other
relation's, and those of the tables transforms/ reads or writes, are in its contract
(transforms/sql/<schema>/<name>.toml). Each key is checked on a warehouse the real jobs filled
(conftest's pipeline_warehouse: an import, two crawls, their features, two snapshots, a
watchlist, a plan; here with a crawl no validation has seen and two crawls through the landing
area): no duplicate, no NULL; and so are the columns each contract states, and their values.
"""

import re
import shutil
from datetime import date

import pandas as pd
import pytest

from pipeline.storage import connect
from sandbox.synthetic import Population
from support import FETCHED_AT, synthetic_crawl
from transforms.relations import SQL_DIR, relation, relations
from warehouse.db import migrations
from warehouse.landing import Landing
from warehouse.loading import load_crawl
from warehouse.plans import NightBudget, make_plan, store_plan
from warehouse.util import literal

TABLE = re.compile(r"((?:^--[^\n]*\n)+)CREATE TABLE ([a-z_]+\.[a-z_]+)", re.M)
KEY = re.compile(r"Key:\s*(\([^)]*\)|[a-z_]+)", re.S)
# Table macros, called with arguments that exist in the filled warehouse.
MACRO_CALLS = {
    "clusters.persona_changes": "(1, 2)",
    "clusters.persona_fit": "(2)",
    "features.observations": "((SELECT max(feature_date) FROM features.influencer_features))",
    "features.influencer_history_between": "(DATE '2000-01-01', DATE '2100-01-01')",
}
CATALOGUE = """
SELECT schema_name || '.' || table_name, 'table' FROM duckdb_tables() WHERE database_name = current_database()
UNION SELECT schema_name || '.' || view_name, 'view' FROM duckdb_views()
WHERE database_name = current_database() AND NOT internal
UNION SELECT schema_name || '.' || function_name, replace(function_type, '_', ' ') FROM duckdb_functions()
WHERE database_name = current_database() AND function_type IN ('macro', 'table_macro')
"""


def table_keys() -> dict[str, tuple[str, tuple[str, ...]]]:
    """table -> (its grain, its key columns), from the comment above its latest CREATE TABLE."""
    found = {}
    for _, _, sql in migrations():
        for comment, name in TABLE.findall(sql):
            text = " ".join(line.lstrip("- ") for line in comment.splitlines())
            grain, key = text.partition("Grain:")[2], KEY.search(text)
            if grain and key:
                found[name] = (grain, tuple(c.strip() for c in key.group(1).strip("()").split(",")))
    return found


def stated_keys() -> dict[str, tuple[str, ...]]:
    """Every relation with a grain -> its key: the tables' from the migrations, the rest from contracts."""
    keys = {name: key for name, (_, key) in table_keys().items()}
    keys |= {r.name: r.contract.key for r in relations() if r.contract.grain}
    return keys


def source(name: str) -> str:
    """What a query reads the relation from (a table macro called with arguments)."""
    return f"{name}{MACRO_CALLS[name]}" if name in MACRO_CALLS else name


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    with connect(tmp_path_factory.mktemp("fresh") / "w.duckdb") as con:
        yield con


def test_every_relation_states_its_grain_and_key(fresh):
    present = {name for name, _ in fresh.execute(CATALOGUE).fetchall() if not name.startswith("meta.schema_")}
    scalar_macros = {r.name for r in relations() if r.kind == "macro"}
    keys = stated_keys()
    assert sorted(present - scalar_macros - set(keys)) == []
    assert sorted(name for name in present if name in keys and not keys[name]) == []


def test_a_contract_of_a_migrations_table_states_the_migrations_key():
    tables = table_keys()
    differing = {
        r.name: (r.contract.key, tables[r.name][1])
        for r in relations()
        if r.kind == "table" and r.contract.key != tables[r.name][1]
    }
    assert differing == {}


def test_every_relation_in_transforms_sql_has_a_contract_and_every_contract_a_relation(fresh):
    files = {path.with_suffix("") for path in SQL_DIR.glob("*/*.sql")}
    contracts = {path.with_suffix("") for path in SQL_DIR.glob("*/*.toml")}
    assert sorted(map(str, files - contracts)) == []
    present = dict(fresh.execute(CATALOGUE).fetchall())
    assert {r.name: r.kind for r in relations()} == {r.name: present.get(r.name) for r in relations()}
    # Each file creates the relation its path names (the relation's schema is its folder).
    for r in relations():
        if r.kind != "table" and r.sql is not None:
            assert re.search(rf"^CREATE OR REPLACE (VIEW|MACRO) {re.escape(r.name)}\b", r.sql, re.M), r.name


@pytest.fixture(scope="module")
def filled(pipeline_warehouse, tmp_path_factory):
    """The session's pipeline warehouse, plus a crawl no one has validated yet and two crawls
    that came through the landing area, each planned first (the nightly plan's tables): every
    relation has rows."""
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
    with connect(path, read_only=True) as con:
        yield con


def test_landing_keys_are_unique(filled):
    keys = [k for (k,) in filled.execute("SELECT landing_key FROM raw.crawl_runs").fetchall()]
    # Every crawl and import of it landed first (the import, three synthetic nights, two planned crawls).
    assert len(set(keys)) == len(keys) == 6 and None not in keys


@pytest.mark.parametrize("name", sorted(stated_keys()))
def test_every_key_holds_on_a_warehouse_the_jobs_filled(filled, name):
    key = stated_keys()[name]
    columns = ", ".join(key)
    rows, duplicated, missing = filled.execute(
        f"""
        SELECT count(*), count(*) - count(DISTINCT ({columns})),
               count(*) FILTER (WHERE {" OR ".join(f"{c} IS NULL" for c in key)})
        FROM {source(name)}
        """
    ).fetchone()
    assert (duplicated, missing) == (0, 0), f"{name} key ({columns}): {duplicated} duplicated, {missing} NULL"
    assert rows > 0, f"{name} is empty in the filled warehouse: its key is not tested"


@pytest.mark.parametrize("name", [r.name for r in relations() if r.kind != "macro"])
def test_every_contract_states_the_columns_the_relation_has(filled, name):
    stated = list(relation(name).columns)
    present = [row[0] for row in filled.execute(f"DESCRIBE FROM {source(name)}").fetchall()]
    if relation(name).is_source:  # it states the columns transforms/ relies on
        assert sorted(set(stated) - set(present)) == []
    else:
        assert stated == present


@pytest.mark.parametrize("name", [r.name for r in relations() if r.kind != "macro" and not r.is_source])
def test_every_value_is_one_its_contract_accepts(filled, name):
    """Accepted values, patterns and bounds, as dbt's accepted_values tests check them (a source's
    are what validation quarantines: its raw rows may break them)."""
    for column in relation(name).columns.values():
        rules = []
        if column.accepted_values:
            rules.append(f"{column.name} NOT IN ({', '.join(map(literal, column.accepted_values))})")
        if column.pattern:
            rules.append(f"NOT regexp_full_match({column.name}, {literal(column.pattern)})")
        if column.min is not None:
            rules.append(f"{column.name} < {column.min}")
        if column.max is not None:
            rules.append(f"{column.name} > {column.max}")
        for rule in rules:
            wrong = filled.execute(f"SELECT count(*) FROM {source(name)} WHERE {rule}").fetchone()[0]
            assert wrong == 0, f"{name}: {wrong} rows where {rule}"
