"""Reading CSVs in the study's column layout (pure: no warehouse access)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from scrapers.usernames import normalize_account
from warehouse.errors import KicError

COUNT_COLUMNS = ("post", "follower", "follow")
FLAG_COLUMNS = ("open_account", "official_account")
MEAN_COLUMNS = (
    "image_love",
    "image_comment",
    "video_love",
    "video_comment",
    "igtv_love",
    "igtv_comment",
)
BASE_COLUMNS = ("account", *COUNT_COLUMNS, *FLAG_COLUMNS, *MEAN_COLUMNS)
NUMERIC_COLUMNS = (*COUNT_COLUMNS, *FLAG_COLUMNS, *MEAN_COLUMNS)
# Present in the study's cleaned file; recomputed from the base columns, never trusted.
DERIVED_COLUMNS = ("ER", "active_rate")
CRAWLER_FAILURE_MARKER = -1


@dataclass(frozen=True)
class StudyCsv:
    accepted: pd.DataFrame  # username + the numeric base columns, one row per account
    rejected: pd.DataFrame  # line_number, username, reason, content
    ignored_columns: tuple[str, ...]

    @property
    def rows(self) -> int:
        return len(self.accepted) + len(self.rejected)


def read_study_csv(path: Path) -> StudyCsv:
    """Parse and check a study-layout CSV; raise KicError naming the file if it is unusable."""
    path = Path(path)
    if not path.is_file():
        raise KicError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise KicError(f"{path}: the file is empty") from None
    except (UnicodeDecodeError, pd.errors.ParserError, csv.Error) as exc:
        raise KicError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None

    columns = [c.strip() for c in frame.columns]
    frame.columns = columns
    missing = [c for c in BASE_COLUMNS if c not in columns]
    if missing:
        raise KicError(f"{path}: not in the study's layout, missing column(s): {', '.join(missing)}")
    # An unnamed first column is the notebook's saved index.
    ignored = tuple(
        c for c in columns if c not in BASE_COLUMNS and c not in DERIVED_COLUMNS and not c.startswith("Unnamed:")
    )
    if frame.empty:
        raise KicError(f"{path}: the file has a header but no rows")

    content = frame[list(BASE_COLUMNS)].apply(lambda r: ",".join(r), axis=1)
    usernames = frame["account"].map(normalize_account)
    reasons = pd.Series([[] for _ in range(len(frame))], index=frame.index)

    def flag(mask: pd.Series, text: str) -> None:
        for i in mask[mask].index:
            reasons[i].append(text)

    flag(usernames.isna(), "account is not an Instagram username or profile URL")
    numbers = {}
    for column in NUMERIC_COLUMNS:
        raw = frame[column].str.strip()
        value = pd.to_numeric(raw, errors="coerce")
        numbers[column] = value
        blank = raw.eq("")
        flag(blank, f"{column} is missing")
        flag(~blank & value.isna(), f"{column} is not a number")
        flag(value.eq(CRAWLER_FAILURE_MARKER), f"{column} is -1 (the crawler could not read it)")
        flag(value.lt(0) & value.ne(CRAWLER_FAILURE_MARKER), f"{column} is negative")
        flag(value.notna() & ~np.isfinite(value.astype(float)), f"{column} is not finite")
    for column in (*COUNT_COLUMNS, *FLAG_COLUMNS):
        value = numbers[column]
        flag(value.ge(0) & (value % 1).ne(0), f"{column} is not a whole number")
    for column in FLAG_COLUMNS:
        flag(value_outside(numbers[column], {0, 1}), f"{column} is not 0 or 1")
    duplicate = usernames.notna() & usernames.duplicated()
    flag(duplicate, "account appears earlier in the file")

    bad = reasons.map(bool)
    accepted = pd.DataFrame({"username": usernames[~bad]})
    for column in NUMERIC_COLUMNS:
        accepted[column] = numbers[column][~bad].astype(float)
    rejected = pd.DataFrame(
        {
            "line_number": (frame.index[bad] + 2).astype(int),  # header is line 1
            "username": usernames[bad],
            "reason": reasons[bad].map("; ".join),
            "content": content[bad],
        }
    )
    return StudyCsv(accepted.reset_index(drop=True), rejected.reset_index(drop=True), ignored)


def value_outside(values: pd.Series, allowed: set) -> pd.Series:
    return values.notna() & values.ge(0) & ~values.isin(allowed)
