"""Fixed vocabularies have one definition, in a contract (transforms/sql/), and everything else
agrees with it (one generic test each way).

- A contract column with accepted values (or a pattern) that names its Python definition
  (`vocabulary = "module:NAME"`: an enum, a sequence of values, of (value, upper bound) pairs,
  or a compiled pattern) has the same values as it.
- A contract's `filters` (the rows a relation reads by a fixed set of values, e.g. the readable
  runs) name a Python set, and the relation's SQL compares that column with exactly it.
- Every value a SQL text compares a column with (`x.status IN ('a', 'b')`, `kind = 'image'`,
  `CASE change WHEN 'new'`) is one the contracts accept for a column of that name; a CHECK
  constraint lists its column's accepted values exactly; and a CASE that makes one of a
  relation's own columns (`CASE … END AS not_clusterable_reason`) makes exactly them.
"""

import importlib
import re
from enum import Enum

import pytest

from support import PACKAGES, REPO
from transforms.relations import Column, relations
from warehouse.db import migrations

VOCABULARY_COLUMNS = [(r.name, c) for r in relations() for c in r.contract.columns.values() if c.vocabulary]
# SQL is in the relations' files, the migrations and the queries of the Python modules (the only
# single-quoted strings there: ruff formats Python's own strings with double quotes).
SQL_TEXTS = {
    **{f"transforms/sql: {r.name}": r.sql for r in relations() if r.sql},
    **{f"migration {v:03d}_{name}": sql for v, name, sql in migrations()},
    **{
        str(path.relative_to(REPO)): path.read_text(encoding="utf-8")
        for package in PACKAGES
        for path in (REPO / package).rglob("*.py")
    },
}


def python_values(name: str) -> tuple[list, list | None]:
    """The values of a Python vocabulary, and the upper bounds of a table of (value, bound) pairs."""
    module, attribute = name.split(":")
    found = getattr(importlib.import_module(module), attribute)
    if isinstance(found, type) and issubclass(found, Enum):
        return [member.value for member in found], None
    if isinstance(found, re.Pattern):
        return [found.pattern], None
    if all(isinstance(item, tuple) for item in found):
        return [value for value, _ in found], [bound for _, bound in found]
    return list(found), None


def accepted(column: Column) -> tuple[list, list | None]:
    if column.pattern:
        return [column.pattern], None
    bounds = [*column.upper_bounds, None] if column.upper_bounds else None
    return list(column.accepted_values), bounds


@pytest.mark.parametrize("relation,column", VOCABULARY_COLUMNS, ids=[f"{r}.{c.name}" for r, c in VOCABULARY_COLUMNS])
def test_every_vocabulary_a_contract_names_has_the_contracts_values(relation, column):
    values, bounds = python_values(column.vocabulary)
    stated, stated_bounds = accepted(column)
    assert sorted(values) == sorted(stated), f"{column.vocabulary} against {relation}.{column.name}"
    if stated_bounds is not None:
        assert list(zip(values, bounds, strict=True)) == list(zip(stated, stated_bounds, strict=True))


def accepted_by_name() -> dict[str, set[str]]:
    """Column name -> every value a contract accepts for a column of that name."""
    found: dict[str, set[str]] = {}
    for r in relations():
        for column in r.columns.values():
            if column.accepted_values:
                found.setdefault(column.name, set()).update(column.accepted_values)
    return found


def quoted(text: str) -> set[str]:
    return set(re.findall(r"'([^']*)'", text))


def compared_literals(column: str, sql: str) -> set[str]:
    """The quoted values a SQL text compares `column` (however qualified) with."""
    found = set()
    for match in re.finditer(rf"\b{column}\s+(?:NOT\s+)?IN\s*\(([^)]*)\)", sql, re.I):
        found |= quoted(match.group(1))
    for match in re.finditer(rf"\b{column}\s*(?:=|<>|!=)\s*('[^']*')", sql, re.I):
        found |= quoted(match.group(1))
    for match in re.finditer(rf"\bCASE\s+(?:\w+\.)?{column}\s+(.*?)\bEND\b", sql, re.I | re.S):
        found |= {value for value in re.findall(r"\bWHEN\s+'([^']*)'", match.group(1), re.I)}
    return found


FILTERS = [(r, column, vocabulary) for r in relations() for column, vocabulary in r.contract.filters.items()]


@pytest.mark.parametrize("relation,column,vocabulary", FILTERS, ids=[f"{r.name}.{c}" for r, c, _ in FILTERS])
def test_a_relation_reads_exactly_the_values_its_contracts_filter_names(relation, column, vocabulary):
    """`filters = { status = "warehouse.vocabulary:READABLE_RUNS" }`: its SQL compares `status`
    with exactly those values (none left out, none added)."""
    assert compared_literals(column, relation.sql) == set(python_values(vocabulary)[0])


@pytest.mark.parametrize("where", sorted(SQL_TEXTS))
def test_the_sql_compares_columns_only_with_values_their_contracts_accept(where):
    unknown = {
        column: sorted(literals - values)
        for column, values in accepted_by_name().items()
        if (literals := compared_literals(column, SQL_TEXTS[where])) - values
    }
    assert unknown == {}


def test_every_check_constraint_lists_exactly_its_columns_accepted_values():
    contracts = {
        f"{r.name}.{column.name}": set(column.accepted_values)
        for r in relations()
        for column in r.columns.values()
        if column.accepted_values
    }
    checked = {}
    for _, _, sql in migrations():
        for table, body in re.findall(r"CREATE TABLE ([a-z_]+\.[a-z_]+) \((.*?)\n\);", sql, re.S):
            for column, values in re.findall(r"CHECK \((\w+) IN \(([^)]*)\)\)", body):
                checked[f"{table}.{column}"] = quoted(values)
    assert checked, "no CHECK (column IN (…)) found: the pattern above no longer matches the migrations"
    assert checked == {name: contracts.get(name) for name in checked}


def test_a_case_that_makes_a_column_makes_exactly_its_accepted_values():
    made = {}
    for r in relations():
        for body, column in re.findall(r"\bCASE\b((?:(?!\bCASE\b).)*?)\bEND\s+AS\s+(\w+)", r.sql or "", re.S):
            stated = r.columns.get(column)
            if stated is not None and stated.accepted_values:
                made[f"{r.name}.{column}"] = (quoted(body), set(stated.accepted_values))
    assert "features.influencer_features.not_clusterable_reason" in made
    assert {name: values for name, (values, _) in made.items()} == {name: stated for name, (_, stated) in made.items()}


def test_python_and_sql_put_every_count_in_the_same_follower_tier(con):
    """The tier table has one definition (the macro's contract, models.personas.FOLLOWER_TIERS
    checked against it above); the two classifications that read it (numpy for the personas'
    names, the SQL macro for exports and reports) agree on either side of every bound."""
    from models.personas import FOLLOWER_TIERS, follower_tier

    bounds = [bound for _, bound in FOLLOWER_TIERS if bound is not None]
    counts = [0.0, *(bound + step for bound in bounds for step in (-1, -0.5, 0, 0.5, 1)), 5e9]
    in_sql = con.execute(
        "SELECT follower_tier(count) FROM unnest($counts::DOUBLE[]) WITH ORDINALITY AS t(count, i) ORDER BY i",
        {"counts": counts},
    ).fetchall()
    assert [tier for (tier,) in in_sql] == list(follower_tier(counts))
    assert con.execute("SELECT follower_tier(NULL)").fetchone() == (None,) and follower_tier([float("nan")])[0] is None
