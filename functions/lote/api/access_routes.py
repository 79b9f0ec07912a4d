"""Client tokens: minted and revoked by a tenant's server with its API key."""

from __future__ import annotations

import flask

from lote.access import service as access
from lote.access.schemas import ClientTokenRequest
from lote.api.http import authenticated, json_body, parse, respond


def register(app: flask.Flask) -> None:
    """Attach the routes to the `api` app."""

    @app.post("/v1/client-tokens")
    def create_client_token() -> flask.Response:
        services, caller = authenticated()
        req = parse(ClientTokenRequest, json_body(flask.request))
        return respond(201, access.mint(services, caller, req), {"Cache-Control": "no-store"})

    @app.post("/v1/client-tokens/<token_id>/revoke")
    def revoke_client_token(token_id: str) -> flask.Response:
        services, caller = authenticated()
        return respond(200, access.revoke(services, caller, token_id))
