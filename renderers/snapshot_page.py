"""A snapshot's report: who to pick first (a card per persona), then its charts, in one HTML file.

Pure: from ReportData (transforms/report.py) to HTML text. Every chart is a PNG embedded as
a data: URL, so the file opens offline and loads nothing from anywhere; the only links are
to the influencers' profiles and to each persona's member list, a CSV beside the page.
The page is a Jinja2 template (renderers/templates/snapshot_page.html), escaped automatically.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape
from matplotlib.figure import Figure
from scipy.cluster.hierarchy import dendrogram

from renderers.persona_guide import FIT_SCORE, NO_LONGER_PRESENT, count, day, look, meaning, percent, score, suits
from transforms.report import LOG_FLOOR, ReportData
from warehouse.ages import cohort_line

NOT_IN = "(not in it)"
TEMPLATES = Path(__file__).parent / "templates"


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


def png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


# --- charts --------------------------------------------------------------------------------


def scatter(data: ReportData) -> Figure:
    """ER x active_rate by persona on log axes: one point per influencer, or per grid cell; 0 % on dotted lines."""
    figure = Figure(figsize=(7.5, 5.5))
    ax = figure.subplots()
    points = data.points
    for persona in data.profiles.itertuples():
        mine = points[points["cluster"] == persona.cluster]
        if mine.empty:
            continue
        shown = look(persona.persona_id)
        x, y = np.maximum(mine["er"], LOG_FLOOR), np.maximum(mine["active_rate"], LOG_FLOOR)
        if data.drawn_as_density:  # a cell's area grows with how many influencers it holds
            size = 4 + 60 * np.sqrt(mine["influencers"] / points["influencers"].max())
            alpha = 0.55
        else:
            size, alpha = 12, 0.75
        label = f"{persona.rank}. {persona.persona}"
        ax.scatter(x, y, s=size, c=shown.colour, marker=shown.marker, alpha=alpha, linewidths=0, label=label)
    ax.set(xscale="log", yscale="log", xlabel="ER (%): the trust", ylabel="active_rate (%): the buying intent")
    zero_ar, zero_er = int(data.profiles["zero_active_rate"].sum()), int(data.profiles["zero_er"].sum())
    if zero_ar:
        ax.axhline(LOG_FLOOR, linestyle=":", linewidth=1, color="#555555")
        note = f"active_rate 0 %: {zero_ar:,} influencer(s) with no comments"
        ax.annotate(note, (0.01, LOG_FLOOR), xycoords=ax.get_yaxis_transform(), fontsize=7, va="bottom")
    if zero_er:
        ax.axvline(LOG_FLOOR, linestyle=":", linewidth=1, color="#555555")
        note = f"ER 0 %: {zero_er:,}"
        ax.annotate(note, (LOG_FLOOR, 0.99), xycoords=ax.get_xaxis_transform(), fontsize=7, rotation=90, va="top")
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
    node_leaves = np.ones(2 * leaves - 1)
    for m, (left, right) in enumerate(zip(merges["left"], merges["right"], strict=True)):  # <= 30 merges
        node_leaves[leaves + m] = node_leaves[left] + node_leaves[right]
    linkage = np.column_stack([merges["left"], merges["right"], merges["height"], node_leaves[leaves:]]).astype(float)
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


def sizes_over_time(data: ReportData) -> Figure:
    """Influencers per persona id, snapshot by snapshot: today's personas in their colours, the others grey."""
    sizes = data.sizes_over_time
    table = sizes.pivot_table(index="version", columns="persona_id", values="size", aggfunc="sum").fillna(0)
    current = list(data.profiles["persona_id"])
    names = dict(zip(data.profiles["persona_id"], data.profiles["persona"], strict=True))
    figure = Figure(figsize=(7.5, 4))
    ax = figure.subplots()
    bottom = np.zeros(len(table))
    labels = table.index.astype(str)
    for persona_id in current:  # best first, at the bottom
        if persona_id in table.columns:
            heights = table[persona_id].to_numpy()
            ax.bar(labels, heights, bottom=bottom, color=look(persona_id).colour, label=names[persona_id])
            bottom += heights
    earlier = [p for p in table.columns if p not in names]
    if earlier:
        heights = table[earlier].sum(axis=1).to_numpy()
        ax.bar(labels, heights, bottom=bottom, color=NO_LONGER_PRESENT, label="personas no longer present")
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
    for (i, j), moved in np.ndenumerate(table.to_numpy()):
        ax.text(j, i, f"{moved:,}", ha="center", va="center", fontsize=7)
    ax.set(
        xlabel=f"persona in snapshot {data.snapshot['version']}",
        ylabel=f"persona in snapshot {data.previous_version}",
        title="Moves between the last two snapshots",
    )
    return figure


# The charts that describe the personas, and the diagnostics of the clustering (the appendix).
OVERVIEW, APPENDIX = ("scatter", "sizes", "moves"), ("elbow", "silhouettes", "dendrogram")


# Every chart: its title, its caption and how it is drawn, in page order.
CHARTS = {
    "scatter": (
        "Personas on ER x active_rate",
        "Each persona's influencers (log axes). Influencers at 0 % (no comments, or no reactions; and the few "
        "below 0.01 %) sit on the dotted lines at 0.01 %, since a log axis has no 0.",
        scatter,
    ),
    "sizes": ("Persona sizes over time", "Influencers per persona, snapshot by snapshot.", sizes_over_time),
    "moves": (
        "Moves between the last two snapshots",
        "How many influencers went from which persona to which.",
        moves_heatmap,
    ),
    "elbow": ("K-means elbow", "K-means within-cluster sum of squares by K.", elbow),
    "silhouettes": ("Silhouette per candidate", "Mean silhouette of every candidate.", silhouettes),
    "dendrogram": (
        "Hierarchical tree",
        "The top merges of the tree the hierarchical candidates were cut from; dashed: thresholds.",
        tree,
    ),
}


def draw(data: ReportData, progress=None) -> list[Chart]:
    """Every chart of the report, in page order (moves only after a first snapshot, the tree only
    where a hierarchical candidate ran). `progress(text)`, if given, is told which chart is drawn."""
    say = progress or (lambda text: None)
    skipped = {"moves"} if data.previous_version is None else set()
    skipped |= {"dendrogram"} if data.dendrogram.empty else set()
    charts = []
    for key, (title, caption, drawing) in CHARTS.items():
        if key not in skipped:
            say(f"drawing {title.lower()}")
            charts.append(Chart(key, title, caption, png(drawing(data))))
    return charts


# --- the page ------------------------------------------------------------------------------


def cards(data: ReportData, member_lists: dict[int, str]) -> list[dict]:
    """One card per persona, best first: what it means, what it suits, its figures, its best fits."""
    found = []
    for persona in data.profiles.itertuples():
        top = data.top[data.top["cluster"] == persona.cluster]
        found.append(
            {
                "persona_id": int(persona.persona_id),
                "rank": int(persona.rank),
                "name": persona.persona,
                "look": look(persona.persona_id),
                "meaning": meaning(persona.er_level, persona.active_rate_level),
                "suits": suits(persona.er_level, persona.active_rate_level),
                "levels": f"active_rate {persona.active_rate_level}, ER {persona.er_level}",
                "size": int(persona.size),
                "figures": {
                    "influencers": count(persona.size),
                    "median followers": count(persona.median_follower),
                    "follower tier": persona.follower_tier or "–",
                    "typical active_rate (median)": percent(persona.median_active_rate),
                    "typical ER (median)": percent(persona.median_er),
                    "oldest observation": day(persona.oldest_observation),
                },
                "top": [
                    {
                        "fit_rank": int(row.fit_rank),
                        "username": row.username,
                        "profile_url": row.profile_url,
                        "fit_score": score(row.fit_score),
                        "followers": count(row.followers),
                        "active_rate": percent(row.active_rate_pct),
                        "er": percent(row.er_pct),
                        "observed_on": day(row.observed_on),
                    }
                    for row in top.itertuples()
                ],
                "member_list": member_lists.get(int(persona.persona_id)),
            }
        )
    return found


def profile_table(data: ReportData) -> pd.DataFrame:
    """The appendix's persona table: every figure of clusters.profiles, formatted for people."""
    profiles = data.profiles
    return pd.DataFrame(
        {
            "rank": profiles["rank"],
            "persona": profiles["persona"],
            "persona id": profiles["persona_id"],
            "influencers": profiles["size"].map(count),
            "mean ER": profiles["mean_er"].map(percent),
            "median ER": profiles["median_er"].map(percent),
            "mean active_rate": profiles["mean_active_rate"].map(percent),
            "median active_rate": profiles["median_active_rate"].map(percent),
            "median followers": profiles["median_follower"].map(count),
            "tier": profiles["follower_tier"],
            "ER level": profiles["er_level"],
            "active_rate level": profiles["active_rate_level"],
        }
    )


def facts(data: ReportData) -> str:
    """The snapshot in one sentence: who, of when (and observed when), how many personas, from what."""
    snapshot, profiles = data.snapshot, data.profiles
    observed = f"observed {day(profiles['oldest_observation'].min())} to {day(profiles['newest_observation'].max())}"
    if len(data.ages):  # with the cohort's median age and its share older than 7 days
        observed = cohort_line(data.ages)
    fit = (
        f"{snapshot['published_candidate']} on the {snapshot['path']} path, {snapshot['published_because'] or 'as set'}"
    )
    kept = snapshot.get("frame_made") is not None and not snapshot.get("frame_made")
    if kept:  # the personas of the snapshot before, kept (models/frames.py)
        personas = f"the {int(snapshot['n_clusters'])} personas {snapshot['frame_why']} (the week's fit: {fit})"
    else:
        personas = f"{int(snapshot['n_clusters'])} personas from {fit}"
    return (
        f"{count(snapshot['n_influencers'])} influencers clustered on the features of {day(snapshot['feature_date'])} "
        f"({observed}): {personas}"
    )


@cache
def environment() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(), keep_trailing_newline=True)


def render(data: ReportData, charts: list[Chart], member_lists: dict[int, str] | None = None) -> str:
    """The report as one HTML document; `member_lists` maps a persona id to its member list's link."""
    snapshot = data.snapshot
    by_key = {chart.key: chart for chart in charts}
    moves = transitions(data) if data.previous_version is not None else None
    return (
        environment()
        .get_template("snapshot_page.html")
        .render(
            version=int(snapshot["version"]),
            facts=facts(data),
            fit_score=FIT_SCORE,
            cards=cards(data, member_lists or {}),
            overview=[by_key[key] for key in OVERVIEW if key in by_key],
            appendix=[by_key[key] for key in APPENDIX if key in by_key],
            previous_version=data.previous_version,
            moves=None if moves is None else moves.map(count).to_html(classes="moves"),
            profiles=profile_table(data).to_html(index=False, classes="profiles"),
        )
    )
