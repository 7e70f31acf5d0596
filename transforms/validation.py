"""Validating each night's new rows with Great Expectations (1.x), before they reach features.

Suites are defined in code. Row-level expectations find rows to quarantine; table-level
ones (schema, volume against the previous crawl) stop the run. Rows come as a stream of
bounded chunks (read from DuckDB by the caller) and each chunk goes through GX's pandas
datasource (its SQL datasource does not work on DuckDB: GX closes the connection before
fetching, GX issues #10738 and #11579). What the chunks found is merged as they pass:
counts, and the keys of the rows to quarantine; never the rows.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
import uuid
import warnings
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path

import pandas as pd

from transforms.relations import relation
from warehouse.vocabulary import MAX_PLAUSIBLE_COUNT

# GX logs ~200 INFO lines and routes its own DeprecationWarnings into logging at import.
logging.getLogger("great_expectations").setLevel(logging.WARNING)
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"great_expectations\.")

import great_expectations as gx  # noqa: E402
import great_expectations.expectations as gxe  # noqa: E402
from great_expectations.core.run_identifier import RunIdentifier  # noqa: E402
from great_expectations.data_context.types.base import (  # noqa: E402
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.expectations.row_conditions import Column  # noqa: E402

logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
log = logging.getLogger("kic.validation")

FEATURES_TABLE = "features.influencer_features"

DOCS_SITE = "kic"
DATASOURCE = "kic_frames"
VOLUME_DROP_LIMIT = 0.5  # fewer than half the rows expected fails the run

# Expectations whose failure is about the table, not a row: they stop the run. On a stream
# of chunks they are checked once, on the first chunk (the columns are the table's, and
# the first chunk is empty only when the table is).
TABLE_LEVEL = {"expect_table_columns_to_match_set", "expect_table_row_count_to_be_between"}
ROW_COUNT = "expect_table_row_count_to_be_between"


def contract_checks(table: str) -> list:
    """What the table's contract (transforms/sql/) states of its rows: its key unique, and each
    column's values present (not_null), accepted values, pattern and bounds. A lower bound alone
    (counts and means: never negative) comes with MAX_PLAUSIBLE_COUNT above, so that no value
    overflows the features."""
    contract = relation(table)
    checks = [gxe.ExpectCompoundColumnsToBeUnique(column_list=list(contract.contract.key))]
    for column in contract.columns.values():
        if column.not_null:
            checks.append(gxe.ExpectColumnValuesToNotBeNull(column=column.name))
        if column.accepted_values:
            checks.append(gxe.ExpectColumnValuesToBeInSet(column=column.name, value_set=list(column.accepted_values)))
        if column.pattern:
            checks.append(gxe.ExpectColumnValuesToMatchRegex(column=column.name, regex=column.pattern))
        if column.min is not None or column.max is not None:
            highest = MAX_PLAUSIBLE_COUNT if column.max is None else column.max
            checks.append(
                gxe.ExpectColumnValuesToBeBetween(column=column.name, min_value=column.min, max_value=highest)
            )
    return checks


# Suites take the table's columns as the warehouse declares them (its DDL is the one
# definition of a table's shape); a frame with other columns fails the schema check.
# Uniqueness is checked within each chunk, which finds every repeat of a key because all
# rows of a key land in one chunk: the raw tables' keys need not be PRIMARY KEYs, so the
# caller streams the rows of any repeated key together (warehouse.quality.crawl_rows); the
# features' key (username, feature_date) is the table's PRIMARY KEY, and the feature query
# gives one row per username.


def raw_profiles_suite(columns: list[str]) -> gx.ExpectationSuite:
    """raw.profiles of one crawl: one row per account."""
    return suite(
        "raw_profiles",
        [
            gxe.ExpectTableColumnsToMatchSet(column_set=columns, exact_match=True),
            *contract_checks("raw.profiles"),
        ],
    )


def raw_posts_suite(columns: list[str]) -> gx.ExpectationSuite:
    """raw.posts of one crawl: one row per post. Hidden likes are NULL, which is allowed."""
    return suite(
        "raw_posts",
        [
            gxe.ExpectTableColumnsToMatchSet(column_set=columns, exact_match=True),
            # A post cannot be published after it was fetched.
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="fetched_at", column_B="taken_at", or_equal=True),
            *contract_checks("raw.posts"),
        ],
    )


def raw_imported_means_suite(columns: list[str]) -> gx.ExpectationSuite:
    """raw.imported_media_means of one import: one row per account, means never negative."""
    return suite(
        "raw_imported_media_means",
        [
            gxe.ExpectTableColumnsToMatchSet(column_set=columns, exact_match=True),
            *contract_checks("raw.imported_media_means"),
        ],
    )


def features_suite(columns: list[str]) -> gx.ExpectationSuite:
    """features.influencer_features of one date, before they are written."""
    clusterable = Column("is_clusterable") == True  # noqa: E712 (GX's condition syntax)
    return suite(
        "features",
        [
            gxe.ExpectTableColumnsToMatchSet(column_set=columns, exact_match=True),
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            # What clustering needs of a clusterable row (a bound the contract cannot state: on some rows only).
            gxe.ExpectColumnValuesToBeBetween(
                column="follower", min_value=1, max_value=MAX_PLAUSIBLE_COUNT, row_condition=clusterable
            ),
            gxe.ExpectColumnValuesToNotBeNull(column="er", row_condition=clusterable),
            gxe.ExpectColumnValuesToNotBeNull(column="active_rate", row_condition=clusterable),
            *contract_checks(FEATURES_TABLE),
        ],
    )


def volume_suite() -> gx.ExpectationSuite:
    """One row per table: this run's rows against at least half of what was expected."""
    return suite(
        "volume",
        [
            gxe.ExpectTableColumnsToMatchSet(column_set=["table_name", "rows", "min_rows"], exact_match=True),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="rows", column_B="min_rows", or_equal=True),
        ],
    )


def suite(name: str, expectations: list) -> gx.ExpectationSuite:
    # Given to the constructor, not add_expectation(): once a suite of this name is in the
    # context's store, add_expectation() writes the stored suite again for every expectation.
    return gx.ExpectationSuite(name=name, expectations=expectations)


def row_level(full: gx.ExpectationSuite) -> gx.ExpectationSuite:
    """A suite's row-level expectations (copies), run on the chunks after the first."""
    copies = []
    for expectation in full.expectations:
        if expectation.expectation_type not in TABLE_LEVEL:
            config = expectation.configuration
            config.id = None  # a copy, owned by the new suite
            copies.append(config.to_domain_obj())
    return suite(f"{full.name}-rows", copies)


@dataclass(frozen=True)
class Expected:
    """The rows a table is expected to have, and whence (said when a check fails)."""

    rows: float
    whence: str

    @property
    def min_rows(self) -> int:
        return math.ceil(self.rows * VOLUME_DROP_LIMIT)


def volume_frame(counts: dict[str, tuple[int, Expected | None]]) -> pd.DataFrame:
    """table -> (rows now, what was expected, or None: nothing to compare with)."""
    return pd.DataFrame(
        [
            {"table_name": table, "rows": now, "min_rows": expected.min_rows if expected else 0}
            for table, (now, expected) in counts.items()
        ]
    )


def validate_volume(validator: Validator, counts: dict[str, tuple[int, Expected | None]], run: str):
    """The volume suite on `counts`; a failure says which table had how many rows, against what."""
    result = validator.validate([volume_frame(counts)], volume_suite(), run, table_level=True)
    short = [
        f"{table}: {now:,} rows, fewer than {expected.min_rows:,} (half of {expected.whence})"
        for table, (now, expected) in counts.items()
        if expected is not None and now < expected.min_rows
    ]
    for outcome in result.expectations:
        if not outcome.success and short:
            outcome.observed_value = "; ".join(short)[:500]
    return result


# --- running suites -----------------------------------------------------------------------


@dataclass
class ExpectationOutcome:
    expectation: str  # type(column)
    level: str  # row | table
    success: bool
    unexpected_count: int | None
    observed_value: str | None
    failing_index: list = field(default_factory=list)  # positions of failing rows in the chunk validated


@dataclass
class SuiteValidation:
    validation_id: str
    suite: str
    rows_validated: int
    expectations: list[ExpectationOutcome]
    data_docs: str | None
    quarantine: pd.DataFrame = field(default_factory=lambda: quarantine_frame([]))  # the rows it quarantines

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [e for e in self.expectations if not e.success]

    @property
    def table_level_ok(self) -> bool:
        return all(e.success for e in self.expectations if e.level == "table")


# GX's site builder logs a page it failed to render (with a traceback) and goes on.
SITE_BUILDER_LOGGER = "great_expectations.render.renderer.site_builder"
ERRNO = re.compile(r"\[Errno (\d+)\]")


@contextmanager
def render_errors():
    """Collect what GX's site builder logs as errors, instead of letting it print tracebacks."""
    errors: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            errors.append(record.getMessage())

    logger = logging.getLogger(SITE_BUILDER_LOGGER)
    handler, propagate = Collect(logging.ERROR), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield errors
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def readable_json(path: Path) -> bool:
    try:
        json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return True


class Validator:
    """One GX context per process (Data Docs index lists what this context validated).

    Data Docs are rendered once per batch of suites (`render_docs`), not after every suite:
    rendering is most of a small validation's cost.
    """

    def __init__(self, docs_dir: Path, results_dir: Path, *, render_docs: bool = True):
        self.docs_dir = Path(docs_dir).resolve()
        self.renders_docs = render_docs
        self.results_dir = results_dir = Path(results_dir).resolve()
        self.context = gx_context(self.docs_dir, results_dir)
        self.registered = registered_checkpoints(self.docs_dir, results_dir)
        self.unrendered: list = []  # validation result ids not in the Data Docs yet

    def render_docs(self) -> None:
        """Render the Data Docs pages of what was validated since the last call, and the index."""
        if self.unrendered and self.renders_docs:
            with self.files_written(self.docs_dir), render_errors() as errors:
                self.context.build_data_docs(site_names=[DOCS_SITE], resource_identifiers=self.unrendered)
                code = next((int(m[1]) for e in errors if (m := ERRNO.search(e))), None)
                if code is not None:  # GX logs a page it could not write, and goes on: stop here
                    raise OSError(code, os.strerror(code))
            for error in errors:
                log.warning("Data Docs: a page could not be rendered: %s", error.splitlines()[-1])
        self.unrendered = []

    @contextmanager
    def files_written(self, folder: Path, pattern: str = "*", whole: Callable[[Path], bool] = lambda path: False):
        """GX writes its files in place: on a failed write (a full disk), remove the files matching
        `pattern` it wrote since it began and left not `whole`, so that nothing half-written is
        read once the disk is fixed (a render is redone whole by the next), and name the folder."""
        started = time.time()
        try:
            yield
        except OSError as exc:
            for path in folder.rglob(pattern):
                if path.is_file() and path.stat().st_mtime >= started - 1 and not whole(path):
                    path.unlink(missing_ok=True)
            raise OSError(exc.errno, exc.strerror, exc.filename or str(folder)) from exc

    def validate(
        self,
        chunks: Iterable[pd.DataFrame],
        expectation_suite: gx.ExpectationSuite,
        run_name: str,
        *,
        table_name: str | None = None,
        key: list[str] | None = None,
        table_level: bool = False,
    ) -> SuiteValidation:
        """Validate a table's rows chunk by chunk (at least one chunk, maybe empty); merge what
        each chunk found as it passes: unexpected counts summed, success if every chunk
        succeeded, and (given the table's `key`) the keys of the rows to quarantine.

        Table-level expectations run on the first chunk only; the later chunks get the
        row-level ones. With `table_level`, every expectation counts as one about the table
        (the volume suite's rows are tables).
        """
        validation_id = f"{expectation_suite.name}-{run_name}-{uuid.uuid4().hex[:8]}"
        later_chunks: gx.ExpectationSuite | None = None
        merged: dict[str, ExpectationOutcome] = {}
        quarantined: list[dict] = []
        rows = 0
        for number, chunk in enumerate(chunks):
            chunk = chunk.reset_index(drop=True)  # failing rows come back as positions
            if number == 0:
                checked = expectation_suite
            else:
                later_chunks = later_chunks or row_level(expectation_suite)
                checked = later_chunks
            result = self.run_checkpoint(chunk, checked, f"{run_name}-{number}" if number else run_name)
            found = outcomes(result, table_level)
            if key is not None:
                quarantined += quarantine_records(validation_id, found, chunk, table_name, key)
            for outcome in found:
                outcome.failing_index = []  # kept as keys above, not as positions
                seen = merged.setdefault(outcome.expectation, outcome)
                if seen is not outcome:
                    seen.success = seen.success and outcome.success
                    seen.unexpected_count = (seen.unexpected_count or 0) + (outcome.unexpected_count or 0)
            rows += len(chunk)
        if not merged:
            raise ValueError(f"{expectation_suite.name}: no chunk to validate (an empty table is one empty chunk)")
        for outcome in merged.values():
            if outcome.expectation.startswith(ROW_COUNT):
                outcome.observed_value = str(rows)  # the table's rows, not the first chunk's
        return SuiteValidation(
            validation_id=validation_id,
            suite=expectation_suite.name,
            rows_validated=rows,
            expectations=list(merged.values()),
            data_docs=str(self.docs_dir / "index.html") if self.renders_docs else None,
            quarantine=quarantine_frame(quarantined),
        )

    def run_checkpoint(self, chunk: pd.DataFrame, expectation_suite: gx.ExpectationSuite, run_name: str):
        checkpoint = self.checkpoint(expectation_suite)
        with self.files_written(self.results_dir, "*.json", readable_json):
            result = checkpoint.run(batch_parameters={"dataframe": chunk}, run_id=RunIdentifier(run_name=run_name))
        self.unrendered.extend(result.run_results)
        return next(iter(result.run_results.values()))

    def checkpoint(self, expectation_suite: gx.ExpectationSuite) -> gx.Checkpoint:
        """The context's checkpoint for this suite, (re)registered only when the suite differs from
        the one registered last: registering costs about a third of validating a small chunk."""
        expectations = json.dumps(expectation_suite.to_json_dict()["expectations"], sort_keys=True, default=str)
        registered = self.registered.get(expectation_suite.name)
        if registered is not None and registered[0] == expectations:
            return registered[1]
        batch = batch_definition(self.context, expectation_suite.name)
        stored_suite = self.context.suites.add_or_update(expectation_suite)
        definition = self.context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=expectation_suite.name, data=batch, suite=stored_suite)
        )
        checkpoint = self.context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=expectation_suite.name,
                validation_definitions=[definition],
                actions=[],
                result_format={"result_format": "COMPLETE", "return_unexpected_index_query": False},
            )
        )
        self.registered[expectation_suite.name] = (expectations, checkpoint)
        return checkpoint


@cache
def registered_checkpoints(docs_dir: Path, results_dir: Path) -> dict[str, tuple[str, gx.Checkpoint]]:
    """What gx_context(docs_dir, results_dir) has registered: suite name -> (its expectations, checkpoint)."""
    return {}


@cache
def gx_context(docs_dir: Path, results_dir: Path):
    """An in-memory GX context: Data Docs go to docs_dir, validation results to results_dir
    (so that the Data Docs index keeps earlier nights), no progress bars."""
    stores = InMemoryStoreBackendDefaults().stores
    stores["validation_results_store"]["store_backend"] = {
        "class_name": "TupleFilesystemStoreBackend",
        "base_directory": str(results_dir),
    }
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        stores=stores,
        data_docs_sites={
            DOCS_SITE: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        },
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    return gx.get_context(project_config=config, mode="ephemeral")


def batch_definition(context, name: str):
    """The whole-DataFrame batch definition of an asset, added on first use."""
    try:
        source = context.data_sources.get(DATASOURCE)
    except KeyError:
        source = context.data_sources.add_pandas(name=DATASOURCE)
    try:
        asset = source.get_asset(name)
    except LookupError:
        asset = source.add_dataframe_asset(name=name)
    try:
        return asset.get_batch_definition("whole")
    except KeyError:
        return asset.add_batch_definition_whole_dataframe(name="whole")


def outcomes(suite_result, table_level: bool = False) -> list[ExpectationOutcome]:
    found = []
    for result in suite_result.results:
        config = result.expectation_config
        kwargs = config.kwargs
        target = (
            kwargs.get("column")
            or ",".join(kwargs.get("column_list") or [])
            or (f"{kwargs['column_A']}>={kwargs['column_B']}" if "column_A" in kwargs else "table")
        )
        details = result.result or {}
        observed = details.get("observed_value")
        found.append(
            ExpectationOutcome(
                expectation=f"{config.type}({target})",
                level="table" if table_level or config.type in TABLE_LEVEL else "row",
                success=bool(result.success),
                unexpected_count=details.get("unexpected_count"),
                observed_value=None if observed is None else str(observed)[:500],
                failing_index=list(details.get("unexpected_index_list") or []),
            )
        )
    return found


# --- what a validation leaves behind ----------------------------------------------------

QUARANTINE_KEYS = ("crawl_id", "username", "post_id", "feature_date")


@dataclass
class Validation:
    """Every suite run on one crawl's rows (or one feature date's), and the rows they quarantine."""

    suites: list[SuiteValidation]
    crawl_id: int | None = None
    feature_date: date | None = None

    @property
    def quarantine(self) -> pd.DataFrame:
        """One row per (failing row, expectation): the rows' keys."""
        return pd.concat([v.quarantine for v in self.suites], ignore_index=True)

    def quarantined_keys(self, table_name: str, column: str) -> list:
        """The distinct values of one key column among a table's quarantined rows."""
        quarantine = self.quarantine
        return quarantine.loc[quarantine["table_name"] == table_name, column].drop_duplicates().tolist()

    def table_failures(self) -> list[str]:
        """The failed table-level checks, readable: they stop a run."""
        return [
            f"{v.suite}: {e.expectation} (observed {e.observed_value})"
            for v in self.suites
            for e in v.failed
            if e.level == "table"
        ]

    @property
    def quarantined(self) -> int:
        """How many distinct rows were quarantined."""
        return len(self.quarantine.drop_duplicates(["table_name", "row_key"])) if len(self.quarantine) else 0

    def frames(self, run_at) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """The quality.validation_runs, quality.expectation_results and quality.quarantined_rows rows."""
        quarantine = self.quarantine
        runs = pd.DataFrame(
            [
                {
                    "validation_id": v.validation_id,
                    "run_at": run_at,
                    "suite": v.suite,
                    "crawl_id": self.crawl_id,
                    "feature_date": self.feature_date,
                    "rows_validated": v.rows_validated,
                    "expectations": len(v.expectations),
                    "passed": len(v.expectations) - len(v.failed),
                    "failed": len(v.failed),
                    "rows_quarantined": len(v.quarantine),
                    "table_level_ok": v.table_level_ok,
                    "data_docs": v.data_docs,
                }
                for v in self.suites
            ]
        ).astype({"crawl_id": "Int64"})
        results = pd.DataFrame(
            [
                {
                    "validation_id": v.validation_id,
                    "expectation": e.expectation,
                    "level": e.level,
                    "success": e.success,
                    "unexpected_count": e.unexpected_count,
                    "observed_value": e.observed_value,
                }
                for v in self.suites
                for e in v.expectations
            ]
        ).astype({"unexpected_count": "Int64"})
        return runs, results, quarantine


QUARANTINE_COLUMNS = ["validation_id", "table_name", *QUARANTINE_KEYS, "row_key", "expectation"]


def quarantine_records(
    validation_id: str, found: list[ExpectationOutcome], chunk: pd.DataFrame, table_name: str, key: list[str]
) -> list[dict]:
    """One record per (failing row, row-level expectation) of a chunk: the row's keys, not the row."""
    failing: dict[int, list[str]] = {}
    for outcome in found:
        if outcome.level == "row" and not outcome.success:
            for position in outcome.failing_index:
                failing.setdefault(position, []).append(outcome.expectation)
    records = []
    for position, expectations in failing.items():
        row = chunk.iloc[position]
        for expectation in expectations:
            records.append(
                {
                    "validation_id": validation_id,
                    "table_name": table_name,
                    **{column: row.get(column) for column in QUARANTINE_KEYS},
                    "row_key": ", ".join(f"{k}={row[k]}" for k in key),
                    "expectation": expectation,
                }
            )
    return records


def quarantine_frame(records: list[dict]) -> pd.DataFrame:
    """quality.quarantined_rows rows: one per (failing row, expectation)."""
    frame = pd.DataFrame(records, columns=QUARANTINE_COLUMNS)
    return frame.astype({"crawl_id": "Int64"}).drop_duplicates(
        subset=["validation_id", "table_name", "row_key", "expectation"]
    )


# --- the two validations a run makes ------------------------------------------------------

# The raw tables of one crawl or import, and the suite of each.
RAW_SUITES = {
    "raw.profiles": raw_profiles_suite,
    "raw.posts": raw_posts_suite,
    "raw.imported_media_means": raw_imported_means_suite,
}

Chunks = Iterable[pd.DataFrame]  # a table's rows, a bounded chunk at a time (at least one chunk)


def validate_crawl(
    validator: Validator,
    crawl_id: int,
    rows: Callable[[str, list[str]], Chunks],
    counts: dict[str, int],
    columns: dict[str, list[str]],
    expected: dict[str, Expected | None] | None,
) -> Validation:
    """Validate one crawl's raw rows (tables that have rows) and, given what the night expected
    of them (its plan), their volume (`counts`: rows per table, counted in SQL); find the rows
    to quarantine. `rows(table, key)` streams a table's rows, all rows of a repeated key in
    one chunk."""
    run = f"crawl-{crawl_id}"
    suites = []
    for table, make_suite in RAW_SUITES.items():
        if not counts[table] and table != "raw.profiles":  # a crawl stores profiles, maybe no posts
            continue
        key = list(relation(table).contract.key)
        chunks = rows(table, key)
        suites.append(validator.validate(chunks, make_suite(columns[table]), run, table_name=table, key=key))
    if expected is not None:
        suites.append(validate_volume(validator, {t: (counts[t], e) for t, e in expected.items()}, run))
    validator.render_docs()
    return Validation(suites, crawl_id=crawl_id)


def validate_features(
    validator: Validator, rows: Chunks, columns: list[str], previous: int | None, feature_date
) -> Validation:
    """Validate one date's feature rows as they stream from the feature query, then their
    volume (the rows the query gave); find the rows to quarantine."""
    run = f"features-{feature_date}"
    key = list(relation(FEATURES_TABLE).contract.key)
    result = validator.validate(rows, features_suite(columns), run, table_name=FEATURES_TABLE, key=key)
    expected = Expected(previous, "the previous feature date's rows") if previous else None
    volume = validate_volume(validator, {FEATURES_TABLE: (result.rows_validated, expected)}, run)
    validator.render_docs()
    return Validation([result, volume], feature_date=feature_date)
