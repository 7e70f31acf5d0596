"""`kic`: the command line. Errors are one line on stderr and exit status 1."""

from __future__ import annotations

import json
import os
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import duckdb
import pandas as pd
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from kic.errors import KicError
from kic.settings import BEST_SILHOUETTE, Settings, config_file, load_settings
from warehouse.db import connect, first_line
from warehouse.publish import publish_copy, writing
from warehouse.snapshots import cluster_table, list_snapshots, resolve_version

console = Console()
if not console.is_terminal:
    console.width = max(console.width, 160)  # piped output: don't squeeze tables to 80 columns


class KicGroup(TyperGroup):
    """Turns the errors a user can act on into one line on stderr and exit status 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KicError as exc:
            message = str(exc)
        except ValidationError as exc:
            message = f"invalid settings (in {config_file()} or KIC_* variables): " + "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
        typer.echo(f"Error: {message}", err=True)
        raise typer.Exit(1)


app = typer.Typer(
    cls=KicGroup,
    help="Cluster Instagram beauty influencers into marketing personas, snapshot by snapshot.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


WarehouseOption = Annotated[
    Path | None,
    typer.Option("--warehouse", "-w", help="DuckDB file (default: $KIC_WAREHOUSE or data/warehouse.duckdb)."),
]
# The cluster table as printed on a terminal; csv and json carry every column.
TABLE_COLUMNS = ["rank", "persona", "size", "mean_er", "mean_active_rate", "median_follower"]
FormatOption = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]


def readable(settings: Settings) -> Path:
    """What reading commands open: the analysts' copy, else the warehouse itself."""
    return settings.analytics_path if settings.analytics_path.exists() else settings.warehouse


def settings_for(warehouse: Path | None, **overrides) -> Settings:
    if warehouse is not None:
        overrides["warehouse"] = warehouse
    return load_settings(**overrides)


def print_frame(frame: pd.DataFrame, fmt: Format, title: str | None = None) -> None:
    if fmt is Format.csv:
        typer.echo(frame.to_csv(index=False), nl=False)
        return
    if fmt is Format.json:
        typer.echo(json.dumps(json.loads(frame.to_json(orient="records", date_format="iso")), indent=2))
        return
    table = Table(title=title, title_justify="left")
    for column in frame.columns:
        numeric = pd.api.types.is_numeric_dtype(frame[column])
        table.add_column(str(column), justify="right" if numeric else "left")
    for row in frame.itertuples(index=False):
        table.add_row(*(format_cell(v) for v in row))
    console.print(table)


def format_cell(value) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4f}"
    return str(value)


def show_clusters(frame: pd.DataFrame, version: int, fmt: Format = Format.table) -> None:
    if fmt is Format.table:
        frame = frame[TABLE_COLUMNS]
    print_frame(frame, fmt, title=f"Snapshot {version}")


@app.command("run")
def run(
    warehouse: WarehouseOption = None,
    influencers: Annotated[
        int | None, typer.Option(help="Size of the sandbox's synthetic cohort (default 1,000).")
    ] = None,
    on: Annotated[
        str | None, typer.Option("--date", help="Day to crawl, YYYY-MM-DD (default today).")
    ] = None,
) -> None:
    """The main job: start the local sandbox, then run nightly-refresh and weekly-recluster as Prefect flows."""
    from kic.sandbox import Sandbox

    overrides = {}
    if influencers is not None:
        overrides["synthetic"] = {"influencers": influencers}
    settings = settings_for(warehouse, **overrides)
    # The flows read the one settings object from the environment: hand them these.
    os.environ["KIC_WAREHOUSE"] = str(settings.warehouse.resolve())
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "kic")  # the warehouse's log lines in run logs
    day = parse_date(on, "--date") or settings.today()
    settings.sandbox.date = day
    # Imported here: Prefect and Great Expectations take seconds to import.
    from flows.nightly_refresh import nightly_refresh
    from flows.weekly_recluster import weekly_recluster

    with Sandbox(settings) as sandbox:
        typer.echo(f"sandbox: {settings.synthetic.influencers} synthetic influencers at {sandbox.url}, as of {day}")
        nightly = nightly_refresh(
            accounts=[a.username for a in sandbox.population.accounts], date=day, base_url=sandbox.url
        )
    weekly = weekly_recluster()
    with connect(settings.analytics_path, read_only=True) as con:
        show_clusters(cluster_table(con, weekly["version"]), weekly["version"])
    typer.echo(
        f"crawl {nightly['crawl_id']}: {nightly['features']} influencers with features as of {day}, "
        f"{nightly['quarantined']} row(s) quarantined; snapshot {weekly['version']} ({weekly['published']})"
    )
    typer.echo(f"warehouse: {settings.warehouse}; analysts' copy: {settings.analytics_path}; "
               f"validation report: {settings.data_docs_path / 'index.html'}")
    typer.echo(f"query it: uv run duckdb -readonly {settings.analytics_path} \"FROM clusters.latest_profiles\"")


def crawl_with_progress(settings: Settings, request):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from kic.crawl import run_crawl

    with Progress(
        TextColumn("crawling"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True,
    ) as bar:
        task = bar.add_task("crawl", total=None)
        return run_crawl(settings, request, progress=lambda done, total: bar.update(task, completed=done, total=total))


def echo_crawl(summary) -> None:
    outcomes = ", ".join(f"{status}: {n}" for status, n in summary.outcomes.items())
    typer.echo(
        f"crawl {summary.crawl_id} ({summary.source}, {summary.status}): {summary.accounts_requested} "
        f"account(s), {summary.profiles_written} profile(s), {summary.posts_written} post(s) [{outcomes}]"
        + (f" - {summary.message}" if summary.message else "")
    )
    typer.echo(f"crawl log: {summary.log_file}")


@app.command("crawl")
def crawl(
    warehouse: WarehouseOption = None,
    source: Annotated[str, typer.Option(help="web (the web client's JSON) or graph (Graph API).")] = "web",
    accounts: Annotated[
        list[str] | None, typer.Option("--accounts", help="Accounts to crawl (default: the watchlist).")
    ] = None,
    tag: Annotated[str | None, typer.Option(help="Discover accounts posting under this hashtag.")] = None,
    on: Annotated[str | None, typer.Option("--date", help="Day the crawl describes (default today).")] = None,
) -> None:
    """Run one crawl into the warehouse (`scrapy crawl instagram` in a subprocess)."""
    from kic.crawl import CrawlRequest

    if source not in ("web", "graph"):
        raise KicError(f"--source must be web or graph, not {source!r}")
    settings = settings_for(warehouse)
    names = [n for a in accounts or [] for n in a.replace(",", " ").split()] or None
    echo_crawl(crawl_with_progress(settings, CrawlRequest(source, names, tag, parse_date(on, "--date"))))
    publish_copy(settings.warehouse, settings.analytics_path)


@app.command("sandbox")
def sandbox(
    port: Annotated[int | None, typer.Option(help="Port on 127.0.0.1 (default: a free one).")] = None,
    on: Annotated[str | None, typer.Option("--date", help="Day to serve (default: today).")] = None,
    influencers: Annotated[int | None, typer.Option(help="Size of the synthetic cohort.")] = None,
) -> None:
    """Serve the synthetic cohort as a local fake Instagram until Ctrl-C."""
    import time

    from kic.sandbox import Sandbox

    overrides = {"synthetic": {"influencers": influencers}} if influencers else {}
    settings = load_settings(**overrides)
    if port is not None:
        settings.sandbox.port = port
    if on is not None:
        settings.sandbox.date = parse_date(on, "--date")
    with Sandbox(settings) as server:
        typer.echo(f"sandbox serving {settings.synthetic.influencers} influencers as of "
                   f"{server.today()} at {server.url}")
        typer.echo(f"crawl it: KIC_WEB_BASE_URL={server.url} KIC_GRAPH_BASE_URL={server.url} kic crawl --tag {settings.sandbox.tag}")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            typer.echo("sandbox stopped")


@app.command("serve")
def serve(
    port: Annotated[int, typer.Option(help="Port of the Prefect server and UI on 127.0.0.1.")] = 4200,
) -> None:
    """Run the schedule on this machine: Prefect server and UI, work pool, deployments, worker.

    Crawls the local sandbox unless a real source is configured (KIC_WEB_BASE_URL or
    KIC_GRAPH_BASE_URL). Ctrl-C stops everything it started.
    """
    import time

    from kic.sandbox import Sandbox
    from kic.serve import PrefectStack
    from warehouse import watchlist

    settings = load_settings()
    env = {"KIC_WAREHOUSE": str(settings.warehouse.resolve()), "PREFECT_LOGGING_EXTRA_LOGGERS": "kic"}
    sandbox = None
    if not {"web_base_url", "graph_base_url"} & settings.model_fields_set:
        sandbox = Sandbox(settings).start()
        env["KIC_WEB_BASE_URL"] = env["KIC_GRAPH_BASE_URL"] = sandbox.url
        with connect(settings.warehouse) as con:
            if not watchlist.active_count(con):
                added = watchlist.add(con, [a.username for a in sandbox.population.accounts], "sandbox")
                typer.echo(f"watchlist was empty: added the sandbox's {added} accounts")
        typer.echo(f"crawl target: the local sandbox at {sandbox.url} (set KIC_WEB_BASE_URL for a real source)")
    stack = PrefectStack(port=port, env=env, log_dir=settings.warehouse.parent / "logs")
    try:
        with stack:
            typer.echo(f"Prefect UI: {stack.url}  (runs: {stack.url}/runs, deployments: {stack.url}/deployments)")
            typer.echo("deployments: nightly-refresh (03:00 Asia/Seoul daily), weekly-recluster (05:00 Asia/Seoul Mondays)")
            typer.echo(f"run one now: uv run prefect deployment run nightly-refresh/nightly-refresh  "
                       f"(with PREFECT_API_URL={stack.api_url})")
            typer.echo(f"analysts open: {settings.analytics_path}; logs in {settings.warehouse.parent / 'logs'}")
            typer.echo("Ctrl-C stops the worker, the server and the sandbox")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        typer.echo("stopping")
    finally:
        if sandbox is not None:
            sandbox.stop()


accounts_app = typer.Typer(help="The watchlist: accounts crawled when a crawl names none.", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")


@accounts_app.command("add")
def accounts_add(
    names: Annotated[list[str], typer.Argument(help="Usernames or profile URLs.")],
    warehouse: WarehouseOption = None,
) -> None:
    """Watch these accounts."""
    from kic.study_csv import normalize_account
    from warehouse import watchlist

    usernames = []
    for name in names:
        username = normalize_account(name)
        if username is None:
            raise KicError(f"not an Instagram username or profile URL: {name!r}")
        usernames.append(username)
    with writing(settings_for(warehouse)) as con:
        added = watchlist.add(con, usernames, "manual")
    typer.echo(f"{added} account(s) added to the watchlist")


@accounts_app.command("import")
def accounts_import(
    path: Annotated[Path, typer.Argument(help="The study's account CSV, or one username or URL per line.")],
    warehouse: WarehouseOption = None,
) -> None:
    """Watch every account listed in a file."""
    from kic.account_lists import read_account_list
    from warehouse import watchlist

    listed = read_account_list(path)
    with writing(settings_for(warehouse)) as con:
        added = watchlist.add(con, listed.usernames, f"file:{path.name}")
    typer.echo(
        f"{added} account(s) added to the watchlist from {len(listed.usernames)} in {path}"
        + (f"; {listed.duplicates} duplicate(s) skipped" if listed.duplicates else "")
    )
    for number, value in listed.invalid:
        typer.echo(f"skipped line {number}: not an Instagram username or profile URL: {value!r}", err=True)


@accounts_app.command("list")
def accounts_list(warehouse: WarehouseOption = None, fmt: FormatOption = Format.table) -> None:
    """The watchlist."""
    from warehouse import watchlist

    with connect(readable(settings_for(warehouse)), read_only=True) as con:
        print_frame(watchlist.list_accounts(con), fmt)


@accounts_app.command("remove")
def accounts_remove(
    names: Annotated[list[str], typer.Argument(help="Usernames to stop watching.")],
    warehouse: WarehouseOption = None,
) -> None:
    """Stop watching these accounts (what was crawled stays)."""
    from kic.study_csv import normalize_account
    from warehouse import watchlist

    with writing(settings_for(warehouse)) as con:
        removed = watchlist.remove(con, [normalize_account(n) or n for n in names])
    typer.echo(f"{removed} account(s) removed from the watchlist")


@app.command("import-csv")
def import_csv(
    path: Annotated[Path, typer.Argument(help="CSV in the study's layout.")],
    warehouse: WarehouseOption = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Day the data describes, YYYY-MM-DD (default today).")
    ] = None,
) -> None:
    """Import a CSV of per-account means in the study's layout as one run."""
    from kic import jobs  # lazily: reading commands start without scikit-learn
    settings = settings_for(warehouse)
    result = jobs.import_csv(settings, path, parse_date(as_of, "--as-of") or date.today())
    typer.echo(
        f"import {result.crawl_id}: {result.accounts} account(s) stored, {result.rejected} row(s) rejected"
        + (f" ({result.note})" if result.note else "")
    )
    if result.rejected:
        typer.echo(
            f"see why: kic sql \"FROM raw.rejected_rows WHERE crawl_id = {result.crawl_id}\""
        )


@app.command("features")
def features(
    warehouse: WarehouseOption = None,
    on: Annotated[
        str | None, typer.Option("--date", help="Feature date, YYYY-MM-DD (default: latest data).")
    ] = None,
) -> None:
    """Derive the features of one date from the latest crawl of each influencer."""
    from kic import jobs  # lazily: reading commands start without scikit-learn
    echo_features(jobs.features(settings_for(warehouse), parse_date(on, "--date")))


def echo_features(summary) -> None:
    excluded = ", ".join(f"{reason}: {n}" for reason, n in summary.not_clusterable.items())
    typer.echo(
        f"features {summary.feature_date}: {summary.influencers} influencers, "
        f"{summary.clusterable} clusterable" + (f" (not clusterable: {excluded})" if excluded else "")
    )


@app.command("recluster")
def recluster(
    warehouse: WarehouseOption = None,
    publish: Annotated[
        str | None,
        typer.Option(help=f"Candidate to publish, e.g. kmeans-k4, or {BEST_SILHOUETTE}."),
    ] = None,
    scaling: Annotated[str | None, typer.Option(help="none, standard or minmax.")] = None,
) -> None:
    """Fit every candidate on the latest features and store a new snapshot."""
    from kic import jobs  # lazily: reading commands start without scikit-learn
    settings = settings_for(warehouse)
    changes = {k: v for k, v in {"publish": publish, "scaling": scaling}.items() if v is not None}
    cfg = settings.clustering.model_validate({**settings.clustering.model_dump(), **changes})
    result = jobs.recluster_latest(settings, cfg)
    if result.features is not None:
        echo_features(result.features)
    show_clusters(result.cluster_table, result.version)
    typer.echo(f"snapshot {result.version} ({result.clustering.published}) stored in {settings.warehouse}")


@app.command("snapshots")
def snapshots(warehouse: WarehouseOption = None, fmt: FormatOption = Format.table) -> None:
    """List the stored snapshots."""
    with connect(readable(settings_for(warehouse)), read_only=True) as con:
        print_frame(list_snapshots(con), fmt)


@app.command("show")
def show(
    version: Annotated[int | None, typer.Argument(help="Snapshot version (default latest).")] = None,
    warehouse: WarehouseOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """The cluster table of a snapshot."""
    with connect(readable(settings_for(warehouse)), read_only=True) as con:
        version = resolve_version(con, version)
        show_clusters(cluster_table(con, version), version, fmt)


@app.command("sql")
def sql(
    query: Annotated[str, typer.Argument(help="SQL to run on the warehouse, read-only.")],
    warehouse: WarehouseOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Run a read-only SQL query on the warehouse."""
    with connect(readable(settings_for(warehouse)), read_only=True) as con:
        try:
            frame = con.execute(query).df()
        except duckdb.Error as exc:
            raise KicError(f"query failed: {first_line(exc)}") from None
    print_frame(frame, fmt)


def parse_date(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise KicError(f"{option} {text!r} is not a date (YYYY-MM-DD)") from None
