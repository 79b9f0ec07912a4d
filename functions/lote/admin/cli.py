"""`lote-admin`: operator commands; each prints exactly one JSON object on stdout."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from lote import timeutil
from lote.access import service as access
from lote.access.schemas import ClientTokenRequest
from lote.audit import scan
from lote.billing import reconcile
from lote.errors import LoteError
from lote.services import Services
from lote.settings import Settings
from lote.tenants import accounts
from lote.tenants import service as tenants
from lote.tenants.schemas import CreditGrant, KeyCreate, PlanUpdate, TenantCreate
from lote.usage.schemas import RangeQuery
from lote.validation import parse

ENV_FILE = Path(".lote") / "local.env"
END_USER = ("generations:create", "generations:read", "uploads:create")  # the end-user page's scopes


def find_env_file(start: Path) -> Path | None:
    """The nearest .lote/local.env at or above `start` (written by `make dev`)."""
    for folder in (start, *start.parents):
        if (folder / ENV_FILE).is_file():
            return folder / ENV_FILE
    return None


def load_settings() -> Settings:
    """Settings from the environment, falling back to .lote/local.env for what it does not set."""
    env_file = find_env_file(Path.cwd())
    return Settings(_env_file=env_file) if env_file else Settings()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lote-admin", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-tenant", help="create a tenant and its first API key")
    create.add_argument("--name", required=True)
    create.add_argument("--credits", type=int, default=0)
    create.add_argument("--max-in-flight", type=int)
    create.add_argument("--requests-per-minute", type=int)
    grant = commands.add_parser("grant-credits", help="add credits through the ledger")
    grant.add_argument("--tenant", required=True)
    grant.add_argument("--credits", type=int, required=True)
    grant.add_argument("--reason", required=True)
    key = commands.add_parser("create-key", help="a new named API key (shown once)")
    key.add_argument("--tenant", required=True)
    key.add_argument("--name", required=True)
    revoke = commands.add_parser("revoke-key", help="revoke an API key by its key id")
    revoke.add_argument("--tenant", required=True)
    revoke.add_argument("--key-id", required=True)
    plan = commands.add_parser("set-plan", help="change a tenant's plan or limits")
    plan.add_argument("--tenant", required=True)
    plan.add_argument("--plan")
    plan.add_argument("--max-in-flight", type=int)
    plan.add_argument("--requests-per-minute", type=int)
    plan.add_argument("--subject-requests-per-minute", type=int)
    plan.add_argument("--allowed-origin", action="append", dest="allowed_origins", metavar="ORIGIN",
                      help="a web origin whose pages may use client tokens (repeatable)")  # fmt: skip
    plan.add_argument("--clear-allowed-origins", action="store_true")
    token = commands.add_parser("client-token", help="mint a client token and print the web app's link")
    token.add_argument("--tenant", required=True)
    token.add_argument("--subject", default="demo-user")
    token.add_argument(
        "--scope", action="append", dest="scopes", help=f"repeat; default {' '.join(END_USER)}"
    )
    token.add_argument("--ttl-s", type=int, default=3600)
    token.add_argument("--max-images", type=int)
    show = commands.add_parser("show-tenant", help="balance, plan, limits and keys")
    show.add_argument("--tenant", required=True)
    economics = commands.add_parser(
        "economics", help="a tenant's credits sold and charged against its images' model spend"
    )
    economics.add_argument("--tenant", required=True)
    economics.add_argument("--days", type=int, default=30, help="the last N days (default 30)")
    audit = commands.add_parser(
        "audit", help="check every invariant; exits 1 and lists the violations when one is broken"
    )
    audit.add_argument("--tenant", help="only this tenant (default: every tenant)")
    settle = commands.add_parser(
        "reconcile",
        help="settle recent Stripe sessions, refunds and disputes the ledger lacks (safe to repeat)",
    )
    settle.add_argument("--days", type=int, help="how far back (default LOTE_STRIPE_RECONCILE_LOOKBACK_S)")
    return parser


def run(argv: list[str], services: Services) -> dict[str, Any]:
    """Execute one command and return its JSON result."""
    args = _parser().parse_args(argv)
    if args.command == "create-tenant":
        given = {"name": args.name, "credits": args.credits, "max_in_flight": args.max_in_flight,
                 "requests_per_minute": args.requests_per_minute}  # fmt: skip
        req = parse(TenantCreate, {k: v for k, v in given.items() if v is not None})
        return tenants.create_tenant(services, req.name, req.credits, req.limits())
    if args.command == "grant-credits":
        req_grant = parse(CreditGrant, {"credits": args.credits, "reason": args.reason})
        return accounts.grant(services, args.tenant, req_grant.credits, req_grant.reason).model_dump(
            mode="json"
        )
    if args.command == "create-key":
        req_key = parse(KeyCreate, {"name": args.name})
        return accounts.create_key(services, args.tenant, req_key.name).model_dump(mode="json")
    if args.command == "revoke-key":
        return accounts.revoke_key(services, args.tenant, args.key_id).model_dump(mode="json")
    if args.command == "set-plan":
        origins = [] if args.clear_allowed_origins else args.allowed_origins
        fields = {"plan": args.plan, "max_in_flight": args.max_in_flight, "allowed_origins": origins,
                  "requests_per_minute": args.requests_per_minute,
                  "subject_requests_per_minute": args.subject_requests_per_minute}  # fmt: skip
        update = parse(PlanUpdate, {k: v for k, v in fields.items() if v is not None})
        return accounts.set_plan(services, args.tenant, update).model_dump(mode="json")
    if args.command == "client-token":
        return _client_token(services, args)
    if args.command == "show-tenant":
        return accounts.show_tenant(services, args.tenant).model_dump(mode="json")
    if args.command == "economics":
        start = timeutil.now() - dt.timedelta(days=max(1, args.days))
        query = RangeQuery.model_validate({"from": timeutil.iso(start)})
        return accounts.economics(services, args.tenant, query).model_dump(mode="json", by_alias=True)
    if args.command == "audit":
        return json.loads(scan.compact(scan.audit(services, args.tenant).as_dict()))
    if args.command == "reconcile":
        return reconcile.reconcile(services, args.days * 86_400 if args.days else None)
    raise AssertionError(args.command)  # argparse only admits the commands above


def _client_token(services: Services, args: argparse.Namespace) -> dict[str, Any]:
    """A token minted as the tenant's server would, and the end-user page that opens with it."""
    accounts.show_tenant(services, args.tenant)  # 404 before anything is written
    fields = {"subject": args.subject, "scopes": args.scopes or list(END_USER), "ttl_s": args.ttl_s,
              "max_images": args.max_images}  # fmt: skip
    req = parse(ClientTokenRequest, {k: v for k, v in fields.items() if v is not None})
    minted = access.mint(services, tenants.Caller(tenant_id=args.tenant, key_id="lote-admin"), req)
    link = f"{services.settings.api_url.rstrip('/')}/app/#token={minted.token}"
    return {**minted.model_dump(mode="json", exclude_none=True), "link": link}


NO_ENVIRONMENT = (
    "lote-admin: no environment configured: run `make dev` and run lote-admin from the repo (it reads "
    ".lote/local.env), or set LOTE_PROJECT_ID and Google credentials (or FIRESTORE_EMULATOR_HOST)"
)


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    from google.auth.exceptions import DefaultCredentialsError

    try:
        result = run(sys.argv[1:] if argv is None else argv, Services.build(load_settings()))
    except LoteError as exc:
        print(json.dumps(exc.body()), file=sys.stderr)
        sys.exit(2)
    except DefaultCredentialsError:
        # Neither the local stack nor a project: the clients found no credentials when first used,
        # before any write. The library's own message points at ADC only, which misleads locally.
        print(NO_ENVIRONMENT, file=sys.stderr)
        sys.exit(2)
    print(json.dumps(result))
    if result.get("ok") is False:  # the audit found violations
        sys.exit(1)
