from datetime import date

import pytest

from readers.study_csv import read_study_csv
from readers.study_import import land_study_csv
from scrapers.usernames import normalize_account
from support import derive, import_study
from warehouse.errors import KicError
from warehouse.landing import Landing
from warehouse.loading import load_crawl

HEADER = (
    ",account,post,follower,follow,open_account,official_account"
    ",image_love,image_comment,video_love,video_comment,igtv_love,igtv_comment,ER,active_rate"
)
GOOD = [
    "0,https://instagram.com/alpha_one,535,10000,10,1,1,900,100,0,0,0,0,99,99",
    "1,https://www.instagram.com/Beta.Two/,791,2000,243,1,0,150,50,300,5,0,0,1,1",
    "2,gamma,12,500,3,0,0,0,0,0,0,0,0,0,0",
]


def write(tmp_path, lines, name="in.csv"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
    return path


def count(con, table):
    return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]


def test_accounts_are_normalized_from_urls_and_handles():
    assert normalize_account("https://instagram.com/lalalalisa_m") == "lalalalisa_m"
    assert normalize_account("https://www.instagram.com/chahong.official/") == "chahong.official"
    assert normalize_account("@Some.One") == "some.one"
    assert normalize_account("https://example.com/x") is None
    assert normalize_account("not a name") is None


def test_import_stores_means_not_posts_and_recomputes_er(con, tmp_path):
    result = import_study(con, write(tmp_path, [HEADER, *GOOD]), date(2020, 6, 1))
    assert (result.accounts, result.rejected) == (3, 0)
    assert count(con, "raw.posts") == 0
    assert count(con, "raw.imported_media_means") == 3
    run = con.execute(
        "SELECT source, status, accounts_requested, accounts_ok, accounts_failed, profiles_written FROM raw.crawl_runs"
    ).fetchall()
    assert run == [("csv", "succeeded", 3, 3, 0, 3)]

    derive(con, date(2020, 6, 1))
    rows = {
        r[0]: r[1:]
        for r in con.execute(
            "SELECT username, er, active_rate, is_clusterable, not_clusterable_reason, posts_observed "
            "FROM features.influencer_features"
        ).fetchall()
    }
    # The file's ER / active_rate columns (99) are ignored: recomputed from the base columns.
    assert rows["alpha_one"][:2] == pytest.approx(((900 + 100) / 10000 * 100, 100 / 901 * 100))
    assert rows["beta.two"][:2] == pytest.approx((200 / 2000 * 100, 50 / 151 * 100))
    assert rows["alpha_one"][2:] == (True, None, None)
    assert rows["gamma"][2:4] == (False, "private")


def test_wrong_columns_fail_naming_them_and_write_nothing(con, tmp_path):
    path = write(tmp_path, ["account,post,followers,follow", "a,1,2,3"])
    with pytest.raises(KicError) as error:
        import_study(con, path, date(2020, 6, 1))
    message = str(error.value)
    assert str(path) in message
    for column in ("follower", "open_account", "image_love", "igtv_comment"):
        assert column in message
    assert "followers" not in message.split("missing")[1]
    assert count(con, "raw.crawl_runs") == 0


def test_crawler_markers_and_negative_values_are_rejected_with_reasons(con, tmp_path):
    lines = [
        HEADER,
        *GOOD,
        "3,https://instagram.com/minus_one,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,0,0",
        "4,https://instagram.com/negative,10,100,1,1,0,-5,1,0,0,0,0,0,0",
        "5,https://instagram.com/missing,10,,1,1,0,5,1,0,0,0,0,0,0",
    ]
    result = import_study(con, write(tmp_path, lines), date(2020, 6, 1))
    assert (result.accounts, result.rejected) == (3, 3)
    rejected = dict(con.execute("SELECT username, reason FROM raw.rejected_rows").fetchall())
    assert "post is -1" in rejected["minus_one"]
    assert "image_love is negative" in rejected["negative"]
    assert "follower is missing" in rejected["missing"]
    lines_of = dict(con.execute("SELECT username, line_number FROM raw.rejected_rows").fetchall())
    assert lines_of["minus_one"] == 5  # header is line 1
    assert con.execute("SELECT accounts_ok, accounts_failed FROM raw.crawl_runs").fetchall() == [(3, 3)]
    assert "minus_one" not in {r[0] for r in con.execute("SELECT username FROM raw.profiles").fetchall()}


def test_text_in_numeric_columns_is_rejected_naming_the_column(con, tmp_path):
    lines = [HEADER, GOOD[0], "1,https://instagram.com/texty,10,lots,1,1,0,5,one,0,0,0,0,0,0"]
    result = import_study(con, write(tmp_path, lines), date(2020, 6, 1))
    assert (result.accounts, result.rejected) == (1, 1)
    reason = con.execute("SELECT reason FROM raw.rejected_rows").fetchall()[0][0]
    assert "follower is not a number" in reason and "image_comment is not a number" in reason


def test_duplicate_accounts_keep_the_first(con, tmp_path):
    lines = [HEADER, GOOD[0], GOOD[0].replace("0,", "9,", 1).replace(",10000,", ",20000,")]
    result = import_study(con, write(tmp_path, lines), date(2020, 6, 1))
    assert (result.accounts, result.rejected) == (1, 1)
    assert con.execute("SELECT followers FROM raw.profiles").fetchall() == [(10000,)]


@pytest.mark.parametrize("lines", [[], [HEADER]], ids=["empty", "header-only"])
def test_empty_files_fail_and_write_nothing(con, tmp_path, lines):
    path = write(tmp_path, lines)
    with pytest.raises(KicError, match=r"in\.csv"):
        import_study(con, path, date(2020, 6, 1))
    assert count(con, "raw.crawl_runs") == 0


def test_a_failure_while_loading_stores_nothing(con, tmp_path, monkeypatch):
    """The loader writes an import's rows and closes its run in one transaction."""
    import warehouse.loading

    def failing_close(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(warehouse.loading, "close_run", failing_close)
    with pytest.raises(RuntimeError):
        import_study(con, write(tmp_path, [HEADER, *GOOD]), date(2020, 6, 1))
    for table in ("raw.crawl_runs", "raw.profiles", "raw.imported_media_means", "raw.account_outcomes"):
        assert count(con, table) == 0


def test_an_import_lands_as_one_closed_shard_and_loads_through_the_crawls_loader(con, tmp_path):
    path = write(tmp_path, [HEADER.replace(",ER", ",extra,ER"), *(g.replace(",99,99", ",x,99,99") for g in GOOD[:1])])
    landing = Landing(tmp_path / "landing")
    landed = land_study_csv(landing, path, read_study_csv(path), date(2020, 6, 1))
    assert landing.crawl_keys() == [landed.crawl_key] and landed.crawl_key.startswith("csv-2020-06-01-")
    assert landing.closed(landed.crawl_key, "import")["status"] == "succeeded"
    loaded = load_crawl(con, landing, landed.crawl_key)
    again = load_crawl(con, landing, landed.crawl_key)  # a second load of the same landing stores nothing more
    assert again.crawl_id == loaded.crawl_id and again.rows_loaded == 0
    run = con.execute("SELECT source, origin, status, message, landing_key, profiles_written FROM raw.crawl_runs")
    assert run.fetchall() == [("csv", str(path), "succeeded", "ignored column(s): extra", landed.crawl_key, 1)]


def test_final_dataset_of_the_study_imports_with_private_accounts_not_clusterable(con, study_file):
    parsed = read_study_csv(study_file("final_beauty_dataset.csv"))
    assert parsed.rows == 940
    import_study(con, study_file("final_beauty_dataset.csv"), date(2020, 6, 1))
    summary = derive(con, date(2020, 6, 1))
    private = int(parsed.accepted["open_account"].eq(0).sum())
    assert summary.not_clusterable.get("private") == private > 0
    assert summary.clusterable == 940 - private


def test_counts_past_int64_and_huge_means_are_rejected_naming_the_column(tmp_path):
    """2^63 followers used to wrap to -2^63 and 1e300 likes to overflow the features."""
    rows = [
        "3,big.follower,10,9223372036854775808,5,1,0,30,2,0,0,0,0,0,0",
        "4,huge.mean,10,1000,5,1,0,1e300,2,0,0,0,0,0,0",
        "5,just.fine,10,1000000000000,5,1,0,30,2,0,0,0,0,0,0",
    ]
    parsed = read_study_csv(write(tmp_path, [HEADER, *rows]))
    assert list(parsed.accepted["username"]) == ["just.fine"]
    assert dict(zip(parsed.rejected["line_number"], parsed.rejected["reason"], strict=True)) == {
        2: "follower is too large (above 1e+12)",
        3: "image_love is too large (above 1e+12)",
    }
