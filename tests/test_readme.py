"""The README's promises and its reference pages' (docs/): the two commands, the example queries in
the real DuckDB CLI, the settings, the command table, and what the examples write being git-ignored."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from support import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")
DOCS = {path.name: path.read_text(encoding="utf-8") for path in sorted((REPO / "docs").glob("*.md"))}
DUCKDB_CLI = Path(sys.executable).parent / "duckdb"


def code_blocks(language, *texts):
    return [block for text in texts or (README,) for block in re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)]


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


# The README's queries, and those of the reference pages in docs/.
QUERIES = [q.strip() for block in code_blocks("sql", README, *DOCS.values()) for q in block.split(";") if q.strip()]


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


def test_documented_settings_are_valid_and_are_the_defaults(tmp_path, monkeypatch):
    from pipeline.settings import load_settings

    (toml,) = code_blocks("toml", DOCS["settings.md"])
    config = tmp_path / "readme.toml"
    config.write_text(toml, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("KIC_")]:
        monkeypatch.delenv(name)
    defaults = load_settings()
    monkeypatch.setenv("KIC_CONFIG", str(config))
    assert load_settings() == defaults


def test_the_command_table_lists_every_command():
    """Every command `kic --help` lists (and each of `kic accounts`) has its row in the README's table."""
    import typer

    from kic.cli import app

    group = typer.main.get_command(app)
    table = README.split("## Commands", 1)[1].split("\n\n", 2)[1]
    rows = [re.match(r"\| `([^`]+)` \|", line)[1] for line in table.splitlines()[2:]]
    listed = {row.split()[1] for row in rows}
    assert listed == set(group.commands)
    (accounts,) = [row for row in rows if row.startswith("kic accounts")]
    for sub in group.commands["accounts"].commands:
        assert sub in accounts


def test_what_the_product_writes_in_the_project_root_is_git_ignored():
    """The default data folder, a Prefect home beside the project, and every file the shell examples
    of the README and docs/ write into the project root (`-o FILE`, `> FILE`)."""
    import shutil

    from pipeline.settings import Settings

    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    written = set()
    for block in code_blocks("sh", README, *DOCS.values()):
        written |= set(re.findall(r"(?:-o|>)\s+([\w./-]+\.\w+)", block))
    assert {"serve.log", "influencers.xlsx", "assignments.csv"} <= written
    data = Settings.model_fields["warehouse"].default.parent  # data/, the default
    paths = [
        *sorted(written),
        str(data / "warehouse.duckdb"),
        str(data / "reports" / "snapshot-1-members" / "persona-1.csv"),
        ".prefect-home/prefect.db",
        "report-members/persona-1.csv",  # beside `kic report -o report.html`
        "exports/features.parquet",
    ]
    checked = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=REPO, capture_output=True, text=True)
    assert sorted(checked.stdout.split()) == sorted(paths)
