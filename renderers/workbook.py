"""The xlsx export as a workbook a marketer can hand on: a summary sheet, then a sheet per persona.

Written by XlsxWriter in its constant_memory mode (one row of each sheet held at a time, so
memory stays flat up to Excel's 1,048,576 rows a sheet), straight from the export's query:
its rows come best persona first, best fit first, and each goes to its persona's sheet.
Every sheet has its header frozen, a filter on every column, widths that fit, numbers
formatted for people (the values stay those of csv and parquet: ER 2.03 is 2.03 %, shown
"2.03 %") and clickable profile links.
"""

from __future__ import annotations

import math
import numbers
import re
import tempfile
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from renderers.persona_guide import FIT_SCORE, look, meaning, suits
from warehouse.util import utcnow

SUMMARY_SHEET = "personas"
BATCH_ROWS = 10_000
# Excel keeps at most this many hyperlinks in a worksheet; beyond, a profile link is a
# HYPERLINK() formula, which opens the same way when clicked.
MAX_LINKS_PER_SHEET = 65_530
SHEET_NAME_MAX = 31
SHEET_NAME_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")

PERCENT, COUNT, DATE = '0.00" %"', "#,##0", "yyyy-mm-dd"
# Display format and width of each column, by the export's column names (others: text, width of the header).
COLUMNS = {
    "rank": ("0", 6),
    "fit_rank": (COUNT, 9),
    "fit_score": ("0.0", 9),
    "username": (None, 26),
    "profile_url": (None, 44),
    "persona": (None, 30),
    "persona_id": ("0", 11),
    "colour": (None, 10),
    "influencers": (COUNT, 12),
    "followers": (COUNT, 12),
    "median_followers": (COUNT, 17),
    "follower_tier": (None, 13),
    "er_pct": (PERCENT, 9),
    "active_rate_pct": (PERCENT, 16),
    "median_er_pct": (PERCENT, 14),
    "median_active_rate_pct": (PERCENT, 22),
    "mean_er_pct": (PERCENT, 12),
    "mean_active_rate_pct": (PERCENT, 20),
    "follower_growth_7d": (COUNT, 19),
    "follower_growth_7d_pct": (PERCENT, 23),
    "follower_growth_28d": (COUNT, 20),
    "follower_growth_28d_pct": (PERCENT, 24),
    "follower_jump": (None, 14),
    "observed_on": (DATE, 12),
    "oldest_observed_on": (DATE, 19),
    "feature_date": (DATE, 13),
    "snapshot_version": ("0", 17),
    "sheet": (None, 30),
    "meaning": (None, 60),
    "suits": (None, 60),
}
SUMMARY_COLUMNS = [
    "rank",
    "persona",
    "persona_id",
    "colour",
    "influencers",
    "median_followers",
    "follower_tier",
    "median_active_rate_pct",
    "median_er_pct",
    "mean_active_rate_pct",
    "mean_er_pct",
    "active_rate_level",
    "er_level",
    "oldest_observed_on",
    "feature_date",
    "snapshot_version",
    "sheet",
    "meaning",
    "suits",
]


def sheet_names(summary: pd.DataFrame) -> dict[int, str]:
    """A sheet name per persona id: its rank and name, as Excel allows (31 characters, no []:*?/\\), unique."""
    names: dict[int, str] = {}
    taken = {SUMMARY_SHEET}
    for persona in summary.itertuples():
        base = SHEET_NAME_FORBIDDEN.sub("-", f"{persona.rank} {persona.persona}").strip("'")[:SHEET_NAME_MAX]
        name, n = base, 1
        while name.lower() in taken:
            n += 1
            name = f"{base[: SHEET_NAME_MAX - len(str(n)) - 3]} ({n})"
        taken.add(name.lower())
        names[int(persona.persona_id)] = name
    return names


def write_workbook(summary: pd.DataFrame, rows, path: Path, progress: Callable[[int], None] | None = None) -> None:
    """Write the summary sheet (one row per persona of `summary`) and a sheet per persona from
    `rows` (the export's result, grouped by persona), to `path`."""
    import xlsxwriter  # imported here: only xlsx exports need it

    columns = [column for column, *_ in rows.description]
    names = sheet_names(summary)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as scratch:
        workbook = xlsxwriter.Workbook(
            str(path),
            # Values as they are: no text read as a number, a formula or a link.
            {
                "constant_memory": True,
                "tmpdir": scratch,
                "strings_to_numbers": False,
                "strings_to_formulas": False,
                "strings_to_urls": False,
            },
        )
        try:
            formats = Formats(workbook)
            write_summary(workbook, formats, summary, names)
            sheets = {
                persona.persona_id: PersonaSheet(
                    workbook, formats, names[int(persona.persona_id)], columns, int(persona.influencers)
                )
                for persona in summary.itertuples()
            }
            for sheet, persona in zip(sheets.values(), summary.itertuples(), strict=True):
                sheet.worksheet.set_tab_color(look(persona.persona_id).colour)
            persona_id = columns.index("persona_id")
            written = 0
            # Cell by cell: this loop is XlsxWriter's interface, bounded by Excel's rows per sheet (checked before).
            while batch := rows.fetchmany(BATCH_ROWS):
                for row in batch:
                    sheets[row[persona_id]].append(row)
                written += len(batch)
                if progress is not None:
                    progress(written)
            workbook.close()
        except xlsxwriter.exceptions.XlsxWriterException as exc:  # e.g. FileCreateError, wrapping the OS's
            raise OSError(f"{type(exc).__name__}: {exc}") from exc


class Formats:
    """The workbook's cell formats, made once (XlsxWriter wants one object per distinct format)."""

    def __init__(self, workbook):
        self.workbook = workbook
        self.header = workbook.add_format({"bold": True, "bg_color": "#eeeeee", "bottom": 1, "text_wrap": True})
        self.link = workbook.add_format({"font_color": "#1155cc", "underline": 1})
        self.note = workbook.add_format({"italic": True, "font_color": "#555555"})
        self.wrap = workbook.add_format({"text_wrap": True, "valign": "top"})
        self.by_number_format = {}

    def number(self, pattern: str):
        if pattern not in self.by_number_format:
            self.by_number_format[pattern] = self.workbook.add_format({"num_format": pattern})
        return self.by_number_format[pattern]

    def of(self, column: str):
        pattern = COLUMNS.get(column, (None, 0))[0]
        return None if pattern is None else self.number(pattern)


def start_sheet(worksheet, formats: Formats, columns: list[str], rows: int) -> None:
    """Header row, frozen with the first column; a filter over every column; widths and formats."""
    for i, column in enumerate(columns):
        width = COLUMNS.get(column, (None, len(column) + 2))[1]
        cell_format = formats.wrap if column in ("meaning", "suits") else formats.of(column)
        worksheet.set_column(i, i, max(width, len(column) + 2), cell_format)
    worksheet.write_row(0, 0, columns, formats.header)
    worksheet.freeze_panes(1, 1)
    worksheet.autofilter(0, 0, rows, len(columns) - 1)


def write_cell(worksheet, formats: Formats, row: int, col: int, column: str, value) -> None:
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return  # left empty: no value (no growth yet, no feature row)
    if isinstance(value, bool | np.bool_):
        worksheet.write_boolean(row, col, bool(value))
    elif isinstance(value, datetime | date):
        worksheet.write_datetime(row, col, value, formats.number(DATE))
    elif isinstance(value, numbers.Real):
        worksheet.write_number(row, col, value, formats.of(column))
    else:
        worksheet.write_string(row, col, str(value))


class PersonaSheet:
    """One persona's sheet: its influencers, best fit first, the profile URL a link."""

    def __init__(self, workbook, formats: Formats, name: str, columns: list[str], rows: int):
        self.worksheet = workbook.add_worksheet(name)
        self.formats, self.columns = formats, columns
        self.url = columns.index("profile_url")
        self.next_row = 1
        start_sheet(self.worksheet, formats, columns, rows)

    def append(self, values) -> None:
        sheet, formats, r = self.worksheet, self.formats, self.next_row
        for c, (column, value) in enumerate(zip(self.columns, values, strict=True)):
            if c == self.url and value is not None:
                if r <= MAX_LINKS_PER_SHEET:
                    sheet.write_url(r, c, value, formats.link, string=value)
                else:
                    sheet.write_formula(r, c, f'=HYPERLINK("{value}")', formats.link, value)
            else:
                write_cell(sheet, formats, r, c, column, value)
        self.next_row += 1


def write_summary(workbook, formats: Formats, summary: pd.DataFrame, names: dict[int, str]) -> None:
    """One row per persona: its figures, colour, meaning, what it suits and a link to its sheet; notes below."""
    sheet = workbook.add_worksheet(SUMMARY_SHEET)
    start_sheet(sheet, formats, SUMMARY_COLUMNS, len(summary))
    for r, persona in enumerate(summary.to_dict(orient="records"), start=1):
        shown = look(persona["persona_id"])
        values = {
            **persona,
            "meaning": meaning(persona["er_level"], persona["active_rate_level"]),
            "suits": suits(persona["er_level"], persona["active_rate_level"]),
        }
        for c, column in enumerate(SUMMARY_COLUMNS):
            if column == "colour":
                swatch = workbook.add_format({"bg_color": shown.colour, "font_color": "#ffffff", "bold": True})
                sheet.write_string(r, c, shown.colour_name, swatch)
            elif column == "sheet":
                name = names[int(persona["persona_id"])]
                sheet.write_url(r, c, f"internal:'{name}'!A1", formats.link, string=name)
            else:
                value = values[column]
                write_cell(sheet, formats, r, c, column, value.date() if isinstance(value, pd.Timestamp) else value)
    notes = [
        f"Snapshot {int(summary['snapshot_version'].iloc[0])}, features of "
        f"{pd.Timestamp(summary['feature_date'].iloc[0]):%Y-%m-%d}; exported {utcnow():%Y-%m-%d %H:%M} UTC.",
        "active_rate (comments per like, %) is the followers' buying intent; ER (reactions per follower, %) the trust "
        "in it; levels are against the whole cohort.",
        FIT_SCORE,
        "Each persona's sheet lists its influencers, best fit first. csv and parquet exports carry the same columns "
        "with the values as stored.",
    ]
    for i, note in enumerate(notes):
        sheet.write_string(len(summary) + 2 + i, 0, note, formats.note)
