"""The one typed settings object: every environment variable lote reads is declared here."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic.json_schema import JsonDict
from pydantic_settings import BaseSettings, SettingsConfigDict

GOOGLE_OIDC_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
# Marks the settings a deployment must set (their defaults suit only the local stack, or they are
# secrets); tests/unit/test_terraform.py checks Terraform provides each to the functions.
DEPLOY: JsonDict = {"deploy": True}


class Mode(StrEnum):
    """Where the app runs; local mode trusts the local emulators' credentials, nothing else."""

    LOCAL = "local"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """Configuration from the environment; names are the env vars (case-insensitive)."""

    model_config = SettingsConfigDict(env_prefix="LOTE_", extra="ignore", frozen=True)

    mode: Mode = Field(
        Mode.PRODUCTION, description="`local` only on a developer machine or CI.", json_schema_extra=DEPLOY
    )
    project_id: str = Field(
        "lote-local",
        validation_alias=AliasChoices("LOTE_PROJECT_ID", "GOOGLE_CLOUD_PROJECT"),
        description="Google Cloud project that owns every resource.",
        json_schema_extra=DEPLOY,
    )
    location: str = Field("us-central1", description="Region of the queues and functions.")

    # Service endpoints. The *_EMULATOR_HOST names are the ones Google's own clients read.
    firestore_emulator_host: str | None = Field(
        None,
        validation_alias="FIRESTORE_EMULATOR_HOST",
        description="host:port of the Firestore emulator; unset in production.",
    )
    storage_emulator_host: str | None = Field(
        None,
        validation_alias="STORAGE_EMULATOR_HOST",
        description="URL of the Cloud Storage emulator (fake-gcs-server); unset in production.",
    )
    cloud_tasks_emulator_host: str | None = Field(
        None,
        validation_alias="CLOUD_TASKS_EMULATOR_HOST",
        description="host:port of lote's Cloud Tasks gRPC emulator; unset in production.",
    )

    # Buckets.
    input_bucket: str = Field(
        "lote-local-inputs", description="Bucket for uploaded inputs.", json_schema_extra=DEPLOY
    )
    output_bucket: str = Field(
        "lote-local-outputs", description="Bucket for generated images.", json_schema_extra=DEPLOY
    )
    manifest_bucket: str = Field(
        "lote-local-manifests", description="Bucket for batch manifests.", json_schema_extra=DEPLOY
    )

    # Functions and queues.
    api_url: str = Field(
        "http://127.0.0.1:8080", description="Public base URL of `api`.", json_schema_extra=DEPLOY
    )
    worker_url: str = Field(
        "http://127.0.0.1:8081", description="URL Cloud Tasks calls.", json_schema_extra=DEPLOY
    )
    generation_queue: str = Field("generation", description="Queue of one-image tasks.")
    fanout_queue: str = Field("fanout", description="Queue of batch fan-out and batch checker tasks.")
    tasks_invoker_email: str = Field(
        "lote-tasks-invoker@lote-local.iam.gserviceaccount.com",
        description="Service account Cloud Tasks signs OIDC tokens as; the worker accepts no other.",
        json_schema_extra=DEPLOY,
    )
    oidc_certs_url: str = Field(
        GOOGLE_OIDC_CERTS_URL,
        description="Where the worker fetches the keys that sign OIDC tokens (the emulator's locally).",
    )

    admission_concurrency: int = Field(
        16,
        ge=1,
        le=1000,
        description="Submissions one api instance works on at once; more wait up to LOTE_ADMISSION_WAIT_MS, "
        "then are answered 429 `overloaded` with Retry-After (fast, instead of queueing behind the others).",
    )
    admission_wait_ms: int = Field(
        300, ge=0, le=10_000, description="How long a submission waits for its turn before 429 `overloaded`."
    )
    batch_live_count_max: int = Field(
        5_000,
        ge=0,
        description="Up to this many items a batch's status read counts them live; a larger batch shows the "
        "tally last recorded by its checker (at most LOTE_BATCH_REFRESH_S old while it runs, a poll asks for "
        "a count when it is older), so a poll costs the same whatever the batch's size.",
    )
    batch_refresh_s: float = Field(
        15.0,
        gt=0,
        le=3600,
        description="How old a large batch's recorded tally may get before a poll asks for a count.",
    )
    purse_slices: int = Field(
        16,
        ge=1,
        le=1000,
        description="Documents a tenant's balance and in-flight slots are split over, so that its concurrent "
        "single generations do not serialize on one (billing/purse.py).",
    )
    dispatch_queue: str = Field("dispatch", description="Queue of the dispatcher's self-rescheduling ticks.")
    dispatch_window_s: float = Field(
        2.0, ge=0.5, le=60, description="Seconds between dispatcher ticks: one control window of the pace."
    )
    dispatch_start_rps: float | None = Field(
        None,
        gt=0,
        description="Model calls/s the pace starts at (no state yet); unset starts at the ceiling.",
    )
    dispatch_ceiling_rps: float = Field(
        10.0,
        gt=0,
        description="Model calls/s the pace never exceeds: the generation queue's rate in queue.yaml.",
        json_schema_extra=DEPLOY,
    )
    dispatch_blocked_probe_s: float = Field(
        60.0,
        ge=1,
        le=3600,
        description="While the model refuses the deployment (a bad key, billing, the day's quota: the "
        "breaker is `blocked`), seconds between probes; dispatch resumes once one passes.",
    )
    dispatch_depth_s: float = Field(
        1.0, ge=0, le=30, description="Seconds of work at the current pace kept released ahead of the model."
    )
    dispatch_measure_every_s: float = Field(
        300.0,
        ge=0,
        le=86_400,
        description="With single generations only, a submission restarts the dispatcher's ticks when its "
        "measures (singles' rate, the typical attempt behind `eta`) are older than this.",
    )
    tier_weights: dict[str, float] = Field(
        {"express": 4.0, "standard": 1.0, "economy": 0.0},
        description="JSON: each batch priority's share weight of the model's pace between tenants "
        "(0: only capacity no other tier uses).",
    )
    batch_mode_tiers: list[str] = Field(
        ["economy"],
        description="JSON: the batch priorities whose items (one generation, no analyze or verify step) go "
        "through Gemini's batch mode at half the model's price instead of online calls ([]: none).",
    )
    batch_mode_flush_items: int = Field(
        50, ge=1, le=1000, description="Requests in one model batch job: a group flushes at this many."
    )
    batch_mode_flush_s: float = Field(
        300.0, ge=0, description="...or once its oldest item has waited this long (seconds)."
    )
    batch_mode_max_jobs: int = Field(
        20, ge=1, le=100, description="Model batch jobs in flight at once (Gemini allows 100 per project)."
    )
    batch_mode_poll_s: float = Field(
        30.0, gt=0, description="First look at a submitted model batch job; then twice as long, to 5 min."
    )
    batch_mode_deadline_s: float = Field(
        26 * 3600.0,
        gt=0,
        description="A model batch job not ended this long after its submission is canceled and its items "
        "go back to online dispatch (Gemini's target is 24 h).",
    )
    dispatch_interactive_share: float = Field(
        0.2,
        ge=0,
        lt=1,
        description="Single generations may hold back up to twice this share of the pace; only their "
        "measured call rate is held back, so batches borrow whatever singles leave.",
    )
    generation_max_attempts: int = Field(
        10,
        ge=-1,
        description="The generation queue's max_attempts (queue.yaml task_retry_limit + 1).",
        json_schema_extra=DEPLOY,
    )
    generation_max_retry_s: float = Field(
        1800.0,
        ge=0,
        description="The generation queue's max_retry_duration (task_age_limit) in seconds.",
        json_schema_extra=DEPLOY,
    )
    task_dispatch_deadline_s: int = Field(
        300, ge=15, le=1800, description="Dispatch deadline of generation tasks; also the worker's lease."
    )
    repair_after_s: int = Field(
        60,
        ge=10,
        description="Age after which the repair sweep creates the task of a job that has none; also the "
        "slack after a task's retry window before the sweep asks Cloud Tasks whether it still exists.",
    )
    abandon_after_s: int = Field(
        86_400,
        ge=60,
        description="Age after which a job whose task is gone is failed as `abandoned` (refunded) "
        "instead of getting a new task.",
    )
    sweep_limit: int = Field(
        500, ge=1, le=5000, description="Documents each step of one repair sweep (and audit sample) looks at."
    )

    # Webhooks.
    webhook_queue: str = Field("webhooks", description="Queue of webhook deliveries.")
    webhook_max_attempts: int = Field(
        31,
        ge=-1,
        description="The webhooks queue's max_attempts (queue.yaml task_retry_limit + 1).",
        json_schema_extra=DEPLOY,
    )
    webhook_max_retry_s: float = Field(
        86400.0,
        ge=0,
        description="The webhooks queue's max_retry_duration (task_age_limit) in seconds.",
        json_schema_extra=DEPLOY,
    )
    webhook_timeout_s: float = Field(10.0, gt=0, le=60, description="Timeout of one webhook POST.")

    retention_days: int = Field(
        30, ge=1, le=3650, description="Days finished jobs, batches and webhook deliveries are kept (TTL)."
    )

    # Outputs.
    output_retention_days: int = Field(
        30,
        ge=2,
        le=3650,
        description="Days generated images stay in the output bucket (its age rule).",
        json_schema_extra=DEPLOY,
    )
    reuse_wait_s: float = Field(
        5.0, gt=0, le=60, description="How soon a job waiting for an identical request's image looks again."
    )
    reuse_ttl_s: float = Field(
        30 * 86400.0,
        ge=0,
        description="How long an image may be delivered again to an identical request of its tenant "
        "instead of calling the model (never past a day before the output bucket deletes it; 0: never).",
    )
    signed_url_ttl_s: int = Field(
        3600, ge=60, le=7 * 86400, description="Lifetime of output URLs (V4 signed; at most 7 days)."
    )
    signing_service_account: str | None = Field(
        None,
        description="Service account that signs output URLs through IAM signBlob (production).",
        json_schema_extra=DEPLOY,
    )

    trace_exporter: Literal["none", "gcp", "file"] = Field(
        "none",
        description="Where spans go: Cloud Trace (`gcp`, deployed), a JSON-lines file (`file`, "
        "LOTE_TRACE_FILE: the local stack's), or nowhere.",
        json_schema_extra=DEPLOY,
    )
    trace_file: str | None = Field(None, description="The `file` exporter's path.")
    trace_sample_ratio: float = Field(
        1.0, ge=0, le=1, description="The share of new traces recorded (a trace carried in is followed)."
    )
    log_json_file: str | None = Field(
        None,
        description="Locally: also write the structured (Cloud Logging JSON) lines to this file "
        "(deployed, they are the only lines, on stdout).",
    )
    admin_token: SecretStr | None = Field(
        None,
        description="Bearer token of the /v1/admin routes; when unset they are refused entirely.",
        json_schema_extra=DEPLOY,
    )

    client_token_keys: dict[str, SecretStr] = Field(
        {},
        description="JSON {kid: secret} of the keys that sign client tokens (HS256, 32+ bytes each); the "
        "first signs, all verify. Rotate by putting a new key first and dropping the old one an hour later.",
        json_schema_extra=DEPLOY,
    )

    # Billing (Stripe). Secrets come from Secret Manager in production.
    stripe_secret_key: SecretStr | None = Field(
        None,
        description="Stripe API key; without it checkout answers 503 `billing_unavailable`.",
        json_schema_extra=DEPLOY,
    )
    stripe_webhook_secret: SecretStr | None = Field(
        None,
        description="Signing secret (`whsec_...`) of the Stripe endpoint; unset refuses every event.",
        json_schema_extra=DEPLOY,
    )
    stripe_api_base: str | None = Field(
        None, description="Stripe API base URL; set only locally, to the offline fake."
    )
    stripe_reconcile_lookback_s: int = Field(
        4 * 86_400,
        ge=3600,
        le=90 * 86_400,
        description="How far back the Stripe reconciliation lists sessions, refunds and disputes (Stripe "
        "retries a live event for 3 days: a missed one is older than that).",
    )
    credit_packs: dict[str, int] = Field(
        {"credits_100": 100, "credits_1000": 1000, "credits_10000": 10000},
        description="Credit packs as JSON: Stripe price `lookup_key` → credits it buys.",
    )
    checkout_success_url: str | None = Field(
        None,
        description="Where Stripe Checkout returns after paying (a request may name its own).",
        json_schema_extra=DEPLOY,
    )
    checkout_cancel_url: str | None = Field(
        None,
        description="Where Stripe Checkout returns when abandoned (a request may name its own).",
        json_schema_extra=DEPLOY,
    )

    # The model.
    gemini_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("GEMINI_API_KEY", "GOOGLE_API_KEY"),
        description="Gemini Developer API key; with it the real Gemini is called.",
    )
    use_vertexai: bool = Field(
        False,
        validation_alias=AliasChoices("LOTE_USE_VERTEXAI", "GOOGLE_GENAI_USE_VERTEXAI"),
        description="Call Gemini through Vertex AI with the function's service account.",
    )
    model_location: str | None = Field(
        None,
        description="Vertex AI location of the model (image models often need `global`); else LOTE_LOCATION.",
    )
    model_base_url: str | None = Field(
        None,
        description="Base URL of the offline model server; used only without a key or Vertex.",
    )
    default_model: str = Field("gemini-2.5-flash-image", description="Model used when a request names none.")
    text_model: str = Field(
        "gemini-2.5-flash", description="The vision model that analyzes inputs and verifies outputs."
    )
    model_timeout_s: float = Field(120.0, gt=0, description="Timeout of one model call.")
    worker_memory_budget_mb: int = Field(
        1400,
        ge=64,
        description="MiB the worker's attempts in flight may reserve for their images (jobs/memory.py): "
        "about the instance's memory less 600 (2 GiB deployed).",
        json_schema_extra=DEPLOY,
    )
    worker_memory_wait_s: float = Field(
        20.0, ge=0, le=300, description="Seconds an attempt waits for memory before giving its job back."
    )

    @model_validator(mode="after")
    def _token_keys_are_long(self) -> Settings:
        """HS256 keys shorter than the hash (32 bytes) can be guessed offline from one token."""
        short = [kid for kid, key in self.client_token_keys.items() if len(key.get_secret_value()) < 32]
        if short:
            raise ValueError(f"LOTE_CLIENT_TOKEN_KEYS: keys {short} are shorter than 32 characters")
        return self

    @model_validator(mode="after")
    def _emulators_only_locally(self) -> Settings:
        """Refuse emulator endpoints in production: they would skip real authentication."""
        if self.mode is Mode.PRODUCTION:
            if self.cloud_tasks_emulator_host:
                raise ValueError("CLOUD_TASKS_EMULATOR_HOST is set but LOTE_MODE is not `local`")
            if self.oidc_certs_url != GOOGLE_OIDC_CERTS_URL:
                raise ValueError("LOTE_OIDC_CERTS_URL may differ from Google's only in local mode")
            if self.stripe_api_base:
                raise ValueError("LOTE_STRIPE_API_BASE may be set only in local mode")
        if (
            set(self.tier_weights) != {"express", "standard", "economy"}
            or min(self.tier_weights.values()) < 0
        ):
            raise ValueError("LOTE_TIER_WEIGHTS must give express, standard and economy weights ≥ 0")
        if self.trace_exporter == "file" and not self.trace_file:
            raise ValueError("LOTE_TRACE_EXPORTER=file needs LOTE_TRACE_FILE")
        if not set(self.batch_mode_tiers) <= {"express", "standard", "economy"}:
            raise ValueError("LOTE_BATCH_MODE_TIERS may name only express, standard and economy")
        if any(isinstance(n, bool) or n <= 0 for n in self.credit_packs.values()):
            raise ValueError("LOTE_CREDIT_PACKS must map lookup keys to positive whole credits")
        return self

    @property
    def stripe_livemode(self) -> bool | None:
        """Whether the Stripe key is a live one (`sk_live_`, `rk_live_`), a test one, or unknown (no key)."""
        key = self.stripe_secret_key.get_secret_value() if self.stripe_secret_key else ""
        if not key:
            return None
        return key.startswith(("sk_live_", "rk_live_"))

    @property
    def is_local(self) -> bool:
        """True when running against the local stack."""
        return self.mode is Mode.LOCAL

    @property
    def uses_real_model(self) -> bool:
        """True when a key or Vertex settings select the real Gemini."""
        return bool(self.gemini_api_key and self.gemini_api_key.get_secret_value()) or self.use_vertexai


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
