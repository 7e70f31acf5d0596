"""The README's promises: its two commands, and its example queries in the real DuckDB CLI."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")
DUCKDB_CLI = Path(sys.executable).parent / "duckdb"


def code_blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one():
    first = README.split("```")[1]
    commands = [line.split("#")[0].strip() for line in first.splitlines()[1:] if line.strip()]
    assert commands == ["uv run kic run", "uv run pytest"]
    ci = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-1] == "uv run pytest"


@pytest.fixture(scope="module")
def warehouse(main_job):
    """The analysts' copy the main job published, after two weekly snapshots."""
    path, _ = main_job
    return path.with_name("analytics.duckdb")


QUERIES = [q.strip() for block in code_blocks("sql") for q in block.split(";") if q.strip()]


@pytest.mark.parametrize("query", QUERIES, ids=[q.splitlines()[0][3:50] for q in QUERIES])
def test_readme_queries_run_in_the_duckdb_cli(warehouse, query):
    result = subprocess.run(
        [str(DUCKDB_CLI), "-readonly", "-csv", str(warehouse)],
        input=query + ";\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Error" not in result.stderr
    header = result.stdout.splitlines()[0]
    assert header  # the CLI printed the result's column names


def test_readme_settings_are_valid_and_are_the_defaults(tmp_path, monkeypatch):
    from pipeline.settings import load_settings

    (toml,) = code_blocks("toml")
    config = tmp_path / "readme.toml"
    config.write_text(toml, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("KIC_")]:
        monkeypatch.delenv(name)
    defaults = load_settings()
    monkeypatch.setenv("KIC_CONFIG", str(config))
    assert load_settings() == defaults
