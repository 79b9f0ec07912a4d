"""The chaos run's crash inside a quality pipeline: a verified single whose worker is SIGKILLed while
its verify call is in flight. Its image was generated and checkpointed before the kill, so the retry
must resume at verify: one image call in all, two verify calls, the job succeeded."""

from __future__ import annotations

import time
from typing import Any

import requests

from bench.chaos_timeline import until
from lote.audit import scan
from lote.services import Services
from lote.tenants import service as tenants
from lote_local.stack import Stack

CREDITS = 100


class PipelineCrash:
    """One verified single on a tenant of its own (the batch tenant's counts stay exact)."""

    def __init__(self, stack: Stack, services: Services) -> None:
        self.stack, self.services = stack, services
        created = tenants.create_tenant(services, "chaos-pipeline", CREDITS)
        self.tenant_id = created["tenant_id"]
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {created['api_key']}"
        self.run_id = time.time_ns()
        self.job_id = ""

    def submit(self) -> None:
        """The job: its first verify call hangs (past the model timeout), so a kill lands in it."""
        prompt = f"chaos pipeline [[verify=timeout hang=30 times=1 run={self.run_id}]]"
        answer = self.http.post(
            self._api("/v1/generations"), json={"prompt": prompt, "verify": True}, timeout=30
        )
        answer.raise_for_status()
        self.job_id = answer.json()["id"]

    def verifying(self) -> bool:
        """Whether the verify call has reached the model (the image is checkpointed by then)."""
        return self._calls()["verify_calls"] >= 1

    def outcome(self, timeout_s: float) -> tuple[dict[str, Any], list[str]]:
        """Await the job's end (its lease must run out first), then its figures and any problem."""

        def final() -> dict[str, Any] | None:
            job: dict[str, Any] = self.http.get(
                self._api(f"/v1/generations/{self.job_id}"), timeout=30
            ).json()
            return job if job["status"] in ("succeeded", "failed", "canceled") else None

        job = until(final, timeout_s, f"pipeline job {self.job_id} final", every=0.5)
        assert job is not None  # until() returns only what is truthy
        audit = scan.audit(self.services, self.tenant_id)
        figures = {"status": job["status"], "attempts": job["attempts"], **self._calls(),
                   "audit_violations": len(audit.violations)}  # fmt: skip
        expected = {"status": "succeeded", "image_calls": 1, "verify_calls": 2, "audit_violations": 0}
        wrong = {k: figures[k] for k, v in expected.items() if figures[k] != v}
        return figures, [f"the pipeline killed at verify: {wrong}"] if wrong else []

    def _calls(self) -> dict[str, int]:
        stats = requests.get(self.stack.url(self.stack.config.model_port) + "/stats", timeout=10).json()
        return {"image_calls": int(stats.get(f"requests:run={self.run_id}", 0)),
                "verify_calls": int(stats.get(f"text:verify:run={self.run_id}", 0))}  # fmt: skip

    def _api(self, path: str) -> str:
        return self.stack.url(self.stack.config.api_port) + path
