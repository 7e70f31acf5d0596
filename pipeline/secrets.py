"""Secrets: from the environment (via settings), else from a Prefect Secret block.

Values are returned as plain strings only at the point of use; they are never logged,
never put in Scrapy settings and never written to the warehouse.
"""

from __future__ import annotations

from pipeline.settings import Settings
from warehouse.errors import KicError


def graph_access_token(settings: Settings, shard: str | None = None) -> str | None:
    """The Graph API token: KIC_GRAPH_ACCESS_TOKEN (each worker's own environment), else the
    Prefect Secret block named in settings, where `{shard}` stands for the shard's name
    (e.g. `graph-token-{shard}`: one token per shard, since the API's limits are per token)."""
    if settings.graph_access_token is not None:
        return settings.graph_access_token.get_secret_value()
    if settings.graph_access_token_block:
        from prefect.blocks.system import Secret

        name = settings.graph_access_token_block.replace("{shard}", shard or "shard-001-of-001")
        try:
            return str(Secret.load(name).get())
        except ValueError as exc:
            raise KicError(f"Prefect Secret block {name!r} could not be read: {exc}") from None
    return None
