"""A local fake Instagram: the synthetic cohort served in Instagram's own answer formats.

Serves, on 127.0.0.1:
  GET /api/v1/users/web_profile_info/?username=NAME   the web client's profile JSON
  GET /api/v1/tags/web_info/?tag_name=TAG[&max_id=M]  hashtag pages
  GET /{version}/{ig-user-id}?fields=business_discovery.username(NAME){...}   Graph API
  GET /_sandbox/accounts            the usernames it knows (JSON list)
  GET /_sandbox/usage               calls admitted and throttled, per token and per client IP
  POST /_sandbox/date?date=D        serve another day from now on
Answers are a function of the seed and the served date; faults come from settings. Quotas
apply per Graph token and per client IP, as the real sources apply them (sandbox.quotas).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from collections import Counter
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import numpy as np

from sandbox.quotas import Admission, RollingQuota
from sandbox.settings import SandboxSettings
from sandbox.synthetic import Account, Population, Post, Profile

WEB_PROFILE_PATH = "/api/v1/users/web_profile_info/"
WEB_TAG_PATH = "/api/v1/tags/web_info/"
GRAPH_PATH = re.compile(r"^/(v\d+\.\d+)/(\d+)$")
DISCOVERY_USERNAME = re.compile(r"business_discovery\.username\(([^)]+)\)")
MEDIA_AFTER = re.compile(r"media\.after\(([^)]*)\)")


def cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def offset_of(token: str | None) -> int:
    if not token:
        return 0
    try:
        return int(base64.urlsafe_b64decode(token.encode()).decode().removeprefix("offset:"))
    except (ValueError, UnicodeDecodeError):
        return 0


# --- the two answer formats (what the spider's parsers read) --------------------------


def web_node(post: Post, account: Account) -> dict:
    # Newer answers prefix the type names with "XDT"; a third of the accounts do.
    prefix = "XDT" if account.index % 3 == 0 else ""
    likes = -1 if account.hides_likes else post.likes
    node = {
        "__typename": prefix + post.typename,
        "id": post.post_id,
        "shortcode": post.shortcode,
        "is_video": post.kind != "image",
        "product_type": post.product_type,
        "edge_media_preview_like": {"count": likes},
        "edge_liked_by": {"count": likes},
        "edge_media_to_comment": {"count": post.comments},
        "taken_at_timestamp": int(post.taken_at.timestamp()),
        "pinned_for_users": [{"id": account.user_id, "username": account.username}] if post.is_pinned else [],
        "owner": {"id": account.user_id, "username": account.username},
    }
    if post.views is not None:
        node["video_view_count"] = -1 if account.hides_likes else post.views
    return node


def web_profile(profile: Profile, private: bool) -> dict:
    account = profile.account
    edges = [] if private else [{"node": web_node(p, account)} for p in profile.posts]
    return {
        "data": {
            "user": {
                "id": account.user_id,
                "username": account.username,
                "full_name": account.username.replace(".", " ").replace("_", " ").title(),
                "biography": "K-beauty, skincare and makeup",
                "edge_followed_by": {"count": profile.followers},
                "edge_follow": {"count": profile.follows},
                "is_private": private,
                "is_verified": account.is_verified,
                "is_business_account": account.is_business,
                "hide_like_and_view_counts": account.hides_likes,
                "edge_owner_to_timeline_media": {
                    "count": profile.media_count,
                    "page_info": {"has_next_page": profile.media_count > len(edges), "end_cursor": cursor(len(edges))},
                    "edges": edges,
                },
            }
        },
        "status": "ok",
    }


GRAPH_MEDIA_TYPE = {"image": "IMAGE", "video": "VIDEO", "igtv": "VIDEO"}


def graph_media(post: Post, account: Account) -> dict:
    media = {
        "id": post.post_id,
        "comments_count": post.comments,
        "media_type": "CAROUSEL_ALBUM" if post.is_carousel else GRAPH_MEDIA_TYPE[post.kind],
        "media_product_type": {"image": "FEED", "video": "REELS" if post.is_reel else "FEED", "igtv": "IGTV"}[
            post.kind
        ],
        "timestamp": post.taken_at.strftime("%Y-%m-%dT%H:%M:%S+0000"),
    }
    if not account.hides_likes:  # the Graph API leaves like_count out when it is hidden
        media["like_count"] = post.likes
    return media


def graph_discovery(profile: Profile, after: str | None, page_size: int, base: str, path: str) -> dict:
    account = profile.account
    start = offset_of(after)
    page = profile.posts[start : start + page_size]
    media: dict = {"data": [graph_media(p, account) for p in page]}
    end = start + len(page)
    if end < len(profile.posts):
        media["paging"] = {
            "cursors": {"before": cursor(start), "after": cursor(end)},
            "next": f"{base}{path}?after={cursor(end)}",
        }
    return {
        "business_discovery": {
            "id": account.user_id,
            "username": account.username,
            "followers_count": profile.followers,
            "follows_count": profile.follows,
            "media_count": profile.media_count,
            "media": media,
        },
        "id": "17841400000000000",
    }


def graph_error(code: int, message: str, subcode: int | None = None, transient: bool = False) -> dict:
    error = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "sandbox"}
    if subcode:
        error["error_subcode"] = subcode
    if transient:
        error["is_transient"] = True
    return {"error": error}


# The Graph API's business-use-case throttle of Instagram calls (Rate Limits, "BUC" codes).
INSTAGRAM_THROTTLE = (80002, "There have been too many calls to this Instagram account. Wait a bit and try again.")
WEB_THROTTLE_BODY = {
    "message": "Please wait a few minutes before you try again.",
    "require_login": True,
    "status": "fail",
}


def graph_usage_headers(admission: Admission, business_id: str) -> dict:
    """The usage headers of a Graph API answer: the app's (X-App-Usage) and the Instagram
    business use case's (X-Business-Use-Case-Usage), with the time to regain access in minutes.
    The sandbox's calls all cost alike: CPU and time shares follow the call count."""
    usage = {"call_count": admission.percent, "total_cputime": admission.percent, "total_time": admission.percent}
    business = {**usage, "type": "instagram", "estimated_time_to_regain_access": admission.regain_minutes}
    return {
        "X-App-Usage": json.dumps(usage),
        "X-Business-Use-Case-Usage": json.dumps({business_id: [business]}),
    }


# --- the server ------------------------------------------------------------------------


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 drops connections under a crawler's concurrency, and each
    # dropped SYN costs the client a second.
    request_queue_size = 256


class Sandbox:
    """The fake Instagram: `with Sandbox(settings) as sandbox: sandbox.url`."""

    def __init__(self, settings: SandboxSettings | None = None):
        self.config = settings or SandboxSettings()
        self.timezone = ZoneInfo(self.config.timezone)
        self.population = Population(self.config.influencers, self.config.seed)
        self.accounts = self.population.by_username()
        self.served_date = self.config.date
        self.requests: Counter[str] = Counter()  # per account, for "N faults then success"
        self.request_number = 0
        self.lock = threading.Lock()
        self.graph_quota = RollingQuota(self.config.graph_quota.calls, self.config.graph_quota.window_seconds)
        self.web_quota = RollingQuota(self.config.web_quota.calls, self.config.web_quota.window_seconds)
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    # lifecycle
    def start(self) -> Sandbox:
        self.server = SandboxServer((self.config.host, self.config.port), self.handler())
        self.thread = threading.Thread(target=self.server.serve_forever, name="sandbox", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def client_quotas(self) -> dict[str, float]:
        """Its quotas as a crawler's settings (`quotas.*`) name them: what to pace a crawl of it by."""
        graph, web = self.config.graph_quota, self.config.web_quota
        return {
            "graph_calls": graph.calls,
            "graph_window_seconds": graph.window_seconds,
            "web_calls": web.calls,
            "web_window_seconds": web.window_seconds,
        }

    def today(self) -> date:
        return self.served_date or datetime.now(self.timezone).date()

    def profile(self, account: Account) -> Profile:
        """The account as of the served day; on the real today (or a day to come), as of now:
        never a post published after the moment it is fetched."""
        now = datetime.now(self.timezone)
        return self.population.profile(account, self.today(), now=now if self.today() >= now.date() else None)

    def handler(self):
        sandbox = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                status, headers, body = sandbox.answer("GET", self.path, self.headers, self.client_address[0])
                self.reply(status, headers, body)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                status, headers, body = sandbox.answer("POST", self.path, self.headers, self.client_address[0])
                self.reply(status, headers, body)

            def reply(self, status, headers, body: bytes):
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format, *args):  # quiet: the crawler logs requests
                pass

        return Handler

    # routing
    def answer(self, method: str, raw_path: str, headers, client: str = "127.0.0.1") -> tuple[int, dict, bytes]:
        url = urlsplit(raw_path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if url.path == "/_sandbox/accounts":
            return json_answer(200, [a.username for a in self.population.accounts])
        if url.path == "/_sandbox/usage":
            return json_answer(200, {"graph": self.graph_quota.report(), "web": self.web_quota.report()})
        if url.path == "/_sandbox/date" and method == "POST":
            try:
                self.served_date = date.fromisoformat(query.get("date", ""))
            except ValueError:
                return json_answer(400, {"error": "date must be YYYY-MM-DD"})
            return json_answer(200, {"date": self.served_date.isoformat()})
        if method != "GET":
            return json_answer(405, {"error": "method not allowed"})
        if url.path in (WEB_PROFILE_PATH, WEB_TAG_PATH):
            if not headers.get("X-IG-App-ID"):
                return json_answer(400, {"message": "useragent mismatch", "status": "fail"})
            if not self.web_quota.admit(client).admitted:  # per IP; no usage headers, no stated wait
                return json_answer(429, WEB_THROTTLE_BODY)
            if url.path == WEB_PROFILE_PATH:
                return self.web_profile_info(query.get("username", ""))
            return self.tag_page(query.get("tag_name", ""), query.get("max_id"))
        if match := GRAPH_PATH.match(url.path):
            return self.business_discovery(url.path, match.group(2), query, headers)
        return html_answer(404, "Page Not Found")

    def random_fault(self, username: str, graph: bool = False) -> tuple[int, dict, bytes] | None:
        """Faults by setting: named accounts first, then seeded random ones."""
        faults = self.config.faults
        with self.lock:
            self.request_number += 1
            self.requests[username] += 1
            seen = self.requests[username]
            rng = np.random.default_rng([self.population.seed, self.request_number])
            draws = rng.random(4)
        if seen <= faults.throttled.get(username, 0) or draws[0] < faults.rate_limit_rate:
            if graph:  # the Graph API says so in its error code, with a 4xx status
                return json_answer(403, graph_error(4, "Application request limit reached"))
            return rate_limited(faults.retry_after_seconds)
        if seen <= faults.failing.get(username, 0) or draws[1] < faults.server_error_rate:
            return json_answer(503, {"message": "Oops, an error occurred.", "status": "fail"})
        if username in faults.slow or draws[2] < faults.slow_rate:
            time.sleep(faults.slow_seconds)
        if username in faults.malformed or draws[3] < faults.malformed_rate:
            return (
                200,
                {"Content-Type": "application/json; charset=utf-8"},
                b'{"data": {"user": {"id": "1", "edge_followed_by": {"cou',
            )
        return None

    def web_profile_info(self, username: str) -> tuple[int, dict, bytes]:
        if fault := self.random_fault(username):
            return fault
        faults = self.config.faults
        if username in faults.login_walled:
            return 302, {"Location": "/accounts/login/?next=/" + username + "/"}, b""
        if username in faults.checkpoint:
            return json_answer(
                400, {"message": "checkpoint_required", "checkpoint_url": "/challenge/", "lock": True, "status": "fail"}
            )
        account = self.accounts.get(username)
        if account is None:
            return html_answer(404, "Sorry, this page isn't available.")
        if username in faults.deleted:
            return json_answer(200, {"data": {"user": None}, "status": "ok"})
        private = account.is_private or username in faults.private
        answer = web_profile(self.profile(account), private)
        if username in faults.corrupt:
            user = answer["data"]["user"]
            user["edge_followed_by"]["count"] = -42
            for edge in user["edge_owner_to_timeline_media"]["edges"][:1]:
                edge["node"]["taken_at_timestamp"] = 4102444800  # 2100-01-01
        return json_answer(200, answer)

    def tag_page(self, tag: str, max_id: str | None) -> tuple[int, dict, bytes]:
        if fault := self.random_fault(f"#{tag}"):
            return fault
        accounts = self.population.accounts if tag == self.config.tag else ()
        start, size = offset_of(max_id), self.config.tag_page_size
        page = accounts[start : start + size]
        more = start + size < len(accounts)

        def section(chunk):
            return [
                {
                    "layout_type": "media_grid",
                    "layout_content": {
                        "medias": [
                            {"media": {"id": f"{a.user_id}_tag", "user": {"pk": a.user_id, "username": a.username}}}
                            for a in chunk
                        ]
                    },
                }
            ]

        top = section(page[:9]) if start == 0 else []
        data = {
            "name": tag,
            "top": {"sections": top, "more_available": False},
            "recent": {
                "sections": section(page),
                "more_available": more,
                "next_max_id": cursor(start + size) if more else None,
            },
        }
        return json_answer(200, {"data": data, "status": "ok"})

    def business_discovery(self, path: str, business_id: str, query: dict, headers) -> tuple[int, dict, bytes]:
        token = (headers.get("Authorization") or "").removeprefix("Bearer ").strip() or query.get("access_token")
        expected = self.config.graph_access_token
        if not token or (expected is not None and token != expected.get_secret_value()):
            return json_answer(400, graph_error(190, "Invalid OAuth access token - Cannot parse access token"))
        admission = self.graph_quota.admit("token " + hashlib.sha256(token.encode()).hexdigest()[:8])
        usage = graph_usage_headers(admission, business_id)
        if not admission.admitted:
            status, answer_headers, body = json_answer(400, graph_error(*INSTAGRAM_THROTTLE, transient=True))
        else:
            status, answer_headers, body = self.discovery_answer(path, query, headers)
        return status, {**answer_headers, **usage}, body

    def discovery_answer(self, path: str, query: dict, headers) -> tuple[int, dict, bytes]:
        fields = query.get("fields", "")
        match = DISCOVERY_USERNAME.search(fields)
        if not match:
            return json_answer(400, graph_error(100, "(#100) Missing business_discovery field"))
        username = match.group(1)
        if fault := self.random_fault(username, graph=True):
            return fault
        faults = self.config.faults
        account = self.accounts.get(username)
        if account is None or account.is_private or username in faults.deleted or username in faults.private:
            return json_answer(400, graph_error(110, "Invalid user id", 2207013))
        after = MEDIA_AFTER.search(fields)
        profile = self.profile(account)
        base = f"http://{headers.get('Host', 'sandbox')}"
        return json_answer(
            200, graph_discovery(profile, after.group(1) if after else None, self.config.graph_page_size, base, path)
        )


def json_answer(status: int, payload) -> tuple[int, dict, bytes]:
    return status, {"Content-Type": "application/json; charset=utf-8"}, json.dumps(payload, ensure_ascii=False).encode()


def html_answer(status: int, text: str) -> tuple[int, dict, bytes]:
    body = f"<!DOCTYPE html><html><head><title>Instagram</title></head><body><h2>{text}</h2></body></html>"
    return status, {"Content-Type": "text/html; charset=utf-8"}, body.encode()


def rate_limited(retry_after: int) -> tuple[int, dict, bytes]:
    status, headers, body = json_answer(
        429, {"message": "Please wait a few minutes before you try again.", "status": "fail"}
    )
    return status, {**headers, "Retry-After": str(retry_after)}, body
