"""The `kic` command as users run it, on real warehouse files: in-process (Typer's CliRunner),
plus a subprocess smoke test of the installed command."""

import json
import re
from datetime import date

import pytest

from pipeline.settings import Settings
from pipeline.storage import connect
from sandbox.server import Sandbox
from sandbox.settings import SandboxSettings
from sandbox.synthetic import Population
from support import (
    MAIN_JOB_DAYS,
    assert_one_line_error,
    cli,
    kic,
    mark_validated,
    study_path,
    synthetic_crawl,
)


def test_main_job_prints_the_cluster_table_and_the_warehouse(main_job):
    warehouse, runs = main_job
    assert warehouse.is_file() and warehouse.with_name("analytics.duckdb").is_file()
    first, second = runs
    assert "Lowest benefit" in first.stdout
    assert "snapshot 1 (hierarchical-complete-t20)" in first.stdout
    assert "snapshot 2 (hierarchical-complete-t20)" in second.stdout
    assert f"analysts' copy: {warehouse.with_name('analytics.duckdb')}" in first.stdout
    assert f"as of {MAIN_JOB_DAYS[0]}" in first.stdout and f"as of {MAIN_JOB_DAYS[1]}" in second.stdout


def test_show_formats_agree_with_the_warehouse(main_job):
    warehouse, _ = main_job
    table = json.loads(cli("show", "-w", warehouse, "--format", "json").stdout)
    clusterable = cli("sql", "-w", warehouse, "-f", "csv", "SELECT count(*) AS n FROM clusters.latest_assignments")
    assert sum(row["size"] for row in table) == int(clusterable.stdout.splitlines()[1])
    assert sorted(row["rank"] for row in table) == list(range(1, len(table) + 1))
    csv_lines = cli("show", "1", "-w", warehouse, "--format", "csv").stdout.splitlines()
    assert csv_lines[0].startswith("rank,persona,persona_id,cluster,size,mean_er,mean_active_rate")
    assert len(csv_lines) > 1
    # How old each persona's numbers are: the second night read every account that night.
    assert {(row["oldest_observed_on"][:10], row["older_than_7_days"]) for row in table} == {(MAIN_JOB_DAYS[1], 0.0)}
    shown = cli("show", "-w", warehouse).stdout
    assert "oldest_observed_on" in shown and f"numbers observed from {MAIN_JOB_DAYS[1]} on" in shown
    # One name per column in every format: the table's headers are csv's (and json's) names.
    printed = cli("show", "1", "-w", warehouse).stdout
    headers = re.findall(
        r"[a-z0-9_]+", next(line for line in printed.splitlines() if "persona" in line and "rank" in line)
    )
    assert headers[:7] == ["rank", "persona", "size", "mean_er", "mean_active_rate", "median_follower", "follower_tier"]
    assert set(headers) <= set(csv_lines[0].split(",")) and set(headers) <= set(table[0])
    assert "mean_er and mean_active_rate in %" in printed


def test_recluster_adds_a_snapshot_with_the_chosen_candidate(main_job_copy):
    result = cli("recluster", "-w", main_job_copy, "--publish", "kmeans-k4", "--strategy", "scalable")
    assert result.returncode == 0, result.stderr
    assert "snapshot 3 (kmeans-k4)" in result.stdout and "scalable path" in result.stdout
    methods = cli(
        "sql",
        "-w",
        main_job_copy,
        "-f",
        "csv",
        "SELECT DISTINCT split_part(method, ':', 1) AS m FROM clusters.candidates WHERE version = 3",
    ).stdout.split()
    assert methods == ["m", "scalable"]
    listed = json.loads(cli("snapshots", "-w", main_job_copy, "-f", "json").stdout)
    assert [s["published_candidate"] for s in listed] == [
        "hierarchical-complete-t20",
        "hierarchical-complete-t20",
        "kmeans-k4",
    ]


def test_sql_is_read_only(main_job):
    warehouse, _ = main_job
    assert_one_line_error(cli("sql", "-w", warehouse, "DELETE FROM raw.crawl_runs"), "read-only")
    count = cli("sql", "-w", warehouse, "-f", "csv", "SELECT count(*) AS n FROM raw.crawl_runs")
    assert int(count.stdout.splitlines()[1]) > 0
    # Posts are not in the analysts' copy (too big to publish every night): said plainly.
    assert_one_line_error(cli("sql", "-w", warehouse, "SELECT count(*) FROM raw.posts"), "not in the analysts' copy")


def test_errors_are_one_line(main_job, tmp_path):
    warehouse, _ = main_job
    assert_one_line_error(cli("show", "99", "-w", warehouse), "no snapshot version 99")
    assert_one_line_error(cli("show", "-w", tmp_path / "none.duckdb"), "none.duckdb")
    bad = tmp_path / "bad.csv"
    bad.write_text("account,post\nx,1\n")
    assert_one_line_error(cli("import-csv", bad, "-w", tmp_path / "w.duckdb"), "bad.csv", "follower")
    assert_one_line_error(cli("run", "--date", "yesterday", "-w", tmp_path / "w.duckdb"), "--date")


def test_recluster_of_an_empty_warehouse_says_what_to_run(tmp_path):
    assert_one_line_error(cli("recluster", "-w", tmp_path / "empty.duckdb"), "no data", "kic import-csv")


def test_a_date_after_today_is_refused_before_anything_runs(tmp_path):
    future = date.fromordinal(Settings().today().toordinal() + 2).isoformat()
    for command in (["run"], ["crawl", "--accounts", "someone"]):
        assert_one_line_error(cli(*command, "--date", future, "-w", tmp_path / "w.duckdb"), future, "after today")
    assert not (tmp_path / "w.duckdb").exists()


def test_bad_settings_are_one_line_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("KIC_CLUSTERING__SCALING", "log")
    assert_one_line_error(cli("recluster", "-w", tmp_path / "w.duckdb"), "clustering.scaling")
    monkeypatch.delenv("KIC_CLUSTERING__SCALING")
    monkeypatch.setenv("KIC_CONFIG", str(tmp_path / "nope.toml"))
    assert_one_line_error(cli("snapshots"), "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("warehouse = \n")
    monkeypatch.setenv("KIC_CONFIG", str(broken))
    assert_one_line_error(cli("snapshots"), "broken.toml", "TOML")


def test_settings_come_from_kic_toml_and_env_overrides_it(tmp_path, monkeypatch):
    (tmp_path / "kic.toml").write_text(
        'warehouse = "from-file.duckdb"\n[clustering]\npublish = "kmeans-k3"\nmin_personas = 3\nkmeans_k = [3]\n'
        "kmedoids_k = []\nelbow_k = [1]\n"
    )
    monkeypatch.chdir(tmp_path)
    with connect(tmp_path / "from-file.duckdb") as con:
        synthetic_crawl(con, Population(60, seed=4), date(2026, 5, 1), validated=False)
    assert "features 2026-05-01: 60 influencers" in cli("features").stdout  # validates, then derives
    result = cli("recluster")
    assert result.returncode == 0, result.stderr
    assert "snapshot 1 (kmeans-k3)" in result.stdout and "from-file.duckdb" in result.stdout
    monkeypatch.setenv("KIC_WAREHOUSE", str(tmp_path / "from-env.duckdb"))
    monkeypatch.setenv("KIC_CLUSTERING__PUBLISH", "best-silhouette")
    assert_one_line_error(cli("recluster"), "no data")  # a new, empty warehouse: the env won
    assert (tmp_path / "from-env.duckdb").exists()


def test_recluster_refuses_stale_features_and_kic_features_validates_them(tmp_path, small_grid):
    warehouse = tmp_path / "w.duckdb"
    population = Population(60, seed=8)
    with connect(warehouse) as con:
        synthetic_crawl(con, population, date(2026, 5, 1), validated=False)  # a crawl no one validated
    assert_one_line_error(cli("recluster", "-w", warehouse), "no features yet", "not validated", "kic features")
    derived = cli("features", "-w", warehouse)
    assert derived.returncode == 0, derived.stderr
    assert "validated crawl 1 (not validated before): passed" in derived.stdout
    assert cli("recluster", "-w", warehouse).returncode == 0
    with connect(warehouse) as con:  # a newer, validated crawl: the features are stale again
        mark_validated(con, synthetic_crawl(con, population, date(2026, 5, 8), validated=False))
    assert_one_line_error(cli("recluster", "-w", warehouse), "features are stale", "2026-05-01", "kic features")
    with connect(warehouse, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM clusters.snapshots").fetchall() == [(1,)]
        assert con.execute("SELECT DISTINCT feature_date FROM features.influencer_features").fetchall() == [
            (date(2026, 5, 1),)
        ]  # reading for the recluster derived nothing


def test_watchlist_commands(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    assert_one_line_error(cli("crawl", "-w", warehouse, "--date", "2026-06-01"), "watchlist is empty")
    listing = tmp_path / "accounts.txt"
    names = [a.username for a in Population(30, seed=3).accounts]
    listing.write_text(f"https://www.instagram.com/{names[0]}/\n@{names[1]}\n{names[2]}\nnot a name!\n{names[1]}\n")
    imported = cli("accounts", "import", listing, "-w", warehouse)
    assert imported.returncode == 0, imported.stderr
    assert "3 account(s) added" in imported.stdout and "1 duplicate(s)" in imported.stdout
    assert "line 4" in imported.stderr
    assert "1 account(s) added" in cli("accounts", "add", names[3], names[0], "-w", warehouse).stdout
    assert "1 account(s) removed" in cli("accounts", "remove", names[2], "-w", warehouse).stdout
    listed = json.loads(cli("accounts", "list", "-w", warehouse, "-f", "json").stdout)
    assert [a["username"] for a in listed if a["active"]] == [names[0], names[1], names[3]]


@pytest.mark.e2e
def test_kic_crawl_refreshes_the_watchlist(tmp_path, monkeypatch):
    warehouse = tmp_path / "w.duckdb"
    settings = SandboxSettings(influencers=30, seed=3, date=date(2026, 6, 1))
    with Sandbox(settings) as sandbox:
        names = [a.username for a in sandbox.population.accounts]
        assert cli("accounts", "add", names[0], names[1], names[3], "-w", warehouse).returncode == 0
        monkeypatch.setenv("KIC_WEB_BASE_URL", sandbox.url)
        crawled = cli("crawl", "-w", warehouse, "--date", "2026-06-01")
    assert crawled.returncode == 0, crawled.stderr
    assert "crawl 1 (web, succeeded): 3 account(s)" in crawled.stdout
    assert "validated: 0 raw row(s) quarantined" in crawled.stdout
    assert "features 2026-06-01: 3 influencers" in crawled.stdout  # kic crawl is a whole refresh
    profiles = cli("sql", "-w", warehouse, "-f", "csv", "SELECT username FROM raw.profiles ORDER BY 1")
    assert profiles.stdout.split()[1:] == sorted([names[0], names[1], names[3]])
    suites = cli("sql", "-w", warehouse, "-f", "csv", "SELECT DISTINCT suite FROM quality.validation_runs ORDER BY 1")
    assert suites.stdout.split()[1:] == ["features", "raw_posts", "raw_profiles", "volume"]


@pytest.mark.e2e
def test_kic_crawl_by_hashtag_counts_the_accounts_it_found(tmp_path, monkeypatch):
    """A hashtag crawl asks for no account: it answers for those it finds, and says so in counts
    that add up (accounts = outcomes; profiles = the accounts whose profile was read)."""
    warehouse = tmp_path / "w.duckdb"
    settings = SandboxSettings(influencers=30, seed=3, date=date(2026, 6, 1), tag_page_size=12)
    with Sandbox(settings) as sandbox:
        monkeypatch.setenv("KIC_WEB_BASE_URL", sandbox.url)
        monkeypatch.setenv("KIC_TAG_MAX_PAGES", "1")
        crawled = cli("crawl", "-w", warehouse, "--tag", "뷰티", "--date", "2026-06-01")
    assert crawled.returncode == 0, crawled.stderr
    ((outcomes, profiles),) = [
        tuple(int(v) for v in line.split(","))
        for line in cli(
            "sql",
            "-w",
            warehouse,
            "-f",
            "csv",
            "SELECT (SELECT count(*) FROM raw.account_outcomes), (SELECT count(*) FROM raw.profiles)",
        ).stdout.splitlines()[1:]
    ]
    assert outcomes == 12
    line = next(line for line in crawled.stdout.splitlines() if line.startswith("crawl 1 "))
    said = re.fullmatch(
        r"crawl 1 \(web, succeeded\): (\d+) account\(s\) found under #뷰티 \[(.*)\]: (\d+) profile\(s\), .*", line
    )
    assert said, line
    assert int(said[1]) == outcomes == sum(int(n) for n in re.findall(r": (\d+)", said[2]))
    assert int(said[3]) == profiles


def test_study_account_list_imports(tmp_path):
    path = study_path("beauty_influencer_account.csv")
    result = cli("accounts", "import", path, "-w", tmp_path / "w.duckdb")
    assert result.returncode == 0, result.stderr
    assert "973 account(s) added to the watchlist from 973" in result.stdout
    assert "27 duplicate(s) skipped" in result.stdout


@pytest.mark.e2e
def test_the_installed_command_runs_and_errors_in_one_line(tmp_path):
    """Smoke test of `python -m kic` in a subprocess, as the README's users run it."""
    assert "Usage" in kic("--help").stdout
    assert_one_line_error(kic("show", "-w", str(tmp_path / "none.duckdb")), "none.duckdb")


@pytest.mark.e2e
def test_ctrl_c_as_the_recluster_starts_stops_kic_run_and_its_server_within_seconds(tmp_path):
    """As at a terminal: SIGINT to kic run's whole process group once the weekly flow runs.
    kic run records the crash and exits 130; the temporary Prefect server it started is gone
    (before, the server died first and reporting the crash to it retried for minutes)."""
    import os
    import re
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    from support import as_at_a_terminal, subprocess_env

    log = tmp_path / "run.log"
    with log.open("wb") as out:
        run = subprocess.Popen(
            # Enough influencers for the scalable path (exact_max_influencers = 2,000): its fit
            # lasts seconds, and the signal lands in it whatever the machine's load.
            [sys.executable, "-m", "kic", "run", "--influencers", "2400"],
            cwd=tmp_path,
            env=subprocess_env({"PREFECT_API_URL": ""}),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=as_at_a_terminal,
        )
    try:
        deadline = time.monotonic() + 300
        # Once the fit's body has begun (its first log line), the signal lands in the fit. (Sent
        # between tasks, it may land in Prefect's set-up of a task run, which Prefect does not
        # survive cleanly: "Task run is not set". kic still exits 130, but with Prefect's traceback.)
        started = "fitting the candidates on"
        while started not in log.read_text() and run.poll() is None:
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.05)
        ended_before_the_signal = run.poll()
        os.killpg(run.pid, signal.SIGINT)
        # Interrupted, as a shell sees it ($? = 130): exit status 130 (Typer's), or killed by the
        # SIGINT itself, which CPython re-raises when a KeyboardInterrupt ends the interpreter
        # (seen once under load, after the crash was recorded).
        status = run.wait(timeout=60)
        # What the run said from the fit on: where the signal landed (once, in CI, the run went on
        # to exit 0; not seen again in 9 runs since).
        told = log.read_text().partition(started)[2][:3000]
        assert status in (130, -signal.SIGINT), (ended_before_the_signal, told)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    said = log.read_text()
    assert "Crashed" in said and "Traceback" not in said[said.index("Flow run 'weekly-recluster") :]
    api = re.search(r"temporary local server at (\S+/api)", said).group(1)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{api}/health", timeout=2)


def test_an_error_raised_while_handling_ctrl_c_counts_as_the_interrupt():
    from kic.cli import interrupted

    def prefect_like():
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise ValueError("Task run is not set")  # noqa: B904 - as the library does

    with pytest.raises(ValueError) as caught:
        prefect_like()
    assert interrupted(caught.value)
    assert not interrupted(ValueError("a plain error"))


def test_every_commands_help_ends_with_an_example_that_parses():
    """As sqlite-utils does: each command's --help ends with one `Example: kic …` line, and the
    example is a valid command line for that command (its options and arguments parse)."""
    import shlex

    import typer

    from kic.cli import app

    group = typer.main.get_command(app)
    commands = [([name], command) for name, command in group.commands.items() if name != "accounts"]
    commands += [(["accounts", name], command) for name, command in group.commands["accounts"].commands.items()]
    for path, command in commands:
        last = command.help.strip().splitlines()[-1]
        words = shlex.split(last.removeprefix("Example: "))
        assert words[: 1 + len(path)] == ["kic", *path], (path, last)
        command.make_context(" ".join(path), words[1 + len(path) :])  # raises if they do not parse
    # The command itself and the accounts group end theirs with an example too (their epilog).
    for path, command in ([], group), (["accounts"], group.commands["accounts"]):
        assert command.epilog.startswith(" ".join(["Example: kic", *path])), (path, command.epilog)
