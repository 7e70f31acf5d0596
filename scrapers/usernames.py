"""Instagram usernames, as people write them: a plain name, '@name' or a profile URL."""

from __future__ import annotations

import re

# A username as stored (the contract of raw.profiles states this pattern), matched in any
# case: people write names with capitals, which normalize_account lowers.
USERNAME = re.compile(r"^[a-z0-9._]{1,30}$", re.IGNORECASE | re.ASCII)
PROFILE_URL = re.compile(r"^(?:https?://)?(?:www\.)?instagram\.com/([^/?#]+)/?(?:[?#].*)?$", re.I)


def normalize_account(value: str) -> str | None:
    """The username in a profile URL, '@name' or plain name; None if it is none of these."""
    text = value.strip()
    match = PROFILE_URL.match(text)
    name = match.group(1) if match else text.removeprefix("@")
    return name.lower() if USERNAME.match(name) else None
