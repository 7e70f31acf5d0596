"""A seeded synthetic population of Korean beauty influencers.

Its ER / active_rate distribution is shaped on the study's cohort: a dense low core
(medians near 1.4 % and 2 %), log-normal heavy tails and a few extreme outliers. Every
value is a pure function of (seed, account, day), so the same population can be written
straight into the warehouse or served, day by day, by the local fake Instagram: followers
grow, likes on a post grow with its age, engagement drifts over weeks and a few accounts
change behaviour for good at some day.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property

import numpy as np

# Day 0 of the population's timeline; days before it are allowed too.
EPOCH = date(2026, 1, 1)
GRID_POSTS = 12  # posts the profile grid (and web_profile_info) shows

# Log-normal core of the study's cohort: median and 90th percentile (percent).
ER_MEDIAN, ER_P90 = 1.45, 6.4
ACTIVE_RATE_MEDIAN, ACTIVE_RATE_P90 = 2.0, 6.9
Z90 = 1.2816

NAME_PARTS = (
    "glow",
    "skin",
    "daily",
    "makeup",
    "beauty",
    "seoul",
    "cosme",
    "lip",
    "blush",
    "dewy",
    "mood",
    "hana",
    "jiwoo",
    "minji",
    "soyeon",
    "yuna",
    "bom",
    "haru",
    "nari",
    "cica",
)


def study_shaped_cohort(n: int, seed: int) -> dict[str, np.ndarray]:
    """er, active_rate (percent) and follower arrays of n influencers shaped like the study's
    cohort (the population's distribution, drawn at once: for benchmarks and tests at scale)."""
    rng = np.random.default_rng([seed, 1])
    er = np.minimum(np.exp(rng.normal(np.log(ER_MEDIAN), np.log(ER_P90 / ER_MEDIAN) / Z90, n)), 35.0)
    ar = np.minimum(
        np.exp(rng.normal(np.log(ACTIVE_RATE_MEDIAN), np.log(ACTIVE_RATE_P90 / ACTIVE_RATE_MEDIAN) / Z90, n)), 45.0
    )
    # Extreme outliers of the study's three kinds: both high; comments high on a small
    # reach; reach high with few comments.
    count = max(3, n // 300)
    picked = rng.choice(n, size=count, replace=False)
    kind = np.arange(count) % 3
    er[picked] = np.where(kind == 1, rng.uniform(1.5, 4, count), rng.uniform(18, 30, count))
    ar[picked] = np.where(kind == 2, rng.uniform(3, 8, count), rng.uniform(30, 42, count))
    follower = np.maximum(1000, np.exp(rng.normal(np.log(30_000), 1.6, n))).astype(np.int64)
    return {"er": er, "active_rate": ar, "follower": follower}


def study_shaped_counts(n: int, seed: int) -> dict[str, np.ndarray]:
    """follower, likes and comments (image means) of n influencers whose ER and active_rate
    have the study's shape (study_shaped_cohort's, solved back through the study's formulas)."""
    shaped = study_shaped_cohort(n, seed)
    reactions = shaped["er"] / 100 * shaped["follower"]  # likes + comments
    comment_share = shaped["active_rate"] / 100  # comments / (likes + 1)
    likes = np.maximum((reactions - comment_share) / (1 + comment_share), 0.0)
    return {"follower": shaped["follower"].astype(np.float64), "likes": likes, "comments": comment_share * (likes + 1)}


def study_engagement(follower, likes, comments) -> dict[str, np.ndarray]:
    """ER and active_rate (percent) by the study's formulas."""
    return {"er": (likes + comments) / follower * 100, "active_rate": comments / (likes + 1) * 100}


@dataclass(frozen=True)
class Account:
    index: int
    username: str
    user_id: str
    followers: int  # at EPOCH
    follows: int
    media_count: int  # at EPOCH
    is_private: bool
    is_verified: bool
    is_business: bool
    hides_likes: bool
    er: float  # target ER (%) before drift
    active_rate: float  # target active_rate (%) before drift
    follower_growth: float  # per day
    post_every_days: int
    image_share: float
    carousel_share: float  # of image posts
    igtv_share: float
    drift_phase: float
    change_day: int | None  # day from EPOCH when behaviour changes for good
    changed_er: float
    changed_active_rate: float
    pinned_post: int | None  # an old post number pinned to the grid


@dataclass(frozen=True)
class Post:
    post_id: str
    shortcode: str
    kind: str  # image | video | igtv
    is_carousel: bool
    is_reel: bool
    likes: int
    comments: int
    views: int | None
    taken_at: datetime
    is_pinned: bool

    @property
    def typename(self) -> str:
        """The web client's __typename."""
        if self.kind == "image":
            return "GraphSidecar" if self.is_carousel else "GraphImage"
        return "GraphVideo"

    @property
    def product_type(self) -> str:
        """The web client's product_type."""
        return {"image": "feed", "video": "clips" if self.is_reel else "feed", "igtv": "igtv"}[self.kind]


@dataclass(frozen=True)
class Profile:
    account: Account
    followers: int
    follows: int
    media_count: int
    posts: tuple[Post, ...]  # empty for private accounts


class Population:
    """`size` influencers drawn from `seed`; `profile(i, day)` is what account i shows that day."""

    def __init__(self, size: int, seed: int):
        if size < 1:
            raise ValueError("a population needs at least one influencer")
        self.size = size
        self.seed = seed

    @cached_property
    def accounts(self) -> tuple[Account, ...]:
        return tuple(self._draw_accounts())

    def by_username(self) -> dict[str, Account]:
        return {a.username: a for a in self.accounts}

    def _rng(self, *keys: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, *keys])

    def _draw_accounts(self):
        n = self.size
        rng = self._rng(0)
        er = np.exp(rng.normal(np.log(ER_MEDIAN), np.log(ER_P90 / ER_MEDIAN) / Z90, n))
        ar = np.exp(rng.normal(np.log(ACTIVE_RATE_MEDIAN), np.log(ACTIVE_RATE_P90 / ACTIVE_RATE_MEDIAN) / Z90, n))
        er, ar = np.minimum(er, 35.0), np.minimum(ar, 45.0)
        # A few extreme outliers, of the kinds the study found: both very high, comments
        # very high on a small reach, reach very high with few comments.
        n_outliers = max(3, n // 300)
        outliers = rng.choice(n, size=n_outliers, replace=False)
        for j, i in enumerate(outliers):
            kind = j % 3
            er[i] = rng.uniform(18, 30) if kind in (0, 2) else rng.uniform(1.5, 4)
            ar[i] = rng.uniform(30, 42) if kind in (0, 1) else rng.uniform(3, 8)
        followers = np.maximum(1000, np.exp(rng.normal(np.log(30_000), 1.6, n))).astype(np.int64)
        verified_p = np.where(followers > 1_000_000, 0.6, np.where(followers > 100_000, 0.2, 0.03))
        is_verified = rng.random(n) < verified_p
        follows = np.exp(rng.normal(np.log(500), 1.0, n)).astype(np.int64)
        media = np.maximum(GRID_POSTS + 1, np.exp(rng.normal(np.log(800), 0.9, n))).astype(np.int64)
        is_private = rng.random(n) < 0.02
        hides_likes = rng.random(n) < 0.03
        is_business = rng.random(n) < 0.4
        growth = rng.normal(0.0005, 0.0007, n)
        post_every = rng.integers(1, 6, n)
        shares = rng.dirichlet([6.0, 3.0, 0.6], n)  # image, video, igtv
        carousel = rng.uniform(0.1, 0.6, n)
        phase = rng.uniform(0, 2 * np.pi, n)
        # About 5 % change behaviour for good somewhere in the first year.
        changes = rng.random(n) < 0.05
        change_day = rng.integers(7, 365, n)
        changed_er = er * np.exp(rng.normal(0, 1.0, n))
        changed_ar = ar * np.exp(rng.normal(0, 1.0, n))
        pinned = rng.random(n) < 0.1
        for i in range(n):
            name = f"{NAME_PARTS[i % len(NAME_PARTS)]}.{NAME_PARTS[(i * 7 + 3) % len(NAME_PARTS)]}_{i:05d}"
            yield Account(
                index=i,
                username=name,
                user_id=str(10_000_000_000 + self.seed % 1000 * 1_000_000 + i),
                followers=int(followers[i]),
                follows=int(follows[i]),
                media_count=int(media[i]),
                is_private=bool(is_private[i]),
                is_verified=bool(is_verified[i]),
                is_business=bool(is_business[i]),
                hides_likes=bool(hides_likes[i]),
                er=float(er[i]),
                active_rate=float(ar[i]),
                follower_growth=float(growth[i]),
                post_every_days=int(post_every[i]),
                image_share=float(shares[i, 0]),
                carousel_share=float(carousel[i]),
                igtv_share=float(shares[i, 2]),
                drift_phase=float(phase[i]),
                change_day=int(change_day[i]) if changes[i] else None,
                changed_er=float(min(changed_er[i], 35.0)),
                changed_active_rate=float(min(changed_ar[i], 45.0)),
                pinned_post=3 if pinned[i] else None,
            )

    # --- what an account shows on a given day -----------------------------------------

    def engagement(self, account: Account, day: int) -> tuple[float, float]:
        """(ER, active_rate) targets on `day`: a slow 8-week drift, and a change for good."""
        er, ar = account.er, account.active_rate
        if account.change_day is not None and day >= account.change_day:
            er, ar = account.changed_er, account.changed_active_rate
        wave = 1 + 0.15 * np.sin(2 * np.pi * day / 56 + account.drift_phase)
        return er * wave, ar * (2 - wave)

    def profile(self, account: Account | int, on: date, now: datetime | None = None) -> Profile:
        """What `account` shows on day `on`; given `now` (a moment of that day), not the
        posts published later that day."""
        if isinstance(account, int):
            account = self.accounts[account]
        day = (on - EPOCH).days
        followers = max(1, round(account.followers * (1 + account.follower_growth) ** day))
        media_count = max(GRID_POSTS + 1, account.media_count + day // account.post_every_days)
        posts: tuple[Post, ...] = ()
        if not account.is_private:
            posts = self._grid(account, day, followers, now)
        return Profile(account, followers, account.follows, media_count, posts)

    def _grid(self, account: Account, day: int, followers: int, now: datetime | None) -> tuple[Post, ...]:
        # Post number p is published on day p * post_every_days (p may be negative).
        latest = day // account.post_every_days
        # Posts published after `now` are not up yet: not today's, nor (early in the morning
        # here, when it is still yesterday in UTC) yesterday's.
        while now is not None and self._post(account, latest, day, followers, False).taken_at > now:
            latest -= 1
        numbers = list(range(latest, latest - GRID_POSTS, -1))
        pinned = None
        if account.pinned_post is not None:
            pinned = latest - GRID_POSTS - 30 * account.pinned_post
            numbers = [pinned, *numbers[:-1]]
        return tuple(self._post(account, p, day, followers, p == pinned) for p in numbers)

    def _post(self, account: Account, number: int, day: int, followers: int, pinned: bool) -> Post:
        rng = self._rng(1, account.index, number + 1_000_000)
        post_day = number * account.post_every_days
        roll = rng.random()
        if roll < account.image_share:
            kind = "image"
        elif roll < 1 - account.igtv_share:
            kind = "video"
        else:
            kind = "igtv"
        er, ar = self.engagement(account, post_day)
        # Solve the study's formulas for mean likes L and comments C at this reach:
        # (L + C) / F * 100 = er and C / (L + 1) * 100 = ar.
        likes_final = er * followers / 100 / (1 + ar / 100)
        comments_final = ar / 100 * (likes_final + 1)
        if kind != "image":
            likes_final *= 1.3
            comments_final *= 0.6
        age_days = max(0, day - post_day) + 0.5
        maturity = 1 - np.exp(-age_days / 1.5)  # likes keep arriving for a few days
        likes = int(likes_final * maturity * rng.lognormal(0, 0.35))
        comments = round(comments_final * maturity * rng.lognormal(0, 0.45))
        views = int(likes * rng.uniform(6, 12)) if kind != "image" else None
        seconds = int(rng.integers(9 * 3600, 23 * 3600))
        taken_at = datetime.combine(EPOCH + timedelta(days=post_day), time(), tzinfo=UTC)
        post_id = f"{account.user_id}{number + 1_000_000:07d}"
        return Post(
            post_id=post_id,
            shortcode=hashlib.sha1(post_id.encode()).hexdigest()[:11],
            kind=kind,
            is_carousel=kind == "image" and rng.random() < account.carousel_share,
            is_reel=kind == "video" and rng.random() < 0.7,
            likes=likes,
            comments=comments,
            views=views,
            taken_at=taken_at + timedelta(seconds=seconds),
            is_pinned=pinned,
        )
