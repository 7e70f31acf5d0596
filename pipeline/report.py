"""A snapshot's report: its charts drawn with matplotlib, in one self-contained HTML file.

Pure: from ReportData (warehouse/report.py) to HTML text. Every chart is a PNG embedded as
a data: URL, so the file opens offline and loads nothing from anywhere.
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from warehouse.report import LOG_FLOOR, ReportData

COLOURS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666", "#1f78b4")
NOT_IN = "(not in it)"


def png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def colour_of(personas: list[str]) -> dict[str, str]:
    return {persona: COLOURS[i % len(COLOURS)] for i, persona in enumerate(personas)}


def scatter(data: ReportData, colours: dict[str, str]) -> Figure:
    """ER x active_rate by persona on log axes: one point per influencer, or per grid cell."""
    figure = Figure(figsize=(7.5, 5.5))
    ax = figure.subplots()
    points = data.points
    for persona, colour in colours.items():
        mine = points[points["persona"] == persona]
        if mine.empty:
            continue
        x, y = np.maximum(mine["er"], LOG_FLOOR), np.maximum(mine["active_rate"], LOG_FLOOR)
        if data.drawn_as_density:  # a cell's area grows with how many influencers it holds
            size = 4 + 60 * np.sqrt(mine["influencers"] / points["influencers"].max())
            ax.scatter(x, y, s=size, c=colour, alpha=0.55, linewidths=0, label=persona)
        else:
            ax.scatter(x, y, s=9, c=colour, alpha=0.7, linewidths=0, label=persona)
    ax.set(xscale="log", yscale="log", xlabel="ER (%)", ylabel="active_rate (%)")
    how = "density: marker area per grid cell" if data.drawn_as_density else "one point per influencer"
    ax.set_title(f"Influencers by persona ({how})")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    return figure


def elbow(data: ReportData) -> Figure:
    figure = Figure(figsize=(5, 3.5))
    ax = figure.subplots()
    ax.plot(data.elbow["k"], data.elbow["sse"], marker="o")
    ax.set(xlabel="K", ylabel="within-cluster sum of squares", title="K-means elbow")
    return figure


def silhouettes(data: ReportData) -> Figure:
    candidates = data.candidates
    figure = Figure(figsize=(6, 0.35 * len(candidates) + 1.2))
    ax = figure.subplots()
    scores = candidates["silhouette"].astype("Float64").fillna(0).to_numpy(dtype=float)
    colours = ["#d95f02" if published else "#7f7f7f" for published in candidates["is_published"]]
    ax.barh(candidates["candidate"], scores, color=colours)
    ax.invert_yaxis()
    ax.set(xlabel="mean silhouette", title="Silhouette per candidate (published in orange)")
    return figure


def sizes_over_time(data: ReportData, colours: dict[str, str]) -> Figure:
    table = data.sizes_over_time.pivot_table(index="version", columns="persona", values="size", aggfunc="sum")
    figure = Figure(figsize=(7.5, 4))
    ax = figure.subplots()
    bottom = np.zeros(len(table))
    for persona in table.columns:
        sizes = table[persona].fillna(0).to_numpy()
        ax.bar(table.index.astype(str), sizes, bottom=bottom, color=colours.get(persona, "#bbbbbb"), label=persona)
        bottom += sizes
    ax.set(xlabel="snapshot", ylabel="influencers", title="Persona sizes over the last snapshots")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    return figure


def transitions(data: ReportData) -> pd.DataFrame:
    """Influencers per (previous persona, current persona): rows previous, columns current."""
    moves = data.moves.fillna(NOT_IN)
    return moves.pivot_table(
        index="previous_persona", columns="current_persona", values="influencers", aggfunc="sum", fill_value=0
    )


def moves_heatmap(data: ReportData) -> Figure:
    table = transitions(data)
    figure = Figure(figsize=(1.1 * len(table.columns) + 3, 0.5 * len(table) + 2))
    ax = figure.subplots()
    ax.imshow(np.log1p(table.to_numpy()), cmap="Blues", aspect="auto")
    ax.set_xticks(range(len(table.columns)), table.columns, rotation=35, ha="right", fontsize=7)
    ax.set_yticks(range(len(table.index)), table.index, fontsize=7)
    for (i, j), count in np.ndenumerate(table.to_numpy()):
        ax.text(j, i, f"{count:,}", ha="center", va="center", fontsize=7)
    ax.set(
        xlabel=f"persona in snapshot {data.snapshot['version']}",
        ylabel=f"persona in snapshot {data.previous_version}",
        title="Moves between the last two snapshots",
    )
    return figure


def chart(title: str, figure: Figure, caption: str) -> str:
    return (
        f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{png(figure)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def render(data: ReportData) -> str:
    """The report as one HTML document."""
    snapshot = data.snapshot
    colours = colour_of(list(data.profiles["persona"]))
    units = {"mean_er": "mean ER (%)", "mean_active_rate": "mean active_rate (%)", "median_follower": "followers"}
    profiles = data.profiles.rename(columns=units)
    charts = [
        chart("personas", scatter(data, colours), "Each persona's influencers, ER against active_rate (log axes)."),
        chart("elbow", elbow(data), "K-means within-cluster sum of squares by K."),
        chart("silhouettes", silhouettes(data), "Mean silhouette of every candidate tried."),
        chart("sizes", sizes_over_time(data, colours), "Influencers per persona, snapshot by snapshot."),
    ]
    if data.previous_version is not None:
        charts.append(chart("moves", moves_heatmap(data), "How many influencers went from which persona to which."))
        moves = transitions(data).to_html(classes="moves")
    else:
        moves = "<p>The first snapshot: nothing to compare with.</p>"
    facts = (
        f"{int(snapshot['n_influencers']):,} influencers, features of {snapshot['feature_date']:%Y-%m-%d}, "
        f"{int(snapshot['n_clusters'])} personas from {snapshot['published_candidate']} "
        f"({snapshot['published_because'] or 'as set'}), {snapshot['path']} path"
    )
    title = f"Snapshot {int(snapshot['version'])}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}: personas</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 1100px; }}
table {{ border-collapse: collapse; font-size: 0.85rem; }}
td, th {{ border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: right; }}
figure {{ margin: 1.5rem 0; }} figcaption {{ color: #555; font-size: 0.85rem; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>{html.escape(title)}: personas</h1>
<p>{html.escape(facts)}. ER and active_rate are percentages.</p>
{profiles.to_html(index=False, float_format=lambda v: f"{v:,.2f}")}
{"".join(charts)}
<h2>Moves since snapshot {data.previous_version if data.previous_version is not None else "-"}</h2>
{moves}
</body></html>
"""
