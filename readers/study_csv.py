"""Reading CSVs in the study's column layout (pure: no warehouse access)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from readers.text_files import check_file, choose_encoding, decode_error
from scrapers.usernames import PROFILE_URL, USERNAME
from warehouse.errors import KicError
from warehouse.util import first_line
from warehouse.vocabulary import MAX_PLAUSIBLE_COUNT

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
    encoding: str = "utf-8"  # the codec the file was read with

    @property
    def rows(self) -> int:
        return len(self.accepted) + len(self.rejected)


CHUNK_ROWS = 200_000  # rows parsed at a time: memory follows the chunk, plus the accepted rows


def read_study_csv(path: Path, encoding: str | None = None) -> StudyCsv:
    """Parse and check a study-layout CSV; raise KicError naming the file if it is unusable.

    Read in chunks, every check vectorised: a million rows take seconds, not minutes. The
    encoding is detected (UTF-8 with or without BOM, cp949/EUC-KR) unless given.
    """
    path = check_file(path)
    encoding = choose_encoding(path, encoding)
    accepted, rejected, ignored, seen, next_line = [], [], (), set(), 2  # header is line 1
    try:
        chunks = pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            skipinitialspace=True,
            chunksize=CHUNK_ROWS,
            encoding=encoding,
        )
        for number, chunk in enumerate(chunks):
            chunk.columns = [c.strip() for c in chunk.columns]
            if number == 0:
                ignored = check_layout(path, list(chunk.columns))
            chunk.index = pd.RangeIndex(next_line, next_line + len(chunk))
            next_line += len(chunk)
            good, bad = check_rows(chunk, seen)
            accepted.append(good)
            rejected.append(bad)
    except pd.errors.EmptyDataError:
        raise KicError(f"{path}: the file is empty") from None
    except UnicodeDecodeError:
        raise decode_error(path, encoding) from None
    except (pd.errors.ParserError, csv.Error) as exc:
        raise KicError(f"{path}: not a readable CSV ({first_line(exc)})") from None
    if next_line == 2:  # no row after the header
        raise KicError(f"{path}: the file has a header but no rows")
    return StudyCsv(pd.concat(accepted, ignore_index=True), pd.concat(rejected, ignore_index=True), ignored, encoding)


def check_layout(path: Path, columns: list[str]) -> tuple[str, ...]:
    """The columns ignored; KicError naming what is missing if the file is not in the study's layout."""
    missing = [c for c in BASE_COLUMNS if c not in columns]
    if missing:
        raise KicError(f"{path}: not in the study's layout, missing column(s): {', '.join(missing)}")
    # An unnamed first column is the notebook's saved index.
    return tuple(
        c for c in columns if c not in BASE_COLUMNS and c not in DERIVED_COLUMNS and not c.startswith("Unnamed:")
    )


def normalize_accounts(values: pd.Series) -> pd.Series:
    """normalize_account of every value, vectorised (NA where it is no username)."""
    text = values.str.strip()
    from_url = text.str.extract(PROFILE_URL.pattern, flags=PROFILE_URL.flags, expand=False)
    name = from_url.fillna(text.str.removeprefix("@"))
    return name.str.lower().where(name.str.fullmatch(USERNAME.pattern, flags=USERNAME.flags).fillna(False).astype(bool))


def check_rows(chunk: pd.DataFrame, seen: set[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The accepted rows (username + numbers) and the rejected ones (line, username, reasons, content)."""
    usernames = normalize_accounts(chunk["account"])
    problems: dict[str, pd.Series] = {"account is not an Instagram username or profile URL": usernames.isna()}
    numbers = {}
    for column in NUMERIC_COLUMNS:
        raw = chunk[column].str.strip()
        value = pd.to_numeric(raw, errors="coerce").astype(float)
        numbers[column] = value
        blank = raw.eq("")
        problems[f"{column} is missing"] = blank
        problems[f"{column} is not a number"] = ~blank & value.isna()
        problems[f"{column} is -1 (the crawler could not read it)"] = value.eq(CRAWLER_FAILURE_MARKER)
        problems[f"{column} is negative"] = value.lt(0) & value.ne(CRAWLER_FAILURE_MARKER)
        problems[f"{column} is not finite"] = value.notna() & ~np.isfinite(value)
        # Caught here, not stored: above 2^63 a count wraps to a negative int64, and 1e300 overflows features.
        problems[f"{column} is too large (above {MAX_PLAUSIBLE_COUNT:.0e})"] = np.isfinite(value) & value.gt(
            MAX_PLAUSIBLE_COUNT
        )
    for column in (*COUNT_COLUMNS, *FLAG_COLUMNS):
        value = numbers[column]
        problems[f"{column} is not a whole number"] = value.ge(0) & np.isfinite(value) & (value % 1).ne(0)
    for column in FLAG_COLUMNS:
        problems[f"{column} is not 0 or 1"] = value_outside(numbers[column], {0, 1})
    named = usernames.notna()
    problems["account appears earlier in the file"] = named & (usernames.duplicated() | usernames.isin(seen))
    seen.update(usernames[named])

    failed = pd.DataFrame(problems)
    bad = failed.any(axis=1)
    accepted = pd.DataFrame({"username": usernames[~bad], **{c: numbers[c][~bad] for c in NUMERIC_COLUMNS}})
    # Reasons and content only for the rejected rows (usually few).
    reasons = (
        failed[bad].apply(lambda row: "; ".join(row.index[row]), axis=1) if bad.any() else pd.Series([], dtype=object)
    )
    rejected = pd.DataFrame(
        {
            "line_number": chunk.index[bad].astype(int),
            "username": usernames[bad],
            "reason": reasons,
            "content": chunk.loc[bad, list(BASE_COLUMNS)].agg(",".join, axis=1) if bad.any() else [],
        }
    )
    return accepted, rejected


def value_outside(values: pd.Series, allowed: set) -> pd.Series:
    return values.notna() & values.ge(0) & ~values.isin(allowed)
