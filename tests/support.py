"""What tests share besides fixtures: crafted raw rows and features, the real command line, the
study's data, and checks of snapshots. Plain functions and constants, imported by name
(`from support import cli`); the fixtures are in conftest.py."""

import errno
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.frames import CROSSED
from pipeline.storage import connect
from readers.study_csv import BASE_COLUMNS, read_study_csv
from readers.study_import import land_study_csv
from sandbox.synthetic import Population
from transforms.features import CLUSTERABLE, FeatureStream, feature_date_or_latest, insert_features, summarize_features
from warehouse.db import insert_frame, migrate, migrations
from warehouse.landing import Landing, new_crawl_key, shard_name
from warehouse.loading import load_crawl
from warehouse.snapshots import store_snapshot
from warehouse.util import utcnow
from warehouse.vocabulary import AccountStatus, RunStatus, Source

REPO = Path(__file__).resolve().parents[1]
# The product's packages, as the wheel ships them (pyproject.toml): what tests walk over.
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
PACKAGES = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]


# The study's public data, shared by every session and CI; absent on a user's fresh clone.
STUDY_DATA = Path(os.environ.get("KIC_STUDY_DATA", REPO.parent / "shared" / "seed" / "study-data"))


IN_CI = os.environ.get("CI", "").lower() == "true"


FETCHED_AT = datetime(2026, 11, 1, 12, tzinfo=UTC)


# STUDY.md: the study's personas, best first.
STUDY_RANKING = [
    "Highest benefit",
    "Low Cost High benefit",
    "High Interactive",
    "Middle benefit",
    "Middle Interactive",
    "Lowest benefit",
]


class Files:
    """Every file under a folder (those `keep` accepts), by relative path, with its bytes.
    Compared byte for byte (several times faster than hashing them first); shown by names
    and sizes when a comparison fails."""

    def __init__(self, folder: Path, keep=lambda path: True):
        paths = sorted(p for p in Path(folder).rglob("*") if p.is_file() and keep(p))
        self.contents = {str(p.relative_to(folder)): p.read_bytes() for p in paths}

    def __eq__(self, other) -> bool:
        return isinstance(other, Files) and self.contents == other.contents

    def __repr__(self) -> str:
        return "Files(" + ", ".join(f"{name}: {len(data):,} bytes" for name, data in self.contents.items()) + ")"


def study_path(name: str) -> Path:
    """A file of the study's data: skipped where it is absent, a failure in CI (where it is always there)."""
    path = STUDY_DATA / name
    if not path.is_file():
        message = f"study data not available ({path}; set KIC_STUDY_DATA)"
        if IN_CI:
            pytest.fail(message + " - in CI it must be")
        pytest.skip(message)
    return path


def mark_validated(con, crawl_id: int, ok: bool = True) -> None:
    """Record that a crafted crawl passed validation, so staging reads it (what the pipeline's
    validate step records after running the real suites; tests of the SQL skip the suites)."""
    insert_frame(
        con,
        "quality.validation_runs",
        pd.DataFrame(
            [
                {
                    "validation_id": f"test-fixture-{crawl_id}",
                    "run_at": FETCHED_AT,
                    "suite": "test_fixture",
                    "crawl_id": crawl_id,
                    "rows_validated": 0,
                    "expectations": 0,
                    "passed": 0,
                    "failed": 0,
                    "rows_quarantined": 0,
                    "table_level_ok": ok,
                }
            ]
        ),
    )


def append_raw(con, table: str, rows: pd.DataFrame | list[dict]) -> None:
    """Append crafted rows to raw.<table>, matching columns by name: for a warehouse at a schema
    version older than the loader's (every other raw row comes through the loader)."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame.from_records(list(rows))
    if len(frame):
        insert_frame(con, f"raw.{table}", frame)


def post(username: str, n: int, kind="image", likes=10, comments=1, **columns) -> dict:
    """A crafted raw.posts row for add_crawl: the account's n-th post, an image of the feed taken
    before FETCHED_AT unless `kind` and `columns` (media_type, product_type, taken_at, …) say otherwise."""
    return {
        "username": username,
        "post_id": f"{username}-{n}",
        "kind": kind,
        "likes": likes,
        "comments": comments,
        "media_type": "GraphImage",
        "product_type": "feed",
        "taken_at": datetime(2026, 10, 1, tzinfo=UTC),
        **columns,
    }


def add_crawl(
    con,
    on: date,
    profiles: list[dict],
    posts: list[dict] = (),
    outcomes: dict[str, str] | None = None,
    source="web",
    validated=True,
    origin="test",
    fetched_at=FETCHED_AT,
) -> int:
    """Land crafted rows as one crawl of one shard and batch, and store it with the loader, as a
    crawl's pipeline and `kic load` do: profile dicts need username (+ any raw.profiles column),
    post dicts username and post_id (+ any raw.posts column); an account's outcome is ok,
    private, or as `outcomes` says."""
    outcomes = outcomes or {}
    profiles = [{"followers": 1000, "follows": 10, "media_count": 50, "is_private": False, **p} for p in profiles]
    answers = [
        {"username": p["username"], "status": outcomes.get(p["username"], "private" if p["is_private"] else "ok")}
        for p in profiles
    ]
    posts = [{"is_pinned": False, "views": None, "likes": None, **p} for p in posts]
    frames = {
        table: pd.DataFrame(rows).assign(fetched_at=fetched_at).convert_dtypes() if rows else pd.DataFrame(rows)
        for table, rows in {"account_outcomes": answers, "profiles": profiles, "posts": posts}.items()
    }
    return land_and_load(con, frames, source, origin, on, validated)


def land_and_load(con, frames: dict[str, pd.DataFrame], source: str, origin: str, on: date, validated=True) -> int:
    """Land a crawl's rows (`frames`: account_outcomes, profiles, posts) as one shard and batch
    of a crawl that ended well, store it with the loader, and return its crawl id; with
    `validated`, record it as validated (the suites are tested apart)."""
    key, shard = new_crawl_key(source, on), shard_name(0, 1)
    with tempfile.TemporaryDirectory() as folder:
        landing = Landing(folder)
        landing.open_crawl(key, source, origin, on, {shard: frames["account_outcomes"].get("username", [])})
        landing.put_batch(key, shard, "00000000-000001", frames)
        landing.close_shard(key, shard, RunStatus.SUCCEEDED, None, {})
        crawl_id = load_crawl(con, landing, key).crawl_id
    if validated:
        mark_validated(con, crawl_id)
    return crawl_id


def derive(con, day: date | None = None):
    """Compute and store one date's features straight from SQL (the pipeline validates them
    first; here they are only read through, for the fingerprint the write checks); default:
    the latest validated data. Returns the date's FeatureSummary."""
    day = feature_date_or_latest(con, day)
    rows = FeatureStream(con, day)
    for _ in rows:
        pass
    insert_features(con, day, quarantined=[], validated=rows.fingerprint)
    return summarize_features(con, day)


def migrate_to(con, version: int) -> None:
    """Make `con` an older warehouse: the migrations up to `version` only, as an earlier kic applied them."""
    older = tuple(m for m in migrations() if m[0] <= version)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("warehouse.db.migrations", lambda: older)
        migrate(con)


@dataclass(frozen=True)
class StoredImport:
    crawl_id: int
    accounts: int  # profiles stored
    rejected: int  # rows stored in raw.rejected_rows


def import_study(con, path: Path, as_of: date, validated=True) -> StoredImport:
    """Store a study-layout CSV as one import, landed and loaded (what `kic import-csv` stores
    before validating it); the counts are read back from the warehouse."""
    with tempfile.TemporaryDirectory() as folder:
        landing = Landing(folder)
        landed = land_study_csv(landing, path, read_study_csv(path), as_of)
        crawl_id = load_crawl(con, landing, landed.crawl_key).crawl_id
    if validated:
        mark_validated(con, crawl_id)
    counts = (
        "SELECT profiles_written, (SELECT count(*) FROM raw.rejected_rows WHERE crawl_id = $id) "
        "FROM raw.crawl_runs WHERE crawl_id = $id"
    )
    return StoredImport(crawl_id, *con.execute(counts, {"id": crawl_id}).fetchone())


def synthetic_crawl(con, population: Population, on: date, validated=True) -> int:
    """Land what every account of a synthetic population shows on `on` as one crawl of one shard
    and batch, and load it with the loader: what a crawl of the sandbox stores, without the HTTP
    round trips."""
    fetched_at = utcnow()
    outcomes, profiles, posts = [], [], []
    for account in population.accounts:
        profile = population.profile(account, on)
        status = AccountStatus.PRIVATE if account.is_private else AccountStatus.OK
        outcomes.append({"username": account.username, "status": status, "fetched_at": fetched_at})
        profiles.append(
            {
                "username": account.username,
                "user_id": account.user_id,
                "followers": profile.followers,
                "follows": profile.follows,
                "media_count": profile.media_count,
                "is_private": account.is_private,
                "is_verified": account.is_verified,
                "is_business": account.is_business,
                "hide_like_counts": account.hides_likes,
                "fetched_at": fetched_at,
            }
        )
        posts.extend(
            {
                "post_id": post.post_id,
                "username": account.username,
                "shortcode": post.shortcode,
                "kind": post.kind,
                "media_type": post.typename,
                "product_type": post.product_type,
                "likes": None if account.hides_likes else post.likes,
                "comments": post.comments,
                "views": post.views,
                "taken_at": post.taken_at,
                "is_pinned": post.is_pinned,
                "fetched_at": fetched_at,
            }
            for post in profile.posts
        )
    frames = {"account_outcomes": outcomes, "profiles": profiles, "posts": posts}
    frames = {table: pd.DataFrame(rows) for table, rows in frames.items()}
    if posts:  # a count an account hides is missing, not NaN, as in the spider's batches
        frames["posts"] = frames["posts"].astype({"likes": "Int64", "views": "Int64"})
    return land_and_load(con, frames, Source.SYNTHETIC, f"seed={population.seed}", on, validated)


def fill(folder: Path, room: int) -> Path:
    """Write a file into `folder` until its file system is full (a real ENOSPC), then free `room` bytes."""
    filler = folder / "filler"
    with filler.open("wb") as file:
        try:
            while True:
                file.write(b"\0" * 65536)
                file.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    os.truncate(filler, max(0, filler.stat().st_size - room))
    return filler


def subprocess_env(extra: dict | None = None) -> dict:
    """This process's environment (conftest's Prefect home included) for a `kic` subprocess, with the
    product's default Data Docs, and bytecode cached (compiling scikit-learn and SciPy again costs
    each CLI start seconds)."""
    skipped = {"KIC_DATA_DOCS", "PYTHONDONTWRITEBYTECODE"}
    return {**{name: value for name, value in os.environ.items() if name not in skipped}, **(extra or {})}


def as_at_a_terminal() -> None:
    """A child's start (preexec_fn) as a terminal's foreground job: its own process group (the
    caller passes start_new_session) and Ctrl-C's default. The suite itself may run where SIGINT
    is ignored (a background job of a non-interactive shell), and children inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def kic(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real `kic` command in a subprocess (smoke tests: most CLI tests run in-process)."""
    return subprocess.run(
        [sys.executable, "-m", "kic", *args],
        capture_output=True,
        text=True,
        env=subprocess_env(env),
        cwd=cwd,
        timeout=600,
    )


def cli(*args) -> "CliResult":
    """Run a `kic` command in this process (Typer's CliRunner): stdout, stderr, exit code."""
    from typer.testing import CliRunner

    from kic.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return CliResult(result.exit_code, result.stdout, result.stderr)


# A study-layout CSV's header: its 12 base columns.
STUDY_HEADER = ",".join(BASE_COLUMNS)


# KIC_* settings for CLI tests that recluster: one K-means candidate (K = 3), published,
# and a persona range that admits it.
SMALL_GRID = {
    "KIC_CLUSTERING__KMEANS_K": "[3]",
    "KIC_CLUSTERING__KMEDOIDS_K": "[]",
    "KIC_CLUSTERING__ELBOW_K": "[1]",
    "KIC_CLUSTERING__PUBLISH": "kmeans-k3",
    "KIC_CLUSTERING__MIN_PERSONAS": "3",
}


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """`values` set in the environment for the block, as a user's shell sets KIC_*; restored after
    (for fixtures of module scope, which cannot take pytest's function-scoped monkeypatch)."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in values.items():
            patch.setenv(name, value)
        yield


@dataclass(frozen=True)
class Cohort:
    """Clusterable features as recluster() reads them: arrays in a fixed order (er and
    active_rate in percent), and a fingerprint."""

    er: np.ndarray
    active_rate: np.ndarray
    follower: np.ndarray
    fingerprint: str = "test"


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def assert_one_line_error(result, *fragments):
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


MAIN_JOB_DAYS = ("2026-05-04", "2026-05-11")


PIPELINE_CLUSTERING = {"kmeans_k": [3], "kmedoids_k": [], "elbow_k": [1], "publish": "kmeans-k3", "min_personas": 3}


PIPELINE_NIGHTS = (date(2026, 6, 1), date(2026, 6, 8))


PIPELINE_IMPORT = [
    ",account,post,follower,follow,open_account,official_account"
    ",image_love,image_comment,video_love,video_comment,igtv_love,igtv_comment,ER,active_rate",
    "0,https://instagram.com/alpha_one,535,10000,10,1,1,900,100,0,0,0,0,99,99",
    "1,gamma,12,500,3,0,0,0,0,0,0,0,0,0,0",
    "2,delta,many,500,3,0,0,0,0,0,0,0,0,0,0",  # rejected: not a number
]


def query(warehouse, sql: str, params=None) -> pd.DataFrame:
    with connect(warehouse, read_only=True) as con:
        return con.execute(sql, params).df()


def personas_of(warehouse, version: int) -> pd.DataFrame:
    return query(
        warehouse,
        "SELECT a.username, p.persona_id, p.persona, a.er, a.active_rate, a.assigned_by FROM clusters.assignments a "
        "JOIN clusters.profiles p USING (version, cluster) WHERE a.version = ? ORDER BY a.username",
        [version],
    )


def assert_every_move_is_explained_by_the_movers_numbers(warehouse, before: int, after: int, margin: float) -> int:
    """Every influencer whose persona id changed between two snapshots of one frame is a `moved`
    row whose own numbers crossed: now at least (1 + margin) times as far from the old persona's
    centre as from the new one's, and not so in the snapshot before. Returns how many moved."""
    frame_id = query(warehouse, "SELECT frame_id FROM clusters.snapshots WHERE version = ?", [after]).iat[0, 0]
    centres = query(warehouse, "SELECT * FROM clusters.frame_personas WHERE frame_id = ?", [int(frame_id)]).set_index(
        "persona_id"
    )
    a, b = personas_of(warehouse, before), personas_of(warehouse, after)
    both = a.merge(b, on="username", suffixes=("_before", "_after"))
    moved = both[both.persona_id_before != both.persona_id_after]
    changes = query(warehouse, "FROM clusters.persona_changes(?, ?)", [before, after]).set_index("username")
    assert set(changes.change) <= {"moved", "new", "dropped"}  # one frame: nothing redrawn, nothing renamed
    assert set(changes.index[changes.change == "moved"]) == set(moved.username)

    def distance(rows, persona_column, point):
        centre = centres.loc[rows[persona_column]]
        return np.hypot(
            rows[f"er_{point}"].to_numpy() - centre.centre_er.to_numpy(),
            rows[f"active_rate_{point}"].to_numpy() - centre.centre_active_rate.to_numpy(),
        )

    now = distance(moved, "persona_id_before", "after") / distance(moved, "persona_id_after", "after")
    then = distance(moved, "persona_id_before", "before") / distance(moved, "persona_id_after", "before")
    assert (now >= 1 + margin - 1e-9).all() and (then < 1 + margin).all()
    assert (moved.assigned_by_after == CROSSED).all()
    for row in moved.itertuples():
        why = changes.loc[row.username, "why"]
        assert why.startswith(f"its numbers crossed from {row.persona_before}'s region into {row.persona_after}'s")
        assert f"ER {row.er_before:.2f} -> {row.er_after:.2f}" in why
    return len(moved)


# A flow that records its process and sleeps: a run to kill (python -c SLEEPER, under a Prefect server).
SLEEPER = """
import time
from prefect import flow
from flows.runs import record_process

@flow(name="kic-sleeper")
def sleeper():
    record_process()
    print("running", flush=True)
    time.sleep(600)

sleeper()
"""


def headless_chromium(flags: list[str], *args: str) -> subprocess.CompletedProcess:
    """Debian's headless Chromium with `flags` and `args`, in a profile of its own thrown away after."""
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [shutil.which("chromium"), *flags, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )


def store_new_snapshot(con, content) -> int:
    """Store `content` as the next snapshot, whatever the latest one holds (`kic recluster --force`)."""
    return store_snapshot(con, content, rows=CLUSTERABLE, unless_unchanged=False)[0]
