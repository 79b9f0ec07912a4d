"""Account routes for tenants, and the operator routes under /v1/admin (admin token)."""

from __future__ import annotations

import flask

from lote import ids
from lote.admin.auth import require_admin
from lote.api.http import authenticated, json_body, parse, respond
from lote.billing import controls
from lote.billing.schemas import SpendControlsUpdate
from lote.dispatch import views as dispatch_views
from lote.idempotency import check_header
from lote.services import Services
from lote.tenants import accounts
from lote.tenants import service as tenants
from lote.tenants.schemas import CreditGrant, KeyCreate, PlanUpdate, TenantCreate
from lote.usage import service as usage
from lote.usage.schemas import RangeQuery, UsageQuery
from lote.web import current_services


def _admin() -> Services:
    services = current_services()
    require_admin(services.settings, flask.request.headers.get("Authorization"))
    return services


def register(app: flask.Flask) -> None:
    """Attach the routes to the `api` app."""

    @app.get("/v1/account")
    def account() -> flask.Response:
        services, caller = authenticated()
        return respond(200, accounts.account(services, caller))

    @app.get("/v1/account/ledger")
    def account_ledger() -> flask.Response:
        services, caller = authenticated()
        return respond(
            200, accounts.ledger_page(services, caller.tenant_id, flask.request.args.get("page_token"))
        )

    @app.get("/v1/account/usage")
    def account_usage() -> flask.Response:
        services, caller = authenticated()
        query = parse(UsageQuery, flask.request.args.to_dict())
        report = usage.report(services, caller.tenant_id, query)
        if query.format == "csv" or "text/csv" in flask.request.headers.get("Accept", ""):
            return flask.Response(usage.as_csv(report), mimetype="text/csv")
        return respond(200, report.model_dump(mode="json", by_alias=True))

    @app.get("/v1/account/spend-controls")
    def account_spend_controls() -> flask.Response:
        services, caller = authenticated()
        # Nulls shown: a cap that is not set is part of the answer.
        return respond(200, controls.show(services, caller.require_key().tenant_id).model_dump(mode="json"))

    @app.patch("/v1/account/spend-controls")
    def account_set_spend_controls() -> flask.Response:
        services, caller = authenticated()
        req = parse(SpendControlsUpdate, json_body(flask.request))
        return respond(
            200, controls.update(services, caller.require_key().tenant_id, req).model_dump(mode="json")
        )

    @app.get("/v1/admin/scheduler")
    def admin_scheduler() -> flask.Response:
        return respond(200, dispatch_views.scheduler(_admin()))

    @app.post("/v1/admin/tenants")
    def admin_create_tenant() -> flask.Response:
        services = _admin()
        req = parse(TenantCreate, json_body(flask.request))
        return respond(201, tenants.create_tenant(services, req.name, req.credits, req.limits()))

    @app.get("/v1/admin/tenants/<tenant_id>")
    def admin_show_tenant(tenant_id: str) -> flask.Response:
        return respond(200, accounts.show_tenant(_admin(), tenant_id))

    @app.get("/v1/admin/tenants/<tenant_id>/economics")
    def admin_tenant_economics(tenant_id: str) -> flask.Response:
        services = _admin()
        report = accounts.economics(services, tenant_id, parse(RangeQuery, flask.request.args.to_dict()))
        return respond(200, report.model_dump(mode="json", by_alias=True))

    @app.patch("/v1/admin/tenants/<tenant_id>")
    def admin_set_plan(tenant_id: str) -> flask.Response:
        services = _admin()
        req = parse(PlanUpdate, json_body(flask.request))
        return respond(200, accounts.set_plan(services, tenant_id, req))

    @app.post("/v1/admin/tenants/<tenant_id>/credits")
    def admin_grant(tenant_id: str) -> flask.Response:
        services = _admin()
        req = parse(CreditGrant, json_body(flask.request))
        key = check_header(flask.request.headers.get("Idempotency-Key"))
        grant_id = ids.sha256_hex(f"{tenant_id}:{key}")[:32] if key else None
        return respond(201, accounts.grant(services, tenant_id, req.credits, req.reason, grant_id))

    @app.post("/v1/admin/tenants/<tenant_id>/keys")
    def admin_create_key(tenant_id: str) -> flask.Response:
        services = _admin()
        req = parse(KeyCreate, json_body(flask.request))
        return respond(201, accounts.create_key(services, tenant_id, req.name))

    @app.get("/v1/admin/tenants/<tenant_id>/keys")
    def admin_list_keys(tenant_id: str) -> flask.Response:
        return respond(
            200, {"keys": [k.model_dump(mode="json") for k in accounts.show_tenant(_admin(), tenant_id).keys]}
        )

    @app.post("/v1/admin/tenants/<tenant_id>/keys/<key_id>/revoke")
    def admin_revoke_key(tenant_id: str, key_id: str) -> flask.Response:
        return respond(200, accounts.revoke_key(_admin(), tenant_id, key_id))
