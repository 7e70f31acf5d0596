"""Bad input a user can fix gives one line "Error: ..." naming it, exit status 1, and stores
nothing: broken settings, a warehouse folder that cannot be created, a warehouse cut short.
The commands run in-process (Typer's CliRunner) on real files."""

from datetime import date

import pytest

from pipeline.storage import connect
from sandbox.synthetic import Population
from support import assert_one_line_error, cli, derive, synthetic_crawl


def test_a_kic_toml_that_is_not_utf8_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kic.toml").write_bytes('timezone = "Asia/Seoul"\nwarehouse = "w\xff.duckdb"\n'.encode("latin-1"))
    assert_one_line_error(cli("snapshots"), "kic.toml", "not valid TOML", "UTF-8")


def test_a_kic_toml_that_is_not_toml_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kic.toml").write_text("[clustering\nkmeans_k = [3]\n")
    assert_one_line_error(cli("snapshots"), "kic.toml", "not valid TOML")


@pytest.mark.parametrize(
    ("variable", "value"),
    [("KIC_CLUSTERING__KMEANS_K", "[3,"), ("KIC_CLUSTERING__ELBOW_K", "[1, 2"), ("KIC_CLUSTERING", '{"publish":')],
)
def test_a_kic_variable_that_is_not_json_is_named(tmp_path, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    assert_one_line_error(cli("recluster", "-w", tmp_path / "w.duckdb"), variable, repr(value), "not valid JSON")
    assert not (tmp_path / "w.duckdb").exists()


def test_an_unknown_time_zone_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("KIC_TIMEZONE", "Mars/Olympus_Mons")
    assert_one_line_error(cli("crawl", "--accounts", "someone", "-w", tmp_path / "w.duckdb"), "timezone", "Mars")


@pytest.mark.parametrize(
    "command",
    [
        ["features"],
        ["recluster"],
        ["accounts", "add", "someone"],
        ["crawl", "--accounts", "someone", "--date", "2026-06-01"],
    ],
    ids=lambda c: c[0],
)
def test_a_warehouse_folder_that_cannot_be_created_is_named(tmp_path, command):
    (tmp_path / "taken").write_text("a file where the warehouse's folder would be")
    folder = tmp_path / "taken" / "data"
    assert_one_line_error(cli(*command, "-w", folder / "warehouse.duckdb"), str(folder), "Not a directory")


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """A warehouse with a crawl and its features, a few blocks long."""
    path = tmp_path_factory.mktemp("whole") / "warehouse.duckdb"
    with connect(path) as con:
        synthetic_crawl(con, Population(300, seed=2), date(2026, 6, 1))
        derive(con, date(2026, 6, 1))
    return path.read_bytes()


@pytest.mark.parametrize("kept", [0.25, 0.5, 0.9, 0.999])
@pytest.mark.parametrize(
    "command", [["sql", "SELECT count(*) FROM raw.profiles"], ["recluster"], ["features"]], ids=lambda c: c[0]
)
def test_a_warehouse_cut_short_is_named_and_left_as_it_is(whole, tmp_path, kept, command, small_grid):
    warehouse = tmp_path / "warehouse.duckdb"
    cut = whole[: int(len(whole) * kept)]
    warehouse.write_bytes(cut)
    result = cli(*command, "-w", warehouse)
    assert_one_line_error(result, str(warehouse))
    assert warehouse.read_bytes() == cut  # nothing written into it
    assert {p.name for p in tmp_path.iterdir()} == {"warehouse.duckdb"}  # no copy published, no WAL
