"""transforms.relations: the relations' SQL and contracts, and what is generated from them."""

import re
import subprocess
import sys

import pytest

from pipeline.storage import connect
from support import REPO
from transforms.relations import relation, relations, view_sql
from warehouse.db import views_fingerprint


def test_depends_on_names_exactly_the_views_and_macros_a_relation_reads():
    """The order views are created in comes from depends_on: it must miss none."""
    # A name as SQL reads it: schema.name, or a macro of `main` called by its name alone.
    reads = {
        r.name: rf"(?<![\w.]){r.name.removeprefix('main.')}\s*\(" if r.name.startswith("main.") else rf"\b{r.name}\b"
        for r in relations()
        if r.kind != "table"
    }
    for r in relations():
        read = {name for name, pattern in reads.items() if name != r.name and re.search(pattern, r.sql or "")}
        assert read == set(r.contract.depends_on), r.name


def test_views_are_created_after_what_they_read():
    order = [r.name for r in relations()]
    for r in relations():
        assert all(order.index(d) < order.index(r.name) for d in r.contract.depends_on), r.name


def test_docs_relations_md_is_generated_from_the_contracts():
    generated = subprocess.run(
        [sys.executable, "-m", "transforms.relations"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert (REPO / "docs" / "relations.md").read_text(encoding="utf-8") == generated, (
        "docs/relations.md is out of date: uv run python -m transforms.relations > docs/relations.md"
    )


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    with connect(tmp_path_factory.mktemp("relations") / "w.duckdb") as con:
        yield con


def test_the_tier_macro_puts_each_bound_in_the_tier_above_it(warehouse):
    (tiers,) = relation("main.follower_tier").contract.columns.values()
    counts = [0, *(n for bound in tiers.upper_bounds for n in (bound - 1, bound)), 10**9, None]
    rows = warehouse.execute("SELECT follower_tier(c) FROM unnest(?::BIGINT[]) t(c)", [counts]).fetchall()
    expected = [tiers.accepted_values[0]]
    for below, above in zip(tiers.accepted_values, tiers.accepted_values[1:], strict=False):
        expected += [below, above]
    assert [tier for (tier,) in rows] == [*expected, tiers.accepted_values[-1], None]


def test_units_stated_in_contracts_are_the_columns_comments(warehouse):
    comments = dict(
        warehouse.execute(
            "SELECT schema_name || '.' || table_name || '.' || column_name, comment FROM duckdb_columns() "
            "WHERE database_name = current_database() AND comment IS NOT NULL"
        ).fetchall()
    )
    for r in relations():
        if r.kind in {"view", "table"} and not r.is_source:
            for column in r.columns.values():
                if column.unit:
                    assert comments.get(f"{r.name}.{column.name}") == f"{column.description}, in {column.unit}"


def test_the_view_sql_is_what_a_new_warehouse_applied(warehouse):
    fingerprint = warehouse.execute("SELECT fingerprint FROM meta.applied_views").fetchall()
    assert fingerprint == [(views_fingerprint(view_sql()),)]
