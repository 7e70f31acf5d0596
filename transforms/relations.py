"""The warehouse's relations, each in one home as dbt's jaffle-shop keeps its models.

`sql/<schema>/<name>.sql` holds a relation's SQL and `<name>.toml` beside it its contract:
what it is, its grain and key, the views and macros it reads (`depends_on`, for the order
they are created in), and its columns (description; unit, not null, accepted values,
pattern, bounds where they apply). A contract with no SQL beside it states what transforms/ relies on in a
table the migrations create and something else writes (the raw tables: dbt's sources); a
contract in `sql/macros/` is a scalar macro generated from it (the follower tiers).

What is generated from the contracts: the views' SQL as warehouse.db.connect applies it
(`view_sql`, with the units as column comments), the features suite's checks
(transforms/validation.py), the tier macro, and docs/relations.md (`python -m
transforms.relations`); the rest is checked against them by tests/test_relations.py.
"""

from __future__ import annotations

import graphlib
import re
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from warehouse.util import literal

SQL_DIR = Path(__file__).parent / "sql"
MACROS = "macros"  # the folder of generated scalar macros, created in DuckDB's `main` schema
# What a contract may say: a misspelt key is an error, not a silently ignored statement.
CONTRACT_KEYS = {"description", "grain", "key", "depends_on", "columns", "columns_of", "arguments", "filters"}
COLUMN_KEYS = {
    "description",
    "unit",
    "not_null",
    "accepted_values",
    "vocabulary",
    "pattern",
    "min",
    "max",
    "upper_bounds",
}
CREATED = re.compile(r"^CREATE OR REPLACE (VIEW|MACRO) [a-z_]+\.[a-z_]+(\([^)]*\) AS TABLE\b)?", re.M)


@dataclass(frozen=True)
class Column:
    name: str
    description: str
    unit: str | None = None
    not_null: bool = False  # every row has a value (dbt's not_null test)
    accepted_values: tuple[str, ...] | None = None
    vocabulary: str | None = None  # "module:NAME" of the Python definition of its values
    pattern: str | None = None  # a regular expression every value matches
    min: float | None = None
    max: float | None = None
    upper_bounds: tuple[float, ...] | None = None  # of each accepted value but the last, exclusive


@dataclass(frozen=True)
class Contract:
    description: str
    grain: str | None  # None for a scalar macro
    key: tuple[str, ...]
    depends_on: tuple[str, ...]
    columns: dict[str, Column]
    columns_of: str | None = None  # its columns are those of this relation (plus its own)
    arguments: tuple[str, ...] = ()  # of a generated macro
    # Rows it reads by a fixed set of values: column compared -> "module:NAME" of that set in Python
    filters: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Relation:
    name: str  # schema.name
    kind: str  # view, table macro, macro (scalar, generated) or table (created by the migrations)
    sql: str | None  # a view's or macro's CREATE; a table's INSERT query; None for a source
    contract: Contract = field(repr=False)

    @property
    def columns(self) -> dict[str, Column]:
        """Its columns, with those of `columns_of` first."""
        inherited = relation(self.contract.columns_of).columns if self.contract.columns_of else {}
        return {**inherited, **self.contract.columns}

    @property
    def is_source(self) -> bool:
        """A table transforms/ reads but does not write: its contract states some columns only."""
        return self.kind == "table" and self.sql is None


def read_contract(path: Path) -> Contract:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    unknown = set(data) - CONTRACT_KEYS
    columns = {}
    for name, column in data.get("columns", {}).items():
        unknown |= {f"columns.{name}.{k}" for k in set(column) - COLUMN_KEYS}
        columns[name] = Column(name, **{k: tuple(v) if isinstance(v, list) else v for k, v in column.items()})
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
    return Contract(
        description=data["description"],
        grain=data.get("grain"),
        key=tuple(data.get("key", ())),
        depends_on=tuple(data.get("depends_on", ())),
        columns=columns,
        columns_of=data.get("columns_of"),
        arguments=tuple(data.get("arguments", ())),
        filters=data.get("filters", {}),
    )


def kind_of(sql: str | None) -> str:
    created = CREATED.search(sql or "")
    if created is None:
        return "table"
    return "view" if created.group(1) == "VIEW" else "table macro" if created.group(2) else "macro"


@cache  # shipped with the code: read once per process
def all_relations() -> dict[str, Relation]:
    """Every relation with a contract under sql/, by name, in the order they can be created."""
    found = {}
    for path in sorted(SQL_DIR.glob("*/*.toml")):
        schema = "main" if path.parent.name == MACROS else path.parent.name
        name = f"{schema}.{path.stem}"
        contract = read_contract(path)
        sql_path = path.with_suffix(".sql")
        if path.parent.name == MACROS:
            found[name] = Relation(name, "macro", tier_macro(name, contract), contract)
        else:
            sql = sql_path.read_text(encoding="utf-8") if sql_path.exists() else None
            found[name] = Relation(name, kind_of(sql), sql, contract)
    for path in SQL_DIR.glob("*/*.sql"):
        if not path.with_suffix(".toml").exists():
            raise ValueError(f"{path}: a relation without a contract ({path.stem}.toml beside it)")
    for name, found_relation in found.items():
        if unknown := set(found_relation.contract.depends_on) - set(found):
            raise ValueError(f"{name} depends on {sorted(unknown)}: no such relation under {SQL_DIR}")
    sorter = graphlib.TopologicalSorter({name: r.contract.depends_on for name, r in found.items()})
    return {name: found[name] for name in sorter.static_order()}


def relations() -> list[Relation]:
    """Every relation, each after the views and macros it depends on."""
    return list(all_relations().values())


def relation(name: str) -> Relation:
    return all_relations()[name]


def tier_macro(name: str, contract: Contract) -> str:
    """CREATE MACRO for a contract whose one column lists tiers and their exclusive upper
    bounds (the last tier has none)."""
    ((_, column),) = contract.columns.items()
    (argument,) = contract.arguments
    tiers = [
        f"        WHEN {argument} < {bound} THEN {literal(tier)}"
        for tier, bound in zip(column.accepted_values, column.upper_bounds, strict=False)
    ]
    return "\n".join(
        [
            f"CREATE OR REPLACE MACRO {name}({argument}) AS",
            "    CASE",
            f"        WHEN {argument} IS NULL THEN NULL",
            *tiers,
            f"        ELSE {literal(column.accepted_values[-1])}",
            "    END;",
        ]
    )


def column_comments(commented: Relation) -> list[str]:
    """COMMENT ON COLUMN for each column with a unit, so that the catalogue (duckdb_columns())
    tells analysts which numbers are percentages. A view keeps no comment of the table it
    reads, and loses its own when it is replaced: these run after every view is (re)created."""
    if commented.kind not in {"view", "table"} or commented.is_source:
        return []  # a macro's columns take no comment
    return [
        f"COMMENT ON COLUMN {commented.name}.{c.name} IS {literal(f'{c.description}, in {c.unit}')};"
        for c in commented.columns.values()
        if c.unit
    ]


@cache
def view_sql() -> str:
    """The views and macros, in dependency order, then the column comments: what
    warehouse.db.connect applies (and fingerprints) and warehouse.publish applies to the copy."""
    created = [r.sql.strip() for r in relations() if r.kind in {"view", "table macro", "macro"}]
    comments = [comment for r in relations() for comment in column_comments(r)]
    return "\n\n".join(created) + "\n\n" + "\n".join(comments) + "\n"


def reference() -> str:
    """docs/relations.md: every relation's contract, as Markdown."""
    lines = [
        "# Relations: the views, macros and features, and what they rely on",
        "",
        "Generated from the contracts in `transforms/sql/` by `uv run python -m transforms.relations"
        " > docs/relations.md` (a test checks it is current). Each relation's SQL is beside its contract;",
        "the tables the migrations create are in [sql.md](sql.md#tables).",
    ]
    for r in sorted(relations(), key=lambda r: r.name):
        lines += ["", f"## `{r.name}`", "", f"{r.kind}{' (source: the columns transforms/ relies on)' * r.is_source}."]
        lines += ["", markdown(r.contract.description)]
        if r.contract.grain:
            lines += ["", f"Grain: {r.contract.grain}. Key: `({', '.join(r.contract.key)})`."]
        if r.contract.depends_on:
            lines += ["", "Reads: " + ", ".join(f"`{d}`" for d in r.contract.depends_on) + "."]
        if r.contract.filters:
            lines += [
                "",
                "Reads only rows whose " + ", ".join(f"`{c}` is in `{v}`" for c, v in r.contract.filters.items()) + ".",
            ]
        lines += ["", "| column | description | unit | values |", "|---|---|---|---|"]
        for c in r.columns.values():
            lines.append(f"| `{c.name}` | {markdown(c.description)} | {c.unit or ''} | {values(c)} |")
    return "\n".join(lines) + "\n"


def markdown(text: str) -> str:
    """Plain text in Markdown: its asterisks (multiplications) are not emphasis."""
    return text.replace("*", "\\*")


def values(column: Column) -> str:
    """What a column's values may be, in a few words."""
    said = ["not null"] if column.not_null else []
    if column.accepted_values:
        said.append(", ".join(column.accepted_values))
    if column.upper_bounds:
        said.append("below " + ", ".join(f"{b:,}" for b in column.upper_bounds))
    if column.pattern:
        said.append(f"`{column.pattern}`")
    if column.min is not None or column.max is not None:
        said.append(
            f"{'' if column.min is None else f'{column.min:g}'}..{'' if column.max is None else f'{column.max:g}'}"
        )
    return "; ".join(said)


if __name__ == "__main__":
    print(reference(), end="")
