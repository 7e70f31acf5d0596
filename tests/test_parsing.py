"""Parsing saved answers of both formats, and the spider's reading of whole responses."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from scrapy import Request
from scrapy.exceptions import CloseSpider
from scrapy.http import TextResponse
from scrapy.utils.test import get_crawler

from scrapers.items import AccountItem, DiscoveredAccountItem
from scrapers.middlewares import retry_after_seconds
from scrapers.parsing import (
    BadJson,
    load_json,
    parse_graph_page,
    parse_tag_page,
    parse_web_profile,
)
from scrapers.spiders.instagram import InstagramSpider

SAVED = Path(__file__).parent / "fixtures" / "responses"


def saved(name):
    return json.loads((SAVED / name).read_text(encoding="utf-8"))


def test_web_profile_kinds_carousels_reels_igtv_pinned_and_hidden_likes():
    outcome = parse_web_profile(saved("web_profile_mixed.json"))
    assert outcome.status == "ok"
    assert outcome.profile == {
        "user_id": "1790563412",
        "followers": 48213,
        "follows": 612,
        "media_count": 734,
        "is_private": False,
        "is_verified": False,
        "is_business": True,
        "hide_like_counts": False,
    }
    posts = {p["post_id"]: p for p in outcome.posts}
    assert len(outcome.posts) == 6  # the pinned post listed twice is kept once
    assert [posts[i]["kind"] for i in ("3101", "3102", "3103", "3104", "3105", "3106")] == [
        "image",
        "image",
        "video",
        "igtv",
        "image",
        "video",
    ]
    assert posts["3101"]["is_pinned"] and not posts["3102"]["is_pinned"]
    assert posts["3103"]["media_type"] == "XDTGraphVideo" and posts["3103"]["product_type"] == "clips"
    assert posts["3104"]["likes"] == 410  # edge_liked_by when there is no preview count
    assert posts["3105"]["likes"] is None  # -1 is hidden, not a number
    assert posts["3103"]["views"] == 52000 and posts["3101"]["views"] is None
    assert posts["3101"]["taken_at"] == datetime.fromtimestamp(1764000000, UTC)


def test_web_profile_with_hidden_counts_flag_keeps_no_like_numbers():
    outcome = parse_web_profile(saved("web_profile_hidden_likes.json"))
    assert outcome.profile["hide_like_counts"] is True
    assert [p["likes"] for p in outcome.posts] == [None, None]  # even the 5120 shown
    assert [p["comments"] for p in outcome.posts] == [61, 33]


def test_web_private_null_user_and_login_walls():
    private = parse_web_profile(saved("web_profile_private.json"))
    assert (private.status, private.posts, private.profile["followers"]) == ("private", [], 2300)
    assert parse_web_profile(saved("web_profile_null_user.json")).status == "not_found"
    for name, message in (
        ("web_checkpoint.json", "checkpoint_required"),
        ("web_login_required.json", "login_required"),
    ):
        blocked = parse_web_profile(saved(name), 400)
        assert (blocked.status, blocked.reason, blocked.http_status) == ("blocked", message, 400)


def test_tag_page_usernames_once_and_next_page():
    usernames, next_max_id = parse_tag_page(saved("tag_web_info.json"))
    assert usernames == ["minji.lip", "yuna.skin", "haru.cosme"]
    assert next_max_id == "QVFEbW9yZQ=="


def test_graph_pages_carousel_reels_igtv_and_hidden_likes():
    first, after = parse_graph_page(saved("graph_discovery_page1.json"))
    assert after == "QVFIUmFmdGVy"
    assert first.profile["followers"] == 23871 and first.profile["media_count"] == 412
    assert [p["kind"] for p in first.posts] == ["image", "video", "image"]
    assert first.posts[2]["likes"] is None  # like_count left out: hidden
    assert first.posts[0]["taken_at"] == datetime(2026, 11, 20, 11, 2, 45, tzinfo=UTC)
    second, after = parse_graph_page(saved("graph_discovery_page2.json"))
    assert after is None  # no `next`: the last page
    assert [p["kind"] for p in second.posts] == ["igtv", "video"]


@pytest.mark.parametrize(
    "code,status",
    [
        (4, "rate_limited"),
        (17, "rate_limited"),
        (32, "rate_limited"),
        (613, "rate_limited"),
        (110, "not_found"),
        (190, "blocked"),
        (100, "error"),
    ],
)
def test_graph_errors_are_keyed_on_the_error_code(code, status):
    # Whatever the HTTP status: Graph API limits come back as 400 or 403, not 429.
    outcome, after = parse_graph_page(saved(f"graph_error_{code}.json"), 400)
    assert (outcome.status, after) == (status, None)
    assert str(code) in outcome.reason


def test_json_or_not():
    assert load_json(b"<!DOCTYPE html><html></html>") is None
    assert load_json(b'  {"a": 1}') == {"a": 1}
    with pytest.raises(BadJson, match="malformed JSON"):
        load_json(b'{"data": {"user": {"id": "1", "edge')


def test_retry_after_in_seconds_or_as_a_date():
    assert retry_after_seconds(b"7") == 7.0
    assert retry_after_seconds(b"Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert (
        3500
        < retry_after_seconds(
            datetime.fromtimestamp(datetime.now(UTC).timestamp() + 3600, UTC)
            .strftime("%a, %d %b %Y %H:%M:%S GMT")
            .encode()
        )
        <= 3600
    )
    assert retry_after_seconds(b"soon") is None and retry_after_seconds(None) is None


# --- the spider's callbacks on whole responses ------------------------------------------


@pytest.fixture
def spider(tmp_path):
    crawler = get_crawler(
        InstagramSpider,
        {
            "KIC_WAREHOUSE": str(tmp_path / "w.duckdb"),
            "KIC_WEB_BASE_URL": "http://ig.test",
            "KIC_GRAPH_BASE_URL": "http://graph.test",
            "KIC_TIMEZONE": "Asia/Seoul",
            "KIC_POSTS_PER_ACCOUNT": 12,
            "KIC_WEB_APP_ID": "936619743392459",
            "KIC_GRAPH_API_VERSION": "v21.0",
            "KIC_TAG_MAX_PAGES": 2,
        },
    )
    return InstagramSpider.from_crawler(crawler, usernames="jiwoo.glow,other", date="2026-11-01")


def response(url, status=200, body=b"", headers=None):
    return TextResponse(url, status=status, body=body, headers=headers or {}, encoding="utf-8", request=Request(url))


def run(callback, resp, **kwargs):
    out, error = [], None
    try:
        for thing in callback(resp, **kwargs):
            out.append(thing)
    except CloseSpider as exc:
        error = exc
    return out, error


def test_spider_reads_a_profile_into_one_item(spider):
    body = (SAVED / "web_profile_mixed.json").read_bytes()
    (item,), stopped = run(spider.parse_web_profile, response("http://ig.test/p", body=body), username="jiwoo.glow")
    assert isinstance(item, AccountItem) and stopped is None
    assert (item["status"], len(item["posts"]), item["profile"]["followers"]) == ("ok", 6, 48213)
    assert spider.as_of.isoformat() == "2026-11-01"


@pytest.mark.parametrize(
    "status,headers,body,outcome",
    [
        (302, {"Location": "http://ig.test/accounts/login/?next=/x/"}, b"", "blocked"),
        (400, {}, (SAVED / "web_checkpoint.json").read_bytes(), "blocked"),
        (404, {}, b"<html>Sorry, this page isn't available.</html>", "not_found"),
        (200, {}, (SAVED / "web_profile_null_user.json").read_bytes(), "not_found"),
        (429, {"Retry-After": "60"}, b'{"message": "Please wait", "status": "fail"}', "rate_limited"),
        (503, {}, b"", "error"),
        (200, {}, b'{"data": {"user": {"id": "1", "edge_followed', "error"),
    ],
)
def test_spider_gives_every_answer_an_outcome(spider, status, headers, body, outcome):
    items, stopped = run(
        spider.parse_web_profile, response("http://ig.test/p", status, body, headers), username="other"
    )
    assert [i["status"] for i in items] == [outcome]
    assert (stopped is not None) == (outcome == "blocked")  # a login wall stops the crawl
    if outcome == "error" and status == 200:
        assert items[0]["detail"].startswith('{"data"')  # the bad answer is kept for diagnosis
        assert "malformed JSON" in items[0]["reason"]


def test_spider_discovers_accounts_from_a_tag_page_once(spider):
    body = (SAVED / "tag_web_info.json").read_bytes()
    out, _ = run(spider.parse_tag, response("http://ig.test/t", body=body), tag="뷰티", page=1)
    found = [o["username"] for o in out if isinstance(o, DiscoveredAccountItem)]
    requests = [o for o in out if isinstance(o, Request)]
    assert found == ["minji.lip", "yuna.skin", "haru.cosme"]
    assert len(requests) == 4  # three profiles and the next tag page
    assert "max_id=QVFEbW9yZQ" in requests[-1].url
    again, _ = run(spider.parse_tag, response("http://ig.test/t", body=body), tag="뷰티", page=2)
    assert not [o for o in again if isinstance(o, Request)]  # known accounts, last page allowed


def test_the_crawl_freezes_its_startup_heap_once_the_engine_has_started():
    """Objects alive at the start (imported modules, spider, pipelines) leave the garbage
    collector's reach, so that its full collections stop walking them over and over; enabled in
    the project's settings, so every crawl (kic's, the flows', a hand-run one) has it."""
    import gc

    from scrapy import signals
    from scrapy.utils.project import get_project_settings

    from scrapers.extensions import FrozenStartupHeap

    assert "scrapers.extensions.FrozenStartupHeap" in get_project_settings().getdict("EXTENSIONS")
    crawler = get_crawler(InstagramSpider, {"EXTENSIONS": {}, "MEMUSAGE_ENABLED": False})
    # Held, as Scrapy holds its extensions: signals keep weak references to their receivers.
    extension = FrozenStartupHeap.from_crawler(crawler)
    gc.unfreeze()
    try:
        assert gc.get_freeze_count() == 0
        crawler.signals.send_catch_log(signals.engine_started)
        assert gc.get_freeze_count() > 0, extension
    finally:
        gc.unfreeze()
