"""`kic`: the command line. Errors are one line on stderr and exit status 1.

A thin shell: commands read the settings once and call the pipeline's jobs (the same
chains of steps the Prefect flows run) or, to read, open the analysts' copy.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from kic.progress import showing
from models.config import BEST_SILHOUETTE
from pipeline.settings import Settings, config_file, load_settings
from pipeline.storage import open_readable, reading
from warehouse.errors import KicError
from warehouse.vocabulary import CRAWL_SOURCES

console = Console()
if not console.is_terminal:
    console.width = max(console.width, 160)  # piped output: don't squeeze tables to 80 columns


class KicGroup(TyperGroup):
    """Turns the errors a user can act on into one line on stderr and exit status 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KicError as exc:
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(1) from None
        except typer.Exit:  # a command's own exit status (after saying why), as it is
            raise
        except Exception as exc:
            refused = refusal(exc)
            if refused is not None:
                typer.echo(f"Error: {refused}", err=True)
                raise typer.Exit(1) from None
            if not interrupted(exc):
                raise
            # Ctrl-C that a library turned into another error while handling it.
            typer.echo(f"Error: interrupted ({type(exc).__name__} while stopping)", err=True)
            raise typer.Exit(130) from None


def refusal(exc: BaseException | None) -> KicError | None:
    """The one line for a file the operating system refused (a full disk, no permission, a
    read-only file system), wherever in the chain of exceptions it was raised."""
    from warehouse.errors import duckdb_os_refusal, os_error_line

    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KicError):
            return exc
        if isinstance(exc, OSError) and (line := os_error_line(exc)) is not None:
            return line
        if type(exc).__module__.startswith(("duckdb", "_duckdb")) and (line := duckdb_os_refusal(str(exc), "")):
            return line
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def interrupted(exc: BaseException | None) -> bool:
    """Whether a KeyboardInterrupt is among the exceptions that led to `exc`."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


app = typer.Typer(
    cls=KicGroup,
    help="Cluster Instagram beauty influencers into marketing personas, snapshot by snapshot.",
    epilog="Example: kic run  (the main job on the local sandbox), then kic show; kic COMMAND --help for each.",
    no_args_is_help=True,
    rich_markup_mode="markdown",  # paragraphs reflow to the terminal's width (rich mode keeps the source's line breaks)
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
DateOption = Annotated[str | None, typer.Option("--date", help="Day the crawl describes, YYYY-MM-DD (default today).")]
# The cluster table as printed on a terminal: some of its columns, under the names csv and json
# (and SQL: clusters.profiles) give them, so that one name means one column in every format.
# ER and active_rate are percentages in all of them; the observation columns say how old
# each persona's numbers are (its oldest observation, the share older than 7 days).
TABLE_COLUMNS = [
    "rank",
    "persona",
    "size",
    "mean_er",
    "mean_active_rate",
    "median_follower",
    "follower_tier",
    "oldest_observed_on",
    "older_than_7_days",
]
UNITS = "mean_er and mean_active_rate in %"
FormatOption = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]
EncodingOption = Annotated[
    str | None, typer.Option("--encoding", help="The file's encoding (default: detect UTF-8, UTF-8 with BOM or cp949).")
]


def settings_for(warehouse: Path | None, **overrides) -> Settings:
    if warehouse is not None:
        overrides["warehouse"] = warehouse
    return load_settings(**overrides)


def parse_date(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise KicError(f"{option} {text!r} is not a date (YYYY-MM-DD)") from None


# --- output ------------------------------------------------------------------------------


def print_frame(frame, fmt: Format, title: str | None = None) -> None:
    import pandas as pd

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
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4f}"
    return str(value)


def show_clusters(frame, version: int, fmt: Format = Format.table, ages=None) -> None:
    """A snapshot's cluster table; with `ages` (warehouse.ages), how old each persona's numbers are."""
    title = f"Snapshot {version} ({UNITS})"
    if ages is not None:
        from warehouse.ages import cohort_line, with_ages

        frame, title = with_ages(frame, ages), f"{title}: {cohort_line(ages)}"
    if fmt is Format.table:
        frame = frame[[c for c in TABLE_COLUMNS if c in frame.columns]]
        if "oldest_observed_on" in frame:
            frame = frame.assign(
                oldest_observed_on=frame["oldest_observed_on"].map(
                    lambda day: "" if day != day or day is None else str(day)[:10]
                ),
                older_than_7_days=frame["older_than_7_days"].map(
                    lambda share: "" if share != share else f"{share:.0%}"
                ),
            )
    print_frame(frame, fmt, title=title)


def echo_crawl(summary, tag: str | None = None) -> None:
    """What a crawl got, in counts that add up: every account it answered for has one outcome
    (a hashtag crawl asks for none: it answers for the accounts it found)."""
    if summary.accounts_deferred:
        typer.echo(f"{summary.accounts_deferred} account(s) deferred to the next night: the quota ran out")
    outcomes = ", ".join(f"{status}: {n:,}" for status, n in summary.outcomes.items())
    answered = sum(summary.outcomes.values())
    if tag:
        accounts = f"{answered:,} account(s) found under #{tag.lstrip('#')}"
    elif answered == summary.accounts_requested:
        accounts = f"{answered:,} account(s)"
    else:
        accounts = f"{answered:,} of {summary.accounts_requested:,} account(s) requested"
    typer.echo(
        f"crawl {summary.crawl_id} ({summary.source}, {summary.status}): {accounts} [{outcomes}]: "
        f"{summary.profiles_written:,} profile(s), {summary.posts_written:,} post(s)"
        + (f" - {summary.message}" if summary.message else "")
    )
    for name, why in summary.refused.items():
        typer.echo(f"landed file refused: {name}: {why}", err=True)
    if summary.log_file:
        typer.echo(f"crawl log: {summary.log_file}")


def echo_features(features) -> None:
    summary = features.summary
    excluded = ", ".join(f"{reason}: {n}" for reason, n in summary.not_clusterable.items())
    typer.echo(
        f"features {summary.feature_date}: {summary.influencers} influencers, "
        f"{summary.clusterable} clusterable"
        + (f" (not clusterable: {excluded})" if excluded else "")
        + f"; {features.validation.quarantined} feature row(s) quarantined"
    )
    for validation in features.crawl_validations:
        failed = validation.table_failures()
        typer.echo(
            f"validated crawl {validation.crawl_id} (not validated before): "
            + ("kept out of features: " + "; ".join(failed) if failed else "passed")
        )


def echo_where(settings: Settings) -> None:
    typer.echo(
        f"warehouse: {settings.warehouse}; analysts' copy: {settings.analytics_path}; "
        f"validation report: {settings.data_docs_path / 'index.html'} "
        f"(offline summary: {settings.data_docs_path / 'offline.html'})"
    )


# --- the main job and the schedule -------------------------------------------------------


@app.command("run")
def run(
    warehouse: WarehouseOption = None,
    influencers: Annotated[
        int | None, typer.Option(help="Size of the sandbox's synthetic cohort (default 1,000).")
    ] = None,
    on: DateOption = None,
) -> None:
    """The main job: start the local sandbox, then run nightly-refresh and weekly-recluster as Prefect flows.

    Example: kic run --influencers 5000
    """
    from kic.prefect_api import prefect_api
    from pipeline.crawl import check_crawl_date
    from sandbox.server import Sandbox
    from sandbox.settings import SandboxSettings

    settings = settings_for(warehouse)
    day = parse_date(on, "--date") or settings.today()
    check_crawl_date(settings, day)
    sandbox_settings = SandboxSettings(date=day, **({"influencers": influencers} if influencers else {}))
    config = str(config_file()) if config_file().is_file() else None
    with ExitStack() as stack:
        with showing("kic run") as shown:
            shown.say("starting Prefect (a temporary server, unless kic serve's answers)")
            api = stack.enter_context(prefect_api())
            shown.say("importing the flows")
            # Imported here: Prefect and Great Expectations take seconds to import.
            from flows.nightly_refresh import nightly_refresh
            from flows.weekly_recluster import weekly_recluster

        typer.echo(f"Prefect: {api}")  # from here on, Prefect's own lines say what runs
        with Sandbox(sandbox_settings) as sandbox:
            typer.echo(f"sandbox: {sandbox_settings.influencers} synthetic influencers at {sandbox.url}, as of {day}")
            nightly = nightly_refresh(
                accounts=[a.username for a in sandbox.population.accounts],
                date=day,
                base_url=sandbox.url,
                config=config,
                warehouse=str(settings.warehouse),
                quotas=sandbox.client_quotas(),  # as an operator sets a real source's published limits
            )
        weekly = weekly_recluster(config=config, warehouse=str(settings.warehouse))
    with open_readable(settings) as con:
        from warehouse.ages import observation_ages
        from warehouse.snapshots import cluster_table

        show_clusters(
            cluster_table(con, weekly["version"]), weekly["version"], ages=observation_ages(con, weekly["version"])
        )
    typer.echo(
        f"crawl {nightly['crawl_id']}: {nightly['features']} influencers with features as of {day}, "
        f"{nightly['quarantined']} row(s) quarantined; snapshot {weekly['version']} ({weekly['published']})"
    )
    if weekly.get("unchanged"):
        typer.echo(weekly["message"])
    else:
        typer.echo(f"personas {weekly['personas']}")
    echo_where(settings)
    typer.echo(f'query it: uv run duckdb -readonly {settings.analytics_path} "FROM clusters.latest_profiles"')


@app.command("serve")
def serve(
    port: Annotated[int, typer.Option(help="Port of the Prefect server and UI on 127.0.0.1.")] = 4200,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes on this machine (crawl shards run on whichever is free).")
    ] = 1,
) -> None:
    """Run the schedule on this machine: Prefect server and UI, work pool, deployments, worker.

    Crawls the local sandbox unless a real source is configured (KIC_WEB_BASE_URL or
    KIC_GRAPH_BASE_URL). Ctrl-C or SIGTERM stops everything it started.

    Example: kic serve --port 4300 --workers 3
    """
    from kic.serve import serve_until_stopped

    serve_until_stopped(load_settings(), port, echo=typer.echo, workers=workers)


# --- collecting ----------------------------------------------------------------------------


@app.command("crawl")
def crawl(
    warehouse: WarehouseOption = None,
    source: Annotated[str, typer.Option(help="web (the web client's JSON) or graph (Graph API).")] = "web",
    accounts: Annotated[
        list[str] | None, typer.Option("--accounts", help="Accounts to crawl (default: the watchlist).")
    ] = None,
    tag: Annotated[str | None, typer.Option(help="Discover accounts posting under this hashtag.")] = None,
    on: DateOption = None,
) -> None:
    """One nightly refresh by hand: crawl, validate the new rows, derive and validate features, publish.

    Example: kic crawl --source graph --accounts some.beauty.account
    """
    from pipeline import jobs
    from pipeline.crawl import CrawlRequest

    if source not in CRAWL_SOURCES:
        raise KicError(f"--source must be {' or '.join(CRAWL_SOURCES)}, not {source!r}")
    settings = settings_for(warehouse)
    names = [n for a in accounts or [] for n in a.replace(",", " ").split()] or None
    request = CrawlRequest(source, names, tag, parse_date(on, "--date") or settings.today())
    failed = None
    with showing("kic crawl") as shown:
        try:
            refresh = jobs.refresh(settings, request, call=shown.call, progress=shown.count)
        except jobs.NightFailed as exc:  # what the night did is told first; its failure is the last line
            refresh, failed = exc.refresh, exc
        except KeyboardInterrupt:
            typer.echo(f"Error: {interrupted_crawl(shown.step, settings)}", err=True)
            raise typer.Exit(130) from None
    review = failed.review if failed is not None else refresh.review
    if review is not None and review.plan is not None:
        typer.echo(f"plan: {review.plan['arithmetic']}")
    if refresh is not None:
        echo_crawl(refresh.crawl, tag)
        typer.echo(f"validated: {refresh.validation.quarantined} raw row(s) quarantined")
        echo_features(refresh.features)
    elif review is not None and review.crawl_id is not None:
        outcomes = ", ".join(f"{status}: {n}" for status, n in review.counts.items())
        typer.echo(f"crawl {review.crawl_id} ({review.status}): {review.planned} planned [{outcomes}]")
    echo_where(settings)
    if failed is not None:
        raise failed


# The steps of a nightly refresh up to its crawl's load (one transaction: a load cut short
# leaves the landed files to load again), and those after its features are written.
UNTIL_LOADED = {None, "upgrade_warehouse", "find_unloaded_crawls", "plan_crawl", "open_crawl", "crawl", "load"}
AFTER_FEATURES = {"publish", "review_night", "judge_night"}


def interrupted_crawl(step: str | None, settings) -> str:
    """What a Ctrl-C during `kic crawl` kept, by the step it stopped (each step writes in one
    transaction, and the crawler lands its rows in files before any load)."""
    if step in UNTIL_LOADED:
        return (
            f"interrupted while crawling: what the crawl landed is kept in {settings.landing_root}; "
            "`kic load` loads it (and closes the crawl as interrupted), as does the next `kic crawl`"
        )
    if step in AFTER_FEATURES:
        return (
            f"interrupted at {step.replace('_', ' ')}: the crawl and its features are stored; "
            "the next writing command (e.g. `kic features`) publishes them to the analysts' copy"
        )
    return (
        f"interrupted at {step.replace('_', ' ')}: the crawl's rows are loaded and nothing stored was lost; "
        "`kic features` validates them and derives the features"
    )


@app.command("load")
def load(
    crawl_keys: Annotated[
        list[str] | None, typer.Argument(help="Crawls to load, by name (default: every finished crawl not loaded).")
    ] = None,
    warehouse: WarehouseOption = None,
) -> None:
    """Move crawls that landed (e.g. `scrapy crawl` run by hand) into the warehouse, each in one transaction.

    A crawl named here is loaded even if a shard never finished: it is closed as interrupted,
    its unreached accounts recorded as not crawled. `kic features` then validates it.

    Example: kic load
    """
    from pipeline import jobs
    from pipeline.crawl import unloaded_crawls

    settings = settings_for(warehouse)
    if not crawl_keys:
        crawl_keys, running = unloaded_crawls(settings)
        for key in running:
            typer.echo(f"not loaded: {key} is still running (name it to load what landed and close it)")
        if not crawl_keys:
            typer.echo(f"nothing to load in {settings.landing_root}")
            return
    with showing("kic load") as shown:
        loaded = jobs.load(settings, crawl_keys, call=shown.call)
    for summary in loaded:
        echo_crawl(summary)
    typer.echo("validate and derive features: kic features")
    echo_where(settings)


@app.command("sandbox")
def sandbox(
    port: Annotated[int | None, typer.Option(help="Port on 127.0.0.1 (default: a free one).")] = None,
    on: Annotated[str | None, typer.Option("--date", help="Day to serve (default: today).")] = None,
    influencers: Annotated[int | None, typer.Option(help="Size of the synthetic cohort.")] = None,
) -> None:
    """Serve the synthetic cohort as a local fake Instagram until Ctrl-C.

    Example: kic sandbox --port 8900 --influencers 300
    """
    import time

    from sandbox.server import Sandbox
    from sandbox.settings import SandboxSettings

    overrides = {"port": port, "date": parse_date(on, "--date"), "influencers": influencers}
    settings = SandboxSettings(**{k: v for k, v in overrides.items() if v is not None})
    with Sandbox(settings) as server:
        typer.echo(f"sandbox serving {settings.influencers} influencers as of {server.today()} at {server.url}")
        quotas = " ".join(f"KIC_QUOTAS__{name.upper()}={value:g}" for name, value in server.client_quotas().items())
        typer.echo(
            f"crawl it: KIC_WEB_BASE_URL={server.url} KIC_GRAPH_BASE_URL={server.url} {quotas} "
            f"kic crawl --tag {settings.tag}"
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            typer.echo("sandbox stopped")


accounts_app = typer.Typer(
    help="The watchlist: accounts crawled when a crawl names none.",
    epilog="Example: kic accounts add some.beauty.account, then kic accounts list",
    no_args_is_help=True,
)
app.add_typer(accounts_app, name="accounts")


@accounts_app.command("add")
def accounts_add(
    names: Annotated[list[str], typer.Argument(help="Usernames or profile URLs.")],
    warehouse: WarehouseOption = None,
) -> None:
    """Watch these accounts.

    Example: kic accounts add some.beauty.account another.account
    """
    from pipeline import jobs
    from scrapers.usernames import normalize_account

    usernames = []
    for name in names:
        username = normalize_account(name)
        if username is None:
            raise KicError(f"not an Instagram username or profile URL: {name!r}")
        usernames.append(username)
    with showing("kic accounts add") as shown:
        added = jobs.watch(settings_for(warehouse), usernames, "manual", call=shown.call)
    typer.echo(f"{added} account(s) added to the watchlist")


@accounts_app.command("import")
def accounts_import(
    path: Annotated[Path, typer.Argument(help="The study's account CSV, or one username or URL per line.")],
    warehouse: WarehouseOption = None,
    encoding: EncodingOption = None,
) -> None:
    """Watch every account listed in a file.

    Example: kic accounts import accounts.csv --encoding cp949
    """
    from pipeline import jobs
    from readers.account_lists import read_account_list
    from readers.text_files import describe

    listed = read_account_list(path, encoding)
    with showing("kic accounts import") as shown:
        added = jobs.watch(settings_for(warehouse), listed.usernames, f"file:{path.name}", call=shown.call)
    typer.echo(
        f"{added} account(s) added to the watchlist from {len(listed.usernames)} in {path}"
        f" (read as {describe(listed.encoding)})"
        + (f"; {listed.duplicates} duplicate(s) skipped" if listed.duplicates else "")
    )
    for number, value in listed.invalid:
        typer.echo(f"skipped line {number}: not an Instagram username or profile URL: {value!r}", err=True)


@accounts_app.command("list")
def accounts_list(warehouse: WarehouseOption = None, fmt: FormatOption = Format.table) -> None:
    """The watchlist.

    Example: kic accounts list --format csv
    """
    from warehouse import watchlist

    settings = settings_for(warehouse)
    with open_readable(settings) as con:
        print_frame(watchlist.list_accounts(con), fmt)


@accounts_app.command("remove")
def accounts_remove(
    names: Annotated[list[str], typer.Argument(help="Usernames to stop watching.")],
    warehouse: WarehouseOption = None,
) -> None:
    """Stop watching these accounts (what was crawled stays).

    Example: kic accounts remove some.beauty.account
    """
    from pipeline import jobs
    from scrapers.usernames import normalize_account

    with showing("kic accounts remove") as shown:
        removed = jobs.unwatch(settings_for(warehouse), [normalize_account(n) or n for n in names], call=shown.call)
    typer.echo(f"{removed} account(s) removed from the watchlist")


@app.command("import-csv")
def import_csv(
    path: Annotated[Path, typer.Argument(help="CSV in the study's layout.")],
    warehouse: WarehouseOption = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Day the data describes, YYYY-MM-DD (default today).")
    ] = None,
    encoding: EncodingOption = None,
) -> None:
    """Import a CSV of per-account means in the study's layout as one run, validate it, derive its features.

    Example: kic import-csv beauty_data_extend.csv --as-of 2020-06-01
    """
    from pipeline import jobs
    from readers.text_files import describe

    settings = settings_for(warehouse)
    with showing("kic import-csv") as shown:
        result = jobs.import_csv(
            settings, path, parse_date(as_of, "--as-of") or settings.today(), encoding, call=shown.call
        )
    landed, crawl_id = result.landed, result.load.crawl_id
    typer.echo(
        f"import {crawl_id}: {result.load.profiles_written} account(s) stored, {landed.rejected} row(s) rejected"
        + (f" ({landed.note})" if landed.note else "")
        + f"; read as {describe(landed.encoding)}"
    )
    if landed.rejected:
        typer.echo(f'see why: kic sql "FROM raw.rejected_rows WHERE crawl_id = {crawl_id}"')
    typer.echo(f"validated: {result.validation.quarantined} row(s) quarantined")
    echo_features(result.features)


# --- features and clusters ------------------------------------------------------------------


@app.command("features")
def features(
    warehouse: WarehouseOption = None,
    on: Annotated[
        str | None, typer.Option("--date", help="Feature date, YYYY-MM-DD (default: latest validated data).")
    ] = None,
) -> None:
    """Validate crawls not validated yet, then derive and validate one date's features.

    Example: kic features --date 2026-11-24
    """
    from pipeline import jobs

    with showing("kic features") as shown:
        derived = jobs.features(settings_for(warehouse), parse_date(on, "--date"), call=shown.call)
    echo_features(derived)


@app.command("recluster")
def recluster(
    warehouse: WarehouseOption = None,
    publish: Annotated[
        str | None,
        typer.Option(
            help=f"Candidate to publish, e.g. kmeans-k4, or {BEST_SILHOUETTE}; one giving a number of personas "
            "outside clustering.min_personas..max_personas (default 4..8) gives way to the nearest candidate inside."
        ),
    ] = None,
    scaling: Annotated[str | None, typer.Option(help="none, standard or minmax.")] = None,
    strategy: Annotated[
        str | None,
        typer.Option(
            help="exact, scalable or auto (default: clustering.strategy, auto). exact: K-means restarted on "
            "every influencer, PAM, complete linkage on every influencer (memory grows with the square of the "
            "cohort). scalable: K-means started on a coreset, CLARA K-medoids refined on everyone, complete "
            "linkage on at most clustering.max_micro_clusters grid cells (near-linear). auto: exact up to "
            "clustering.exact_max_influencers (2,000), scalable beyond."
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Recluster even if the data and settings are those of the latest snapshot.")
    ] = False,
    rebase: Annotated[
        bool,
        typer.Option(
            "--rebase",
            help="Redraw the personas from this week's fit (a new persona frame: ids carried over where the "
            "members match, names and regions new) instead of keeping them. Implies --force.",
        ),
    ] = False,
    on: Annotated[
        str | None,
        typer.Option("--date", help="Feature date to cluster, YYYY-MM-DD (default: the latest, refused if stale)."),
    ] = None,
) -> None:
    """Fit every candidate on the latest validated features (or those of --date) and store a new snapshot.

    ER and active_rate are percentages.

    The personas are kept from the snapshot before (its persona frame): an influencer moves only
    when its own numbers cross into another persona's region by clustering.persona_margin, and the
    frame is redrawn from the week's fit only when the population shifted, or with --rebase.
    The first snapshot publishes the fit. When the latest snapshot was built on the same data with
    the same settings, nothing is fitted or stored (see --force).

    Example: kic recluster --date 2026-11-24 --rebase
    """
    from pipeline import jobs

    settings = settings_for(warehouse)
    changes = {k: v for k, v in {"publish": publish, "scaling": scaling, "strategy": strategy}.items() if v is not None}
    if changes:
        settings = settings_for(warehouse, clustering={**settings.clustering.model_dump(), **changes})
    with showing("kic recluster") as shown:
        result = jobs.recluster(
            settings, feature_date=parse_date(on, "--date"), force=force, rebase=rebase, call=shown.call
        )
    show_clusters(result.cluster_table, result.version)
    if result.unchanged:
        typer.echo(result.unchanged_message())
        return
    stored = result.stored
    typer.echo(
        f"snapshot {result.version} ({stored.published}) of {stored.n_influencers:,} influencers, "
        f"{stored.parameters['path']} path, stored in {settings.warehouse}"
    )
    typer.echo(f"the week's fit: {stored.published}, {stored.parameters['published_because']}")
    typer.echo(f"personas {stored.frame.why}")


@app.command("snapshots")
def snapshots(warehouse: WarehouseOption = None, fmt: FormatOption = Format.table) -> None:
    """List the stored snapshots.

    Example: kic snapshots --format json
    """
    from warehouse.snapshots import list_snapshots

    settings = settings_for(warehouse)
    with open_readable(settings) as con:
        print_frame(list_snapshots(con), fmt)


@app.command("show")
def show(
    version: Annotated[int | None, typer.Argument(help="Snapshot version (default latest).")] = None,
    warehouse: WarehouseOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """The cluster table of a snapshot: one row per persona, best first.

    Mean ER and active_rate in percent; how old each persona's numbers are (its oldest
    observation, the share older than 7 days).

    Example: kic show 3 --format csv
    """
    from warehouse.ages import observation_ages
    from warehouse.snapshots import cluster_table, resolve_version

    settings = settings_for(warehouse)
    with open_readable(settings) as con:
        version = resolve_version(con, version)
        show_clusters(cluster_table(con, version), version, fmt, observation_ages(con, version))


@app.command("sql")
def sql(
    query: Annotated[str, typer.Argument(help="One SELECT-like statement, run read-only on the analysts' copy.")],
    warehouse: WarehouseOption = None,
    fmt: FormatOption = Format.table,
    allow_files: Annotated[
        Path | None,
        typer.Option(
            "--allow-files",
            metavar="DIR",
            help="At your own terminal: let the statement read files in DIR and COPY … TO a file there "
            "(a folder apart from the warehouse's and the copy's).",
        ),
    ] = None,
) -> None:
    """Run one read-only SELECT-like statement on the analysts' copy (no other files; time and rows bounded).

    Example: kic sql "FROM clusters.latest_profiles" --format csv
    """
    from pipeline.outputs import check_files_folder
    from warehouse.query import run_query

    settings = settings_for(warehouse)
    if allow_files is not None and allow_files.is_dir():
        check_files_folder(settings, allow_files)
    with showing("kic sql") as shown, reading(settings):
        shown.say("running the query")
        frame = run_query(
            settings.readable_path,
            query,
            timeout_seconds=settings.sql_timeout_seconds,
            max_rows=settings.sql_max_rows,
            files=allow_files,
            lock_wait_seconds=settings.lock_wait_seconds,
        )
    print_frame(frame, fmt)


# --- export ---------------------------------------------------------------------------------


class ExportFormat(StrEnum):
    csv = "csv"
    parquet = "parquet"
    xlsx = "xlsx"


@app.command("export")
def export(
    version: Annotated[int | None, typer.Argument(help="Snapshot version (default latest).")] = None,
    persona: Annotated[
        str | None,
        typer.Option(
            help="Only the influencers of this persona: its full name, its base name (every persona of it, "
            'e.g. "Lowest benefit") or its id.'
        ),
    ] = None,
    fmt: Annotated[
        ExportFormat | None, typer.Option("--format", "-f", help="File format (default: the output's suffix).")
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write (replaced if it exists).")] = ...,
    warehouse: WarehouseOption = None,
) -> None:
    """Export a snapshot's influencers, one row each, as csv, parquet or xlsx.

    Best persona first, then best fit: profile URL, persona, fit rank and score, followers, tier, ER
    and active_rate (%), follower growth over 7 and 28 days, the follower-jump flag, when observed,
    the feature date and the snapshot. xlsx: a workbook with a summary sheet and a sheet per
    persona, formatted for people; csv and parquet: the values as stored.

    Example: kic export 3 --persona "Low Cost High benefit" -o low-cost.csv
    """
    from pipeline import steps
    from pipeline.outputs import check_output

    settings = settings_for(warehouse)
    check_output(settings, output)  # before anything else is said of the file
    suffix = output.suffix.lower().lstrip(".")
    if fmt is None and suffix not in ExportFormat.__members__:
        raise KicError(f"say --format csv, parquet or xlsx: {output} has no suffix that names one")
    with showing("kic export") as shown:
        shown.say(f"writing {output.name}")
        exported = steps.export(settings, version, persona, str(fmt or suffix), output, shown.count)
    typer.echo(
        f"{exported.rows:,} influencer(s) of snapshot {exported.version}"
        + (f" ({exported.persona})" if exported.persona else "")
        + f" written to {exported.path}"
    )


@app.command("report")
def report(
    version: Annotated[int | None, typer.Argument(help="Snapshot version (default latest).")] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="HTML file to write (default: data/reports/snapshot-VERSION.html)."),
    ] = None,
    warehouse: WarehouseOption = None,
) -> None:
    """Write a snapshot's report as one self-contained HTML file.

    A card per persona (what it means, what it suits, its figures, its ten best fits linked to their
    profiles), personas on ER x active_rate (%), persona sizes over time and the moves since the
    last; the K-means elbow, silhouettes and the hierarchical tree in an appendix. Each persona's
    whole member list, best fit first, is a CSV in a folder beside the page
    (snapshot-VERSION-members/).

    Example: kic report 3 -o report.html
    """
    from pipeline import steps

    with showing("kic report") as shown:
        written = steps.report(settings_for(warehouse), version, output, shown.say)
    typer.echo(f"report written to {written.path}; each persona's member list in {steps.member_folder(written.path)}")


# --- persona changes ------------------------------------------------------------------------

# The changes as printed on a terminal; csv and json carry every column (values, levels, ids).
CHANGES_COLUMNS = ["username", "previous_persona", "current_persona", "change", "why"]


@app.command("changes")
def changes(
    from_version: Annotated[
        int | None, typer.Argument(metavar="[FROM]", help="Snapshot version (default: the one before TO).")
    ] = None,
    to_version: Annotated[int | None, typer.Argument(metavar="[TO]", help="Snapshot version (default latest).")] = None,
    warehouse: WarehouseOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Who changed persona between two snapshots (default: the two latest), and why.

    For each influencer: ER and active_rate (%) and their levels before and after, persona names and ids.

    Example: kic changes 3 7 --format csv
    """
    from transforms.changes import persona_changes

    settings = settings_for(warehouse)
    with showing("kic changes") as shown, open_readable(settings) as con:
        shown.say("comparing the snapshots")
        before, after, frame = persona_changes(con, from_version, to_version)
    if fmt is Format.table:
        frame = frame[CHANGES_COLUMNS]
    print_frame(frame, fmt, title=f"Snapshot {before} -> {after}: {len(frame)} influencer(s) changed persona")
