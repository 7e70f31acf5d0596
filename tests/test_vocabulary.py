"""Fixed vocabularies have one definition (warehouse.vocabulary); the SQL may only use its values."""

import re

from transforms.features import sql as feature_sql
from transforms.validation import NOT_CLUSTERABLE_REASONS
from warehouse.db import migrations, views
from warehouse.vocabulary import READ_OUTCOMES, READABLE_RUNS, AccountStatus, RunStatus

ALL_SQL = "\n".join(sql for _, _, sql in [*migrations(), *views()])


def literals_compared_to(column: str, sql: str) -> set[str]:
    """The quoted values a SQL text compares `column` with (`x.status IN ('a', 'b')`, `status = 'a'`)."""
    found = set()
    for match in re.finditer(rf"\b{column}\s+(?:NOT\s+)?IN\s*\(([^)]*)\)|\b{column}\s*=\s*('[^']*')", sql, re.I):
        found |= set(re.findall(r"'([^']*)'", match.group(1) or match.group(2)))
    return found


def test_the_run_status_check_constraint_lists_exactly_the_vocabulary():
    (check,) = re.findall(r"CHECK \(status IN \(([^)]*)\)\)", ALL_SQL)
    assert set(re.findall(r"'([^']*)'", check)) == set(RunStatus)


def test_views_read_the_runs_and_outcomes_the_vocabulary_calls_readable():
    staging = next(sql for _, name, sql in views() if name == "staging")
    readable = staging.split("CREATE OR REPLACE VIEW staging.readable_crawls")[1].split(";")[0]
    assert literals_compared_to("r.status", readable) == set(READABLE_RUNS)
    account_crawls = staging.split("CREATE OR REPLACE VIEW staging.account_crawls")[1].split(";")[0]
    assert literals_compared_to("o.status", account_crawls) == set(READ_OUTCOMES)
    every_status = literals_compared_to(r"\w*\.?status", ALL_SQL)
    assert every_status <= set(RunStatus) | set(AccountStatus), every_status - set(RunStatus) - set(AccountStatus)


def test_the_features_sql_gives_only_the_reasons_validation_knows():
    case = feature_sql("influencer_features").split("AS not_clusterable_reason")[0].rsplit("CASE", 1)[1]
    assert set(re.findall(r"THEN '([^']*)'", case)) == set(NOT_CLUSTERABLE_REASONS)
