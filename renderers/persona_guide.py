"""What a persona means to a marketer, in words, and how it looks, the same everywhere.

The words come from the study's reading of its two features: active_rate (comments per
like, %) is the followers' purchasing power, their buying intent; ER (reactions per
follower, %) is the trust in it. A persona is described by the levels its cluster sits on
(clusters.profiles.er_level and active_rate_level: low, middle or high against the whole
clustered cohort), never by its name, which the naming rule may change.

A persona's colour (and marker) follow its persona_id, which stays the same from snapshot
to snapshot while it is the same group of influencers: the report's charts, its cards, the
workbook and the weekly run's artifacts all show a persona in one colour. Numbers on pages
are written for people: whole followers, percentages to two decimals.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

# Ten colours for persona ids 1, 2, …, 10, then again with the next marker for 11 to 20, and
# so on: matplotlib's tab10 without its grey (grey is for personas no longer present).
PALETTE = (
    ("blue", "#1f77b4"),
    ("orange", "#ff7f0e"),
    ("green", "#2ca02c"),
    ("red", "#d62728"),
    ("purple", "#9467bd"),
    ("brown", "#8c564b"),
    ("pink", "#e377c2"),
    ("olive", "#bcbd22"),
    ("cyan", "#17becf"),
    ("navy", "#393b79"),
)
# (matplotlib marker, the same shape as a character for pages and tables)
MARKERS = (("o", "●"), ("s", "■"), ("^", "▲"), ("D", "◆"), ("v", "▼"))
NO_LONGER_PRESENT = "#b0b0b0"

# The fit score, as the report and the exports document it (clusters.persona_fit computes it).
FIT_SCORE = (
    "Fit score (0–100): how much of its persona's promise an influencer delivers, within its persona: "
    "60 % its active_rate percentile (buying intent) + 40 % its ER percentile (trust), each counted among "
    "the persona's members (100 = the highest of both). The 3 : 2 weights are the study's: buying intent "
    "weighs more than trust."
)

TRUST = {  # ER level: the share of followers who react, the trust in the audience
    "high": "a large share of the followers react to every post: an audience that trusts this voice",
    "middle": "more followers react than is usual in the cohort: an engaged audience",
    "low": "few followers react to a post, as usual in the cohort: a broad, loosely engaged audience",
}
BUYING_INTENT = {  # active_rate level: the share of reactions that are comments, the buying intent
    "high": "followers comment a great deal for every like (they ask, tag friends, talk products): "
    "strong buying intent",
    "middle": "followers comment more than most: some buying intent",
    "low": "followers like and rarely comment: little sign of buying intent",
}
# (ER level, active_rate level) -> the campaigns a persona suits.
CAMPAIGNS = {
    ("high", "high"): "conversion campaigns worth the biggest budgets: launches with sales targets, "
    "affiliate links and discount codes, long-term ambassadors",
    ("middle", "high"): "conversion campaigns: reviews and tutorials with links, affiliate deals",
    ("low", "high"): "cost-efficient conversion: seeding and gifting, affiliate or commission deals, "
    "discount codes (a buying audience without paying for trust or reach)",
    ("high", "middle"): "launches that need attention and sales at once: reviews with codes, live shopping",
    ("middle", "middle"): "all-round campaigns: reviews, how-tos, seasonal promotions",
    ("low", "middle"): "performance campaigns across many accounts: discount codes and product reviews",
    ("high", "low"): "awareness and brand love: launches, giveaways, brand stories (pair it with a "
    "buying persona to sell)",
    ("middle", "low"): "awareness at moderate cost: visibility for new products, event and giveaway reach",
    ("low", "low"): "mass reach priced per impression only; check accounts before paying (low engagement "
    "can hide inactive or bought followers)",
}


@dataclass(frozen=True)
class Look:
    colour: str  # "#1f77b4"
    colour_name: str  # "blue"
    marker: str  # matplotlib's "o"
    symbol: str  # "●"

    @property
    def label(self) -> str:
        """The colour as words and shape, for tables that show no colour (the Prefect UI's)."""
        return f"{self.colour_name} {self.symbol}"


def look(persona_id: int) -> Look:
    """The colour and marker of a persona id: the same in every report, workbook and artifact."""
    index = int(persona_id) - 1
    name, colour = PALETTE[index % len(PALETTE)]
    marker, symbol = MARKERS[(index // len(PALETTE)) % len(MARKERS)]
    return Look(colour, name, marker, symbol)


def meaning(er_level: str, active_rate_level: str) -> str:
    """The persona in plain words: its followers' buying intent (active_rate), then the trust in it (ER)."""
    intent, trust = BUYING_INTENT[active_rate_level], TRUST[er_level]
    return f"{intent[0].upper()}{intent[1:]}; {trust}."


def suits(er_level: str, active_rate_level: str) -> str:
    """The campaigns a persona on these levels suits."""
    campaigns = CAMPAIGNS[(er_level, active_rate_level)]
    return f"{campaigns[0].upper()}{campaigns[1:]}."


# --- numbers for people --------------------------------------------------------------------


def count(value) -> str:
    """1234567 -> '1,234,567' (followers too: no one has half a follower)."""
    if value is None or pd.isna(value):
        return "–"
    return f"{round(float(value)):,}"


def percent(value) -> str:
    """A percentage as stored (2.0312 means 2.03 %), to two decimals."""
    if value is None or pd.isna(value):
        return "–"
    return f"{float(value):,.2f} %"


def score(value) -> str:
    return "–" if value is None or pd.isna(value) else f"{float(value):.1f}"


def day(value) -> str:
    return "–" if value is None or pd.isna(value) else f"{pd.Timestamp(value):%Y-%m-%d}"
