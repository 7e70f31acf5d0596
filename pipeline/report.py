"""A snapshot's report: its charts drawn with matplotlib, in one self-contained HTML file.

Pure: from ReportData (warehouse/report.py) to HTML text. Every chart is a PNG embedded as
a data: URL, so the file opens offline and loads nothing from anywhere.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.cluster.hierarchy import dendrogram

from warehouse.ages import cohort_line
from warehouse.report import LOG_FLOOR, ReportData

COLOURS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666", "#1f78b4")
NOT_IN = "(not in it)"


@dataclass(frozen=True)
class Chart:
    """One drawn chart: `key` names it in the page and in the weekly run's artifacts."""

    key: str
    title: str
    caption: str
    png: bytes

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")

    def html(self) -> str:
        return (
            f'<figure id="{self.key}"><img alt="{html.escape(self.title)}" src="{self.data_uri}">'
            f"<figcaption>{html.escape(self.caption)}</figcaption></figure>"
        )


def png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


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


def tree_linkage(merges: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """SciPy's linkage matrix of the stored top merges, and the influencers under each of its leaves."""
    leaves = len(merges) + 1
    children = np.concatenate([merges["left"], merges["right"]])
    sizes = np.concatenate([merges["left_size"], merges["right_size"]])
    leaf_size = np.zeros(leaves, dtype=np.int64)
    leaf_size[children[children < leaves]] = sizes[children < leaves]
    # SciPy's fourth column counts the leaves under a node: here truncated leaves, one each.
    count = np.ones(2 * leaves - 1)
    for m, (left, right) in enumerate(zip(merges["left"], merges["right"], strict=True)):  # <= 30 merges
        count[leaves + m] = count[left] + count[right]
    linkage = np.column_stack([merges["left"], merges["right"], merges["height"], count[leaves:]]).astype(float)
    return linkage, leaf_size


def tree(data: ReportData) -> Figure:
    """The top of the hierarchical tree, each leaf a subtree labelled with its influencers; the cuts tried as lines."""
    figure = Figure(figsize=(8, 4.5))
    ax = figure.subplots()
    linkage, leaf_size = tree_linkage(data.dendrogram)
    dendrogram(linkage, ax=ax, leaf_label_func=lambda leaf: f"{leaf_size[leaf]:,}", leaf_rotation=90, color_threshold=0)
    for threshold in data.candidates["threshold"].dropna().unique():
        ax.axhline(float(threshold), linestyle="--", linewidth=0.8, color="#d95f02")
        ax.annotate(f"t = {threshold:g}", (ax.get_xlim()[1], float(threshold)), fontsize=7, ha="right", va="bottom")
    ax.set(ylabel="merge distance (scaled features)", xlabel="subtree (its influencers)")
    ax.set_title(f"Hierarchical tree: its top {len(data.dendrogram)} merges and the thresholds tried")
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


def draw(data: ReportData) -> list[Chart]:
    """Every chart of the report, in page order (the tree only where a hierarchical candidate ran)."""
    colours = colour_of(list(data.profiles["persona"]))
    scatter_caption = "Each persona's influencers, ER against active_rate (log axes)."
    charts = [
        Chart("scatter", "Personas on ER x active_rate", scatter_caption, png(scatter(data, colours))),
        Chart("elbow", "K-means elbow", "K-means within-cluster sum of squares by K.", png(elbow(data))),
        Chart("silhouettes", "Silhouette per candidate", "Mean silhouette of every candidate.", png(silhouettes(data))),
    ]
    if not data.dendrogram.empty:
        tree_caption = "The top merges of the tree the hierarchical candidates were cut from; dashed: thresholds."
        charts.append(Chart("dendrogram", "Hierarchical tree", tree_caption, png(tree(data))))
    sizes_caption = "Influencers per persona, snapshot by snapshot."
    charts.append(Chart("sizes", "Persona sizes over time", sizes_caption, png(sizes_over_time(data, colours))))
    if data.previous_version is not None:
        moves_caption = "How many influencers went from which persona to which."
        charts.append(Chart("moves", "Moves between the last two snapshots", moves_caption, png(moves_heatmap(data))))
    return charts


def render(data: ReportData, charts: list[Chart]) -> str:
    """The report as one HTML document."""
    snapshot = data.snapshot
    units = {"mean_er": "mean ER (%)", "mean_active_rate": "mean active_rate (%)", "median_follower": "followers"}
    profiles = data.profiles.rename(columns=units)
    if data.previous_version is not None:
        moves = transitions(data).to_html(classes="moves")
    else:
        moves = "<p>The first snapshot: nothing to compare with.</p>"
    facts = (
        f"{int(snapshot['n_influencers']):,} influencers, features of {snapshot['feature_date']:%Y-%m-%d}, "
        f"{int(snapshot['n_clusters'])} personas from {snapshot['published_candidate']} "
        f"({snapshot['published_because'] or 'as set'}), {snapshot['path']} path"
    )
    title = f"Snapshot {int(snapshot['version'])}"
    ages = cohort_line(data.ages) if len(data.ages) else "observation dates unknown"
    ages = ages[0].upper() + ages[1:]
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
<p>{html.escape(ages)}.</p>
{profiles.to_html(index=False, float_format=lambda v: f"{v:,.2f}")}
{"".join(chart.html() for chart in charts)}
<h2>Moves since snapshot {data.previous_version if data.previous_version is not None else "-"}</h2>
{moves}
</body></html>
"""
