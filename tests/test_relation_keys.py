"""Every relation states its grain and key beside its SQL, and every key holds (one generic test).

The contract of a table is the comment above its CREATE TABLE in warehouse/migrations/ (the
latest migration that creates it); of a view or table macro, the comment above its CREATE in
warehouse/views/: "-- Grain: one row per … Key: (a, b)." Each key is checked on a warehouse
the real jobs filled (conftest's pipeline_warehouse: an import, two crawls, their features,
two snapshots, a watchlist, a plan): no duplicate, no NULL.
"""

import re

import pytest

from warehouse.db import connect, migrations, views

STATEMENT = re.compile(
    r"((?:^--[^\n]*\n)+)CREATE (?:OR REPLACE )?(TABLE|VIEW|MACRO) ([a-z_]+\.[a-z_]+)(\([^)]*\))?", re.M
)
KEY = re.compile(r"Key:\s*(\([^)]*\)|[a-z_]+)", re.S)
# Table macros, called with arguments that exist in the pipeline warehouse.
MACRO_CALLS = {
    "clusters.persona_changes": "(1, 2)",
    "clusters.persona_fit": "(2)",
    "features.observations": "((SELECT max(feature_date) FROM features.influencer_features))",
    "features.influencer_history_between": "(DATE '2000-01-01', DATE '2100-01-01')",
}


def contracts() -> dict[str, tuple[str, tuple[str, ...]]]:
    """relation -> (its kind, its key columns), from the comment above its latest CREATE."""
    found = {}
    for _, _, sql in [*migrations(), *views()]:
        for comment, kind, name, _ in STATEMENT.findall(sql):
            text = " ".join(line.lstrip("- ") for line in comment.splitlines())
            if "Grain:" not in text:
                continue
            key = KEY.search(text)
            columns = tuple(c.strip() for c in key.group(1).strip("()").split(",")) if key else ()
            found[name] = (kind, columns)
    return found


def relations(con) -> set[str]:
    """Every table, view and table macro of the warehouse's own schemas."""
    rows = con.execute(
        """
        SELECT schema_name || '.' || table_name FROM duckdb_tables() WHERE database_name = current_database()
        UNION SELECT schema_name || '.' || view_name FROM duckdb_views()
        WHERE database_name = current_database() AND NOT internal
        UNION SELECT schema_name || '.' || function_name FROM duckdb_functions()
        WHERE database_name = current_database() AND function_type = 'table_macro'
        """
    ).fetchall()
    return {name for (name,) in rows if not name.startswith("meta.schema_")}


def test_every_relation_states_its_grain_and_key(tmp_path):
    with connect(tmp_path / "w.duckdb") as con:
        present = relations(con)
    stated = contracts()
    assert sorted(present - set(stated)) == []
    assert sorted(name for name in present if not stated[name][1]) == []


@pytest.fixture(scope="module")
def filled(pipeline_warehouse):
    with connect(pipeline_warehouse, read_only=True) as con:
        yield con


@pytest.mark.parametrize("relation", sorted(contracts()))
def test_every_key_holds_on_a_warehouse_the_jobs_filled(filled, relation):
    kind, key = contracts()[relation]
    source = f"{relation}{MACRO_CALLS[relation]}" if kind == "MACRO" else relation
    if kind == "MACRO" and relation not in MACRO_CALLS:
        pytest.fail(f"{relation}: a table macro with no call in MACRO_CALLS")
    columns = ", ".join(key)
    rows, duplicated, missing = filled.execute(
        f"""
        SELECT count(*), count(*) - count(DISTINCT ({columns})),
               count(*) FILTER (WHERE {" OR ".join(f"{c} IS NULL" for c in key)})
        FROM {source}
        """
    ).fetchone()
    assert (duplicated, missing) == (0, 0), f"{relation} key ({columns}): {duplicated} duplicated, {missing} NULL"
    if relation.split(".")[0] in {"raw", "staging", "features", "clusters"} and relation not in EMPTY_IN_THE_PIPELINE:
        assert rows > 0, f"{relation} is empty in the pipeline warehouse: its key is not tested"


# Relations the pipeline warehouse leaves empty by design (no failed or hidden rows to show).
EMPTY_IN_THE_PIPELINE = {
    "staging.unvalidated_crawls",  # every crawl there was validated
    "raw.landed_files",  # its crawls were written straight into raw (landing: tests/test_landing.py)
}
