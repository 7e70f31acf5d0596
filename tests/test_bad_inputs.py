"""Every command that takes input, walked through a table of bad inputs.

Each row: the command line, the exit code, a fragment of the one line expected on stderr.
Every refused input leaves both warehouse files (the scheduler's and the analysts' copy,
with its published folder) byte for byte as they were. Inputs refused row by row (an
import keeps the good rows) are a table of their own: the bad row is named and not stored.
"""

import os
import shutil
from pathlib import Path

import duckdb
import pytest

from support import SMALL_GRID, STUDY_HEADER, Files, assert_one_line_error, cli, environment

HEADER = STUDY_HEADER


def study_row(username: str, follower: str = "1000", image_love: str = "30") -> str:
    return f"https://www.instagram.com/{username}/,10,{follower},5,1,0,{image_love},2,0,0,0,0"


# Files the commands below are given, created in the test's folder.
FILES = {
    "empty.csv": "",
    "header-only.csv": HEADER + "\n",
    "wrong-columns.csv": "name,followers\nalpha,10\n",
    "accounts-empty.csv": "",
    # Saved by Korean Excel: cp949, Hangul in a row; refused only when read as UTF-8.
    "cp949.csv": (HEADER + "\n" + study_row("acct.00") + "\n뷰티,1,1,1,1,0,1,1,0,0,0,0\n").encode("cp949"),
    "a-folder/inside.csv": HEADER + "\n",
    "kic.toml": None,  # written per case
}
WAREHOUSE = "warehouse.duckdb"
LONG_NAME = "a" * 500

# (id, argv, kic.toml text or None, environment, exit code, fragment of the one error line)
REFUSED = [
    ("import: empty file", ["import-csv", "empty.csv"], None, {}, 1, "the file is empty"),
    ("import: header only", ["import-csv", "header-only.csv"], None, {}, 1, "header but no rows"),
    ("import: wrong columns", ["import-csv", "wrong-columns.csv"], None, {}, 1, "missing column(s)"),
    ("import: missing path", ["import-csv", "nowhere.csv"], None, {}, 1, "nowhere.csv: no such file"),
    ("import: a directory", ["import-csv", "a-folder"], None, {}, 1, "a-folder: is a directory"),
    (
        "import: cp949 read as UTF-8",
        ["import-csv", "cp949.csv", "--encoding", "utf-8"],
        None,
        {},
        1,
        "line 3 is not valid UTF-8",
    ),
    (
        "import: an unknown encoding",
        ["import-csv", "cp949.csv", "--encoding", "latin-9x"],
        None,
        {},
        1,
        "not an encoding",
    ),
    ("import: a date that does not parse", ["import-csv", "empty.csv", "--as-of", "31/12"], None, {}, 1, "not a date"),
    ("accounts add: a quote", ["accounts", "add", "o'brien"], None, {}, 1, "not an Instagram username"),
    ("accounts add: a semicolon", ["accounts", "add", "a;drop table"], None, {}, 1, "not an Instagram username"),
    ("accounts add: ../", ["accounts", "add", "../../etc/passwd"], None, {}, 1, "not an Instagram username"),
    ("accounts add: spaces", ["accounts", "add", "two words"], None, {}, 1, "not an Instagram username"),
    ("accounts add: Hangul", ["accounts", "add", "뷰티"], None, {}, 1, "not an Instagram username"),
    ("accounts add: 500 characters", ["accounts", "add", LONG_NAME], None, {}, 1, "not an Instagram username"),
    ("accounts import: missing path", ["accounts", "import", "nowhere.csv"], None, {}, 1, "no such file"),
    ("accounts import: a directory", ["accounts", "import", "a-folder"], None, {}, 1, "a-folder: is a directory"),
    (
        "accounts import: cp949 read as UTF-8",
        ["accounts", "import", "cp949.csv", "--encoding", "utf-8"],
        None,
        {},
        1,
        "line 3",
    ),
    ("accounts import: empty file", ["accounts", "import", "accounts-empty.csv"], None, {}, 1, "empty"),
    ("show: a version that does not exist", ["show", "99"], None, {}, 1, "no snapshot version 99"),
    ("show: a version that is not a number", ["show", "latest"], None, {}, 2, "Invalid value"),
    ("export: a version that does not exist", ["export", "99", "-o", "out.csv"], None, {}, 1, "99"),
    ("export: an unknown persona", ["export", "--persona", "Nobody", "-o", "out.csv"], None, {}, 1, "Nobody"),
    ("export: a missing folder", ["export", "-o", "no/such/folder/out.csv"], None, {}, 1, "no/such/folder"),
    (
        "report: a version that does not exist",
        ["report", "99", "-o", "out.html"],
        None,
        {},
        1,
        "no snapshot version 99",
    ),
    ("changes: a version that does not exist", ["changes", "1", "99"], None, {}, 1, "no snapshot version 99"),
    ("sql: a write", ["sql", "DELETE FROM raw.crawl_runs"], None, {}, 1, "refuses"),
    ("sql: COPY TO a file", ["sql", "COPY (SELECT 1) TO 'out.csv'"], None, {}, 1, "refuses COPY"),
    ("sql: two statements", ["sql", "SELECT 1; SELECT 2"], None, {}, 1, "one statement at a time"),
    ("sql: reading any file", ["sql", "FROM read_csv('/etc/passwd')"], None, {}, 1, "refuses to touch files"),
    ("sql: ATTACH the warehouse", ["sql", f"ATTACH '{WAREHOUSE}' AS w"], None, {}, 1, "refuses ATTACH"),
    # Output guards: a file to write is never the product's own, however it is named.
    ("export -o the warehouse", ["export", "-o", WAREHOUSE, "-f", "csv"], None, {}, 1, "the product's database"),
    ("export -o the copy", ["export", "-o", "analytics.duckdb"], None, {}, 1, "the product's database"),
    ("export -o the WAL", ["export", "-o", f"{WAREHOUSE}.wal", "-f", "csv"], None, {}, 1, "the product's database"),
    (
        "export -o the warehouse through ..",
        ["export", "-o", f"a-folder/../{WAREHOUSE}", "-f", "parquet"],
        None,
        {},
        1,
        "the product's database",
    ),
    ("export -o a link to the warehouse", ["export", "-o", "link.csv"], None, {}, 1, "the product's database"),
    (
        "export -o into the copy's partitions",
        ["export", "-o", "analytics.published/x.csv"],
        None,
        {},
        1,
        "analytics.published",
    ),
    ("export -o into the landing area", ["export", "-o", "landing/x.csv"], None, {}, 1, "the product's folder"),
    ("report -o the warehouse", ["report", "-o", WAREHOUSE], None, {}, 1, "the product's database"),
    ("report -o the copy being built", ["report", "-o", "analytics.duckdb.tmp"], None, {}, 1, "the product's database"),
    ("report -o into the Data Docs", ["report", "-o", "data_docs/x.html"], None, {}, 1, "the product's folder"),
    (
        "report -o into the copy's partitions",
        ["report", "-o", "analytics.published/x.html"],
        None,
        {},
        1,
        "analytics.published",
    ),
    (
        "sql --allow-files the copy's partitions",
        ["sql", "--allow-files", "analytics.published", "SELECT 1"],
        None,
        {},
        1,
        "overlaps",
    ),
    (
        "the copy named as the warehouse",
        ["recluster", "--force"],
        None,
        {"KIC_ANALYTICS_COPY": WAREHOUSE},
        1,
        "would be the analysts' copy",
    ),
    ("crawl: a date that does not parse", ["crawl", "--date", "2026-13-45"], None, {}, 1, "is not a date"),
    ("crawl: a date in the future", ["crawl", "--date", "2999-01-01"], None, {}, 1, "after today"),
    ("kic.toml: a syntax error", ["snapshots"], "warehouse = \n", {}, 1, "TOML"),
    ("kic.toml: an unknown key", ["snapshots"], "warehous = 'x.duckdb'\n", {}, 1, "warehous"),
    ("kic.toml: a wrong type", ["snapshots"], "[clustering]\nseed = 'forty-two'\n", {}, 1, "clustering.seed"),
    ("KIC_*: a wrong type", ["snapshots"], None, {"KIC_CLUSTERING__KMEANS_N_INIT": "many"}, 1, "kmeans_n_init"),
    ("KIC_*: an unknown choice", ["snapshots"], None, {"KIC_CLUSTERING__SCALING": "log"}, 1, "clustering.scaling"),
]

# (id, CSV row, the account named) for rows an import rejects while keeping the others.
REJECTED_ROWS = [
    ("text in numbers", study_row("bad.text", follower="many"), "bad.text"),
    ("negative", study_row("bad.negative", follower="-5"), "bad.negative"),
    ("NaN", study_row("bad.nan", follower="NaN"), "bad.nan"),
    ("inf", study_row("bad.inf", image_love="inf"), "bad.inf"),
    ("followers past int64", study_row("bad.overflow", follower=str(2**63)), "bad.overflow"),
    ("a 1e300 mean", study_row("bad.huge", image_love="1e300"), "bad.huge"),
]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A warehouse with one import, one snapshot and its analysts' copy, made by the CLI."""
    folder = tmp_path_factory.mktemp("bad-inputs")
    csv = folder / "cohort.csv"
    rows = [study_row(f"acct.{i:02d}", follower=str(1000 + 137 * i), image_love=str(30 + 3 * i)) for i in range(30)]
    csv.write_text(HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    with environment(SMALL_GRID):
        for args in (["import-csv", csv, "--as-of", "2026-11-01"], ["recluster"]):
            result = cli(*args, "-w", folder / WAREHOUSE)
            assert result.returncode == 0, result.stderr
    csv.unlink()
    assert (folder / "analytics.duckdb").is_file()
    return folder


@pytest.fixture
def workdir(built, tmp_path, monkeypatch):
    """The built warehouse copied into this test's folder, which is the working directory."""
    shutil.copytree(built, tmp_path, dirs_exist_ok=True)
    for name, text in FILES.items():
        if text is not None:
            (tmp_path / name).parent.mkdir(exist_ok=True)
            if isinstance(text, bytes):
                (tmp_path / name).write_bytes(text)
            else:
                (tmp_path / name).write_text(text, encoding="utf-8")
    (tmp_path / "link.csv").symlink_to(WAREHOUSE)
    for name in [n for n in os.environ if n.startswith("KIC_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def warehouse_files(folder: Path) -> Files:
    """Every warehouse file: the scheduler's, the analysts' copy and its folder."""
    files = Files(folder, lambda p: "duckdb" in p.name or "published" in str(p))
    assert WAREHOUSE in files.contents and "analytics.duckdb" in files.contents
    return files


def every_file(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir()}


@pytest.mark.parametrize("argv,toml,env,code,fragment", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_bad_input_is_refused_in_one_line_and_changes_nothing(workdir, monkeypatch, argv, toml, env, code, fragment):
    if toml is not None:
        (workdir / "kic.toml").write_text(toml, encoding="utf-8")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    before, names = warehouse_files(workdir), every_file(workdir)
    result = cli(*argv, "-w", workdir / WAREHOUSE)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert fragment in result.stderr, result.stderr
    if code == 1:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert warehouse_files(workdir) == before
    assert every_file(workdir) == names  # nothing written beside them either


def test_bad_rows_are_rejected_by_line_and_the_good_rows_are_kept(workdir):
    """One import holds every bad row of the table (one import, not one per row: imports validate
    and derive features, seconds each); each bad row is rejected on its own line."""
    csv = workdir / "mixed.csv"
    csv.write_text("\n".join([HEADER, study_row("good.one"), *(row for _, row, _ in REJECTED_ROWS), ""]))
    result = cli("import-csv", csv, "-w", workdir / WAREHOUSE, "--as-of", "2026-11-02")
    assert result.returncode == 0, result.stderr
    assert f"1 account(s) stored, {len(REJECTED_ROWS)} row(s) rejected" in result.stdout
    with duckdb.connect(str(workdir / WAREHOUSE), read_only=True) as con:
        rejected = dict(con.execute("SELECT username, line_number FROM raw.rejected_rows").fetchall())
        stored = con.execute(
            "SELECT list(DISTINCT username) FROM features.influencer_features WHERE list_contains($1, username)",
            [["good.one", *(name for _, _, name in REJECTED_ROWS)]],
        ).fetchone()[0]
    # Lines: header 1, good.one 2, then the table's rows in order.
    assert rejected == {name: line for line, (_, _, name) in enumerate(REJECTED_ROWS, start=3)}
    assert stored == ["good.one"]


def test_sql_refuses_a_files_folder_that_links_into_the_warehouse(workdir, tmp_path_factory):
    """A folder of the user's, apart from the warehouse's, holding a link to it: a COPY … TO
    through the link would write the warehouse."""
    mine = tmp_path_factory.mktemp("mine")
    (mine / "w").symlink_to(workdir / WAREHOUSE)
    before = warehouse_files(workdir)
    result = cli("sql", "-w", workdir / WAREHOUSE, "--allow-files", mine, f"COPY (SELECT 1) TO '{mine}/w' (FORMAT csv)")
    assert_one_line_error(result, f"{mine}/w -> the product's database")
    assert warehouse_files(workdir) == before
    (mine / "w").unlink()  # the same folder without the link is the user's own
    result = cli(
        "sql", "-w", workdir / WAREHOUSE, "--allow-files", mine, f"COPY (SELECT 42 AS a) TO '{mine}/w' (FORMAT csv)"
    )
    assert result.returncode == 0, result.stderr
    assert (mine / "w").read_text() == "a\n42\n"


# A damaged file: (id, which file, where its bytes are overwritten, argv, fragment of the one line).
# Offset 0 is DuckDB's main header; 12288 the first block after the three headers.
DAMAGED = [
    ("copy, a block: show", "analytics.duckdb", 12288, ["show"], "the analysts' copy"),
    ("copy, a block: snapshots", "analytics.duckdb", 12288, ["snapshots"], "the analysts' copy"),
    ("copy, a block: sql", "analytics.duckdb", 12288, ["sql", "SELECT 1"], "the analysts' copy"),
    ("copy, a block: export", "analytics.duckdb", 12288, ["export", "-o", "mine.csv"], "the analysts' copy"),
    ("copy, a block: changes", "analytics.duckdb", 12288, ["changes"], "the analysts' copy"),
    ("copy, the header: show", "analytics.duckdb", 0, ["show"], "the analysts' copy"),
    ("warehouse, a block: recluster", WAREHOUSE, 12288, ["recluster", "--force"], "is damaged (Corrupt database"),
    ("warehouse, a block: features", WAREHOUSE, 12288, ["features"], "is damaged (Corrupt database"),
    ("warehouse, the header: recluster", WAREHOUSE, 0, ["recluster"], "is not a DuckDB database file"),
]


@pytest.mark.parametrize("name,offset,argv,fragment", [r[1:] for r in DAMAGED], ids=[r[0] for r in DAMAGED])
def test_a_damaged_file_is_one_line_naming_it_and_stays_as_it_is(workdir, name, offset, argv, fragment):
    with (workdir / name).open("r+b") as file:
        file.seek(offset)
        file.write(b"\xde\xad" * 2048)
    before, names = warehouse_files(workdir), every_file(workdir)
    result = cli(*argv, "-w", workdir / WAREHOUSE)
    assert_one_line_error(result, name, fragment)
    if name == "analytics.duckdb":
        assert "publishes it anew" in result.stderr  # not "restore it from a backup": it is made again
    else:
        assert "restore it from a backup" in result.stderr
    assert warehouse_files(workdir) == before
    assert every_file(workdir) == names


def test_a_damaged_copy_is_made_anew_by_a_recluster_with_nothing_new(workdir, small_grid):
    """The next writing command publishes, even one that stores nothing."""
    with (workdir / "analytics.duckdb").open("r+b") as file:
        file.seek(12288)
        file.write(b"\xde\xad" * 2048)
    assert cli("show", "-w", workdir / WAREHOUSE).returncode == 1
    again = cli("recluster", "-w", workdir / WAREHOUSE)
    assert again.returncode == 0, again.stderr
    assert "nothing new" in again.stdout
    shown = cli("show", "-w", workdir / WAREHOUSE, "--format", "csv")
    assert shown.returncode == 0, shown.stderr
    assert "persona" in shown.stdout.splitlines()[0]
