"""The `kic` command as users run it: a real subprocess on a real warehouse file."""

import json

import pytest
from conftest import kic


def assert_one_line_error(result, *fragments):
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """The main job on a small synthetic cohort."""
    warehouse = tmp_path_factory.mktemp("cli") / "w.duckdb"
    result = kic("run", "--influencers", "300", "--date", "2026-05-01", "-w", str(warehouse))
    assert result.returncode == 0, result.stderr
    return warehouse, result


def test_main_job_prints_the_cluster_table_and_the_warehouse(ran):
    warehouse, result = ran
    assert warehouse.is_file() and warehouse.with_name("analytics.duckdb").is_file()
    assert "Lowest benefit" in result.stdout
    assert "snapshot 1 (hierarchical-complete-t20)" in result.stdout
    assert f"analysts' copy: {warehouse.with_name('analytics.duckdb')}" in result.stdout
    # Both flows ran as Prefect flow runs (Prefect logs them on stderr).
    assert "Flow run 'nightly-refresh-2026-05-01-web' - Finished in state Completed()" in result.stderr
    assert "Finished in state Completed()" in result.stderr.split("Flow run 'weekly-recluster")[-1]


def test_show_formats_agree_with_the_warehouse(ran):
    warehouse, _ = ran
    table = json.loads(kic("show", "-w", str(warehouse), "--format", "json").stdout)
    clusterable = kic("sql", "-w", str(warehouse), "-f", "csv",
                      "SELECT count(*) AS n FROM features.influencer_features WHERE is_clusterable")
    assert sum(row["size"] for row in table) == int(clusterable.stdout.splitlines()[1])
    assert sorted(row["rank"] for row in table) == list(range(1, len(table) + 1))
    csv_lines = kic("show", "1", "-w", str(warehouse), "--format", "csv").stdout.splitlines()
    assert csv_lines[0].startswith("rank,persona,cluster,size,mean_er,mean_active_rate")
    assert len(csv_lines) == len(table) + 1


def test_recluster_adds_a_snapshot_with_the_chosen_candidate(ran, tmp_path):
    warehouse, _ = ran
    result = kic("recluster", "-w", str(warehouse), "--publish", "kmeans-k4")
    assert result.returncode == 0, result.stderr
    assert "snapshot 2 (kmeans-k4)" in result.stdout
    listed = kic("snapshots", "-w", str(warehouse), "-f", "json")
    assert [s["published_candidate"] for s in json.loads(listed.stdout)][:2] == [
        "hierarchical-complete-t20", "kmeans-k4"]


def test_sql_is_read_only(ran):
    warehouse, _ = ran
    assert_one_line_error(kic("sql", "-w", str(warehouse), "DELETE FROM raw.posts"), "read-only")
    count = kic("sql", "-w", str(warehouse), "-f", "csv", "SELECT count(*) AS n FROM raw.posts")
    assert int(count.stdout.splitlines()[1]) > 0


def test_errors_are_one_line(ran, tmp_path):
    warehouse, _ = ran
    assert_one_line_error(kic("show", "99", "-w", str(warehouse)), "no snapshot version 99")
    assert_one_line_error(kic("show", "-w", str(tmp_path / "none.duckdb")), "none.duckdb")
    assert_one_line_error(kic("recluster", "-w", str(tmp_path / "empty.duckdb")), "no data")
    bad = tmp_path / "bad.csv"
    bad.write_text("account,post\nx,1\n")
    assert_one_line_error(kic("import-csv", str(bad), "-w", str(warehouse)), "bad.csv", "follower")
    assert_one_line_error(kic("run", "--date", "yesterday", "-w", str(warehouse)), "--date")
    assert_one_line_error(
        kic("recluster", "-w", str(warehouse), env={"KIC_CLUSTERING__SCALING": "log"}), "clustering.scaling"
    )


def test_settings_come_from_kic_toml_and_env_overrides_it(tmp_path):
    (tmp_path / "kic.toml").write_text(
        'warehouse = "from-file.duckdb"\n[clustering]\npublish = "kmeans-k3"\nkmeans_k = [3]\n'
        '[synthetic]\ninfluencers = 120\n'
    )
    result = kic("run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "120 synthetic influencers" in result.stdout
    assert "snapshot 1 (kmeans-k3)" in result.stdout
    assert (tmp_path / "from-file.duckdb").is_file()
    env = {"KIC_WAREHOUSE": str(tmp_path / "from-env.duckdb"), "KIC_CLUSTERING__PUBLISH": "best-silhouette"}
    result = kic("recluster", cwd=tmp_path, env=env)
    assert_one_line_error(result, "no data")  # a new, empty warehouse: the env won
    assert (tmp_path / "from-env.duckdb").exists()
    missing = kic("snapshots", env={"KIC_CONFIG": str(tmp_path / "nope.toml")}, cwd=tmp_path)
    assert_one_line_error(missing, "nope.toml")


def test_watchlist_commands_and_crawling_it(tmp_path):
    from kic.sandbox import Sandbox
    from kic.settings import Settings

    warehouse = str(tmp_path / "w.duckdb")
    assert_one_line_error(kic("crawl", "-w", warehouse), "watchlist is empty")
    listing = tmp_path / "accounts.txt"
    settings = Settings(synthetic={"influencers": 30, "seed": 3})
    with Sandbox(settings) as sandbox:
        names = [a.username for a in sandbox.population.accounts]
        listing.write_text(f"https://www.instagram.com/{names[0]}/\n@{names[1]}\n{names[2]}\nnot a name!\n{names[1]}\n")
        imported = kic("accounts", "import", str(listing), "-w", warehouse)
        assert imported.returncode == 0, imported.stderr
        assert "3 account(s) added" in imported.stdout and "1 duplicate(s)" in imported.stdout
        assert "line 4" in imported.stderr
        assert "1 account(s) added" in kic("accounts", "add", names[3], names[0], "-w", warehouse).stdout
        assert "1 account(s) removed" in kic("accounts", "remove", names[2], "-w", warehouse).stdout
        listed = json.loads(kic("accounts", "list", "-w", warehouse, "-f", "json").stdout)
        assert [a["username"] for a in listed if a["active"]] == [names[0], names[1], names[3]]

        env = {"KIC_WEB_BASE_URL": sandbox.url, "KIC_SANDBOX__DATE": "2026-06-01"}
        crawled = kic("crawl", "-w", warehouse, "--date", "2026-06-01", env=env)
    assert crawled.returncode == 0, crawled.stderr
    assert "crawl 1 (web, succeeded): 3 account(s)" in crawled.stdout
    profiles = kic("sql", "-w", warehouse, "-f", "csv", "SELECT username FROM raw.profiles ORDER BY 1")
    assert profiles.stdout.split()[1:] == sorted([names[0], names[1], names[3]])


def test_study_account_list_imports(tmp_path, study_file):
    path = study_file("beauty_influencer_account.csv")
    result = kic("accounts", "import", str(path), "-w", str(tmp_path / "w.duckdb"))
    assert result.returncode == 0, result.stderr
    assert "973 account(s) added to the watchlist from 973" in result.stdout
    assert "27 duplicate(s) skipped" in result.stdout
