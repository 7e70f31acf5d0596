"""weekly-recluster: latest validated features → every candidate → a new snapshot → artifacts."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_image_artifact, create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run

from flows.run_names import name_run, started
from flows.runs import record_process
from flows.tasks import PURE_TASK, as_task
from models.config import ClusteringConfig
from pipeline import jobs, steps
from pipeline.settings import load_settings
from pipeline.steps import member_folder
from renderers.persona_guide import FIT_SCORE, count, look, percent, score


def run_name() -> str:
    """weekly-recluster-<feature date, or latest>-<start, HHMMSS>-<zone> (flows/run_names.py); renamed once
    it has stored its snapshot."""
    params = flow_run.parameters
    timezone = load_settings(params.get("config")).timezone
    return f"weekly-recluster-{params.get('feature_date') or 'latest'}-{started(timezone)}"


@task(name="unchanged_artifact", **PURE_TASK)
def unchanged_artifact(result: jobs.Recluster) -> None:
    """Say, as a Prefect artifact, that the run stored nothing new and which snapshot stands."""
    create_markdown_artifact(
        key="weekly-clusters",
        markdown=f"**No new snapshot**: {result.unchanged_message()}.",
        description=f"Snapshot {result.version} stands: same data, same settings",
    )


@task(name="weekly_artifacts", **PURE_TASK)
def weekly_artifacts(result: jobs.Recluster) -> None:
    """Publish the cluster table, the candidates and the persona changes as Prefect artifacts."""
    stored, table, version = result.stored, result.cluster_table, result.version
    create_table_artifact(
        key="weekly-clusters",
        table=[
            {
                "rank": int(r.rank),
                "persona": r.persona,
                "colour": look(r.persona_id).label,  # as in the report's charts and cards
                "persona id": int(r.persona_id),
                "size": int(r.size),
                "mean ER (%)": round(float(r.mean_er), 4),
                "mean active_rate (%)": round(float(r.mean_active_rate), 4),
                "follower tier": r.follower_tier,
            }
            for r in table.itertuples()
        ],
        description=f"Snapshot {version}: personas {stored.frame.why}; the week's fit: {stored.published} "
        f"({stored.parameters['published_because']}), features of {stored.feature_date}",
    )
    path = stored.parameters["path"]
    create_table_artifact(
        key="weekly-candidates",
        table=[
            {
                "candidate": r.candidate,
                "clusters": int(r.n_clusters),
                "silhouette": None if pd.isna(r.silhouette) else round(float(r.silhouette), 4),
                "silhouette_se": None if pd.isna(r.silhouette_se) else round(float(r.silhouette_se), 4),
                "scored_on": int(r.silhouette_sample_size),
                "published": bool(r.is_published),
                "method": r.method,
            }
            for r in stored.candidates.itertuples()
        ],
        description=f"Snapshot {version}: every candidate tried on the {path} path "
        f"({stored.n_influencers:,} influencers), with its mean silhouette",
    )
    persona_changes_artifact(result)


def persona_changes_artifact(result: jobs.Recluster) -> None:
    """Who changed persona since the snapshot before, and why: the largest moves, and where the full list is."""
    changes, version = result.changes, result.version
    rows = changes.astype(object).where(changes.notna(), None).to_dict(orient="records")
    counts = ", ".join(f"{kind} {n:,}" for kind, n in result.change_counts.items())
    if not result.changed:
        description = f"Snapshot {version}: no influencer changed persona since the snapshot before."
    else:
        shown = f"all {len(rows):,} shown" if len(rows) == result.changed else f"the {len(rows):,} largest moves shown"
        description = (
            f"Snapshot {version}: {result.changed:,} influencer(s) changed persona since the snapshot before "
            f"({counts}); {shown}. Personas {result.stored.frame.why}. Why: for a move, the region its own "
            f"numbers crossed into and the level that changed; each one's ER and active_rate (%) before -> after. "
            f"The full list: `kic changes {version - 1} {version}` (`-f csv` for a file), or in SQL "
            f"`FROM clusters.persona_changes({version - 1}, {version})`."
        )
    create_table_artifact(
        key="weekly-persona-changes",
        table=rows or [{"username": None, "previous_persona": None, "current_persona": None, "change": "none"}],
        description=description,
    )


@task(name="ages_artifact", **PURE_TASK)
def ages_artifact(result: jobs.Recluster, ages: pd.DataFrame) -> None:
    """Publish how old each persona's numbers are (oldest observation, share older than 7 days) as an artifact."""
    from warehouse.ages import cohort_line, with_ages

    table = with_ages(result.cluster_table, ages)
    create_table_artifact(
        key="weekly-observation-ages",
        table=[
            {
                "persona": r.persona,
                "size": int(r.size),
                "oldest observation": None if pd.isna(r.oldest_observed_on) else str(r.oldest_observed_on.date()),
                "median age (days)": None if pd.isna(r.median_age_days) else float(r.median_age_days),
                "older than 7 days": None if pd.isna(r.older_than_7_days) else f"{r.older_than_7_days:.0%}",
            }
            for r in table.itertuples()
        ],
        description=f"Snapshot {result.version}: {cohort_line(ages)}",
    )


# The report's charts shown on the run's page too (the report has them all).
KEY_CHARTS = ("scatter", "dendrogram", "moves")


@task(name="report_artifacts", **PURE_TASK)
def report_artifacts(report: steps.Report) -> None:
    """Attach the snapshot report's path and its key charts to this run as artifacts."""
    key_charts = [chart for chart in report.charts if chart.key in KEY_CHARTS]
    # Prefect renders markdown artifacts with marked, which shows data: URIs inline; the
    # image artifacts list each chart on its own in the Artifacts page as well.
    create_markdown_artifact(
        key="weekly-report",
        markdown="\n\n".join(
            [
                f"## Snapshot {report.version}: report",
                f"The whole report, one self-contained HTML file (open it in a browser, offline): "
                f"`{report.path}`, each persona's member list beside it in `{member_folder(report.path)}`. "
                f"Again at any time: `kic report {report.version}`",
                who_to_pick(report),
            ]
            + [f"### {chart.title}\n\n![{chart.title}]({chart.data_uri})\n\n{chart.caption}" for chart in key_charts]
        ),
        description=f"Snapshot {report.version}'s report and its key charts",
    )
    for chart in key_charts:
        create_image_artifact(image_url=chart.data_uri, key=f"weekly-{chart.key}", description=chart.title)


def who_to_pick(report: steps.Report, best: int = 3) -> str:
    """The personas, best first, with their colour, size, typical numbers and best fits linked to their profiles."""
    data = report.data
    lines = [
        "### Who to pick",
        "",
        "| colour | persona | influencers | typical active_rate | typical ER | best fits (fit score) |",
        "|---|---|---:|---:|---:|---|",
    ]
    for persona in data.profiles.itertuples():
        top = data.top[(data.top["cluster"] == persona.cluster) & (data.top["fit_rank"] <= best)]
        fits = ", ".join(f"[{r.username}]({r.profile_url}) ({score(r.fit_score)})" for r in top.itertuples())
        lines.append(
            f"| {look(persona.persona_id).label} | {persona.rank}. {persona.persona} | {count(persona.size)} "
            f"| {percent(persona.median_active_rate)} | {percent(persona.median_er)} | {fits} |"
        )
    return "\n".join([*lines, "", FIT_SCORE])


@flow(name="weekly-recluster", flow_run_name=run_name)
def weekly_recluster(
    clustering: ClusteringConfig | None = None,
    feature_date: dt.date | None = None,
    config: str | None = None,
    warehouse: str | None = None,
    force: bool = False,
    rebase: bool = False,
) -> dict:
    """Recluster the latest validated features with every candidate and publish a new snapshot through
    the persona frame: kept unless the population shifted or `rebase` (nothing, and says so, if the
    latest snapshot has the same data and settings, unless `force` or `rebase`)."""
    record_process()  # so that a run whose process dies is marked crashed
    settings = load_settings(config, **({"warehouse": warehouse} if warehouse else {}))
    result = jobs.recluster(settings, clustering, feature_date, force=force, rebase=rebase, call=as_task)
    made = f"v{result.version}" + ("-unchanged" if result.unchanged else "")
    name_run(f"weekly-recluster-{result.feature_date}-{made}-{started(settings.timezone)}")
    if result.unchanged:
        unchanged_artifact(result)
        get_run_logger().info(result.unchanged_message())
        message = result.unchanged_message()
        return {"version": result.version, "published": "unchanged", "unchanged": True, "message": message}
    weekly_artifacts(result)
    ages_artifact(result, as_task(steps.read_observation_ages)(settings, result.version))
    report = as_task(steps.report)(settings, result.version)
    report_artifacts(report)
    return {
        "version": result.version,
        "published": result.stored.published,
        "clusters": result.stored.n_clusters,
        "personas": result.stored.frame.why,
        "changed": result.changed,
        "unchanged": False,
        "report": str(report.path),
    }
