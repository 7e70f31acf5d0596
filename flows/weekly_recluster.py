"""weekly-recluster: latest validated features → every candidate → a new snapshot → artifacts."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_image_artifact, create_markdown_artifact, create_table_artifact
from prefect.client.orchestration import get_client
from prefect.runtime import flow_run

from flows.runs import record_process
from flows.tasks import IO_TASK, PURE_TASK, as_task
from pipeline import jobs, steps
from pipeline.settings import ClusteringConfig, load_settings


def run_name() -> str:
    params = flow_run.parameters
    return f"weekly-recluster-{params.get('feature_date') or 'latest'}"


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
    clustering, table, changes, version = result.clustering, result.cluster_table, result.changes, result.version
    create_table_artifact(
        key="weekly-clusters",
        table=[
            {
                "rank": int(r.rank),
                "persona": r.persona,
                "size": int(r.size),
                "mean ER (%)": round(float(r.mean_er), 4),
                "mean active_rate (%)": round(float(r.mean_active_rate), 4),
                "follower tier": r.follower_tier,
            }
            for r in table.itertuples()
        ],
        description=f"Snapshot {version}: {clustering.published} "
        f"({clustering.parameters['published_because']}), features of {clustering.feature_date}",
    )
    path = clustering.parameters["path"]
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
            for r in clustering.candidates.itertuples()
        ],
        description=f"Snapshot {version}: every candidate tried on the {path} path "
        f"({clustering.n_influencers:,} influencers), with its mean silhouette",
    )
    create_table_artifact(
        key="weekly-persona-changes",
        table=changes.astype(object).where(changes.notna(), None).to_dict(orient="records")
        or [{"username": None, "previous_persona": None, "current_persona": None, "change": "none"}],
        description=f"Influencers whose persona changed since the previous snapshot ({len(changes)})",
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
                f"`{report.path}`. Again at any time: `kic report {report.version}`",
            ]
            + [f"### {chart.title}\n\n![{chart.title}]({chart.data_uri})\n\n{chart.caption}" for chart in key_charts]
        ),
        description=f"Snapshot {report.version}'s report and its key charts",
    )
    for chart in key_charts:
        create_image_artifact(image_url=chart.data_uri, key=f"weekly-{chart.key}", description=chart.title)


@task(name="name_run", **IO_TASK)
def name_run(result: jobs.Recluster) -> str:
    """Rename this flow run after what it made: weekly-recluster-<feature date>-v<version>[-unchanged]."""
    name = f"weekly-recluster-{result.feature_date}-v{result.version}" + ("-unchanged" if result.unchanged else "")
    with get_client(sync_client=True) as client:
        client.update_flow_run(flow_run.id, name=name)
    return name


@flow(name="weekly-recluster", flow_run_name=run_name)
def weekly_recluster(
    clustering: ClusteringConfig | None = None,
    feature_date: dt.date | None = None,
    config: str | None = None,
    warehouse: str | None = None,
    force: bool = False,
) -> dict:
    """Recluster the latest validated features with every candidate and publish a new snapshot
    (nothing, and says so, if the latest snapshot has the same data and settings, unless `force`)."""
    record_process()  # so that a run whose process dies is marked crashed
    settings = load_settings(config, **({"warehouse": warehouse} if warehouse else {}))
    result = jobs.recluster(settings, clustering, feature_date, force=force, call=as_task)
    name_run(result)
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
        "published": result.clustering.published,
        "clusters": result.clustering.n_clusters,
        "changed": len(result.changes),
        "unchanged": False,
        "report": str(report.path),
    }
