"""Reading Instagram's answers (pure functions: JSON in, rows and outcomes out).

Two formats: the web client's `web_profile_info` / `tags/web_info` JSON, and the official
Graph API's Business Discovery. Both come out as the same profile and post rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from warehouse.vocabulary import AccountStatus

# Graph API error codes (error.code), not HTTP statuses, say what went wrong. Throttling
# (Graph API "Rate Limits"): 4 app, 17 user, 32 Pages, 613 custom; the business-use-case
# limits 80000 Ads Insights, 80001 Pages, 80002 Instagram, 80003 Custom Audience, 80004 Ads
# Management, 80005 LeadGen, 80006 Messenger, 80008 WhatsApp, 80009 and 80014 Catalog.
GRAPH_RATE_LIMIT_CODES = {4, 17, 32, 613, 80000, 80001, 80002, 80003, 80004, 80005, 80006, 80008, 80009, 80014}
GRAPH_UNKNOWN_USER_CODE = 110
GRAPH_INVALID_TOKEN_CODE = 190
# The web client's answers when it wants a login first.
WEB_BLOCK_MESSAGES = {"checkpoint_required", "challenge_required", "login_required", "feedback_required"}
BLOCK_PATHS = ("/accounts/login", "/challenge", "/checkpoint")
DETAIL_LIMIT = 16_000  # characters of a bad response kept for diagnosis


@dataclass
class Outcome:
    """What happened to one account, with its rows when it could be read."""

    status: AccountStatus
    reason: str | None = None
    http_status: int | None = None
    detail: str | None = None
    profile: dict[str, Any] | None = None
    posts: list[dict[str, Any]] = field(default_factory=list)


class BadJson(ValueError):
    """The body claims to be JSON but is not."""


def load_json(body: bytes | str) -> Any | None:
    """The JSON in a body; None when the body is not JSON at all (an HTML page, say)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    stripped = text.lstrip()
    if not stripped.startswith(("{", "[")):
        return None
    try:
        return json.loads(stripped)
    except json.JSONDecodeError as exc:
        raise BadJson(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


def count(edge: Any) -> int | None:
    if isinstance(edge, dict) and isinstance(edge.get("count"), int):
        return edge["count"]
    return None


def known(value: int | None) -> int | None:
    """Instagram reports a hidden count as -1: unknown, not a number."""
    return None if value is None or value < 0 else value


def web_kind(typename: str, product_type: str | None) -> str:
    """image (single images, carousels) | video (other videos, reels) | igtv."""
    name = typename.removeprefix("XDT")
    if name in ("GraphImage", "GraphSidecar"):
        return "image"
    return "igtv" if product_type == "igtv" else "video"


def web_post(node: dict[str, Any], hide_likes: bool) -> dict[str, Any]:
    typename = node.get("__typename", "")
    likes = count(node.get("edge_media_preview_like"))
    if likes is None:
        likes = count(node.get("edge_liked_by"))
    taken_at = node.get("taken_at_timestamp")
    return {
        "post_id": str(node["id"]),
        "shortcode": node.get("shortcode"),
        "kind": web_kind(typename, node.get("product_type")),
        "media_type": typename,
        "product_type": node.get("product_type"),
        "likes": None if hide_likes else known(likes),
        "comments": known(count(node.get("edge_media_to_comment"))),
        "views": known(node.get("video_view_count")),
        "taken_at": datetime.fromtimestamp(taken_at, UTC) if taken_at else None,
        "is_pinned": bool(node.get("pinned_for_users")),
    }


def web_block_message(payload: Any) -> str | None:
    if isinstance(payload, dict) and payload.get("message") in WEB_BLOCK_MESSAGES:
        return payload["message"]
    return None


def parse_web_profile(payload: Any, http_status: int = 200) -> Outcome:
    """An account's outcome from a web_profile_info answer (already decoded JSON)."""
    if message := web_block_message(payload):
        return Outcome(AccountStatus.BLOCKED, message, http_status)
    user = payload.get("data", {}).get("user") if isinstance(payload, dict) else None
    if not isinstance(user, dict):
        return Outcome(AccountStatus.NOT_FOUND, "data.user is null", http_status)
    hide_likes = bool(user.get("hide_like_and_view_counts"))
    profile = {
        "user_id": str(user.get("id")) if user.get("id") is not None else None,
        "followers": count(user.get("edge_followed_by")),
        "follows": count(user.get("edge_follow")),
        "media_count": count(user.get("edge_owner_to_timeline_media")),
        "is_private": bool(user.get("is_private")),
        "is_verified": bool(user.get("is_verified")),
        "is_business": bool(user.get("is_business_account")),
        "hide_like_counts": hide_likes,
    }
    if profile["is_private"]:
        return Outcome(AccountStatus.PRIVATE, None, http_status, profile=profile)
    edges = (user.get("edge_owner_to_timeline_media") or {}).get("edges") or []
    posts = unique_posts(web_post(edge["node"], hide_likes) for edge in edges if edge.get("node"))
    return Outcome(AccountStatus.OK, None, http_status, profile=profile, posts=posts)


def unique_posts(posts) -> list[dict[str, Any]]:
    """Each post once (a pinned post can also appear in the grid)."""
    seen, result = set(), []
    for post in posts:
        if post["post_id"] not in seen:
            seen.add(post["post_id"])
            result.append(post)
    return result


def parse_tag_page(payload: Any) -> tuple[list[str], str | None]:
    """Usernames posting in a tags/web_info answer, and the next page's max_id (or None)."""
    data = payload.get("data", {}) if isinstance(payload, dict) else {}
    usernames, next_max_id = [], None
    for section_name in ("top", "recent"):
        section = data.get(section_name) or {}
        for block in section.get("sections") or []:
            for media in (block.get("layout_content") or {}).get("medias") or []:
                username = ((media.get("media") or {}).get("user") or {}).get("username")
                if username and username not in usernames:
                    usernames.append(username)
        if section_name == "recent" and section.get("more_available") and section.get("next_max_id"):
            next_max_id = str(section["next_max_id"])
    return usernames, next_max_id


# --- Graph API ----------------------------------------------------------------------


def graph_kind(media_type: str | None, product_type: str | None) -> str:
    if media_type in ("IMAGE", "CAROUSEL_ALBUM"):
        return "image"
    return "igtv" if product_type == "IGTV" else "video"


def graph_post(media: dict[str, Any]) -> dict[str, Any]:
    timestamp = media.get("timestamp")
    return {
        "post_id": str(media["id"]),
        "shortcode": None,
        "kind": graph_kind(media.get("media_type"), media.get("media_product_type")),
        "media_type": media.get("media_type"),
        "product_type": media.get("media_product_type"),
        # like_count is left out of the answer when the owner hides it.
        "likes": known(media.get("like_count")),
        "comments": known(media.get("comments_count")),
        "views": None,
        "taken_at": datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S%z") if timestamp else None,
        "is_pinned": False,
    }


def graph_error(payload: Any, http_status: int) -> Outcome | None:
    """The outcome a Graph API error answer means, keyed on error.code; None if no error."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return None
    code = error.get("code")
    reason = f"graph error {code}: {error.get('message', '')}".strip()
    if code in GRAPH_RATE_LIMIT_CODES:
        return Outcome(AccountStatus.RATE_LIMITED, reason, http_status)
    if code == GRAPH_UNKNOWN_USER_CODE:
        return Outcome(AccountStatus.NOT_FOUND, reason, http_status)
    if code == GRAPH_INVALID_TOKEN_CODE:
        return Outcome(AccountStatus.BLOCKED, reason, http_status)
    return Outcome(AccountStatus.ERROR, reason, http_status)


def parse_graph_page(payload: Any, http_status: int = 200) -> tuple[Outcome, str | None]:
    """One Business Discovery answer: the outcome so far and the next media cursor."""
    if failed := graph_error(payload, http_status):
        return failed, None
    discovery = payload.get("business_discovery") if isinstance(payload, dict) else None
    if not isinstance(discovery, dict):
        return Outcome(AccountStatus.ERROR, "answer has no business_discovery", http_status), None
    profile = {
        "user_id": str(discovery["id"]) if discovery.get("id") is not None else None,
        "followers": discovery.get("followers_count"),
        "follows": discovery.get("follows_count"),
        "media_count": discovery.get("media_count"),
        "is_private": False,  # Business Discovery only answers for public professional accounts
        "is_verified": None,
        "is_business": True,
        "hide_like_counts": None,
    }
    media = discovery.get("media") or {}
    posts = [graph_post(m) for m in media.get("data") or []]
    paging = media.get("paging") or {}
    after = (paging.get("cursors") or {}).get("after") if paging.get("next") else None
    return Outcome(AccountStatus.OK, None, http_status, profile=profile, posts=posts), after
