"""An offline page summarising validation (beside the Great Expectations Data Docs, which
load jQuery and Bootstrap from CDNs and show empty lists without network): plain HTML, no
script, nothing fetched."""

from __future__ import annotations

import html

import pandas as pd

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Validation summary</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 0.2em 0.6em; }}
th {{ background: #f3f3f3; }}
.failed {{ background: #fde2e2; }}
</style></head><body>
<h1>Validation summary</h1>
<p>The latest {count} validations, newest first, from the warehouse's quality tables
(the Great Expectations Data Docs beside this page hold each run's full detail).</p>
<h2 id="runs">Validations</h2>
{runs}
<h2 id="failures">Failed expectations</h2>
{failures}
</body></html>
"""


def render_validation_summary(runs: pd.DataFrame, failures: pd.DataFrame) -> str:
    """The summary page: one table of validation runs (failed ones highlighted), one of failed expectations."""
    if runs.empty:
        runs_html = "<p>No validation recorded yet.</p>"
    else:
        failed = (runs["failed"] > 0) | ~runs["table_level_ok"].astype(bool)
        classes = ["failed" if f else "" for f in failed]
        body = "\n".join(
            f'<tr class="{c}">' + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
            for c, row in zip(classes, runs.itertuples(index=False), strict=True)
        )
        head = "".join(f"<th>{html.escape(c)}</th>" for c in runs.columns)
        runs_html = f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"
    failures_html = (
        "<p>Every expectation passed.</p>" if failures.empty else failures.to_html(index=False, border=0, na_rep="")
    )
    return PAGE.format(count=len(runs), runs=runs_html, failures=failures_html)


def cell(value) -> str:
    return "" if pd.isna(value) else html.escape(str(value))
