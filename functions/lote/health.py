"""What /healthz reports: our version and the versions and endpoints of what we talk to."""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

import lote
from lote.services import Services


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def report(service: str, services: Services) -> dict[str, Any]:
    """The health document of one function."""
    s = services.settings
    model_endpoint = {
        "vertex": f"{s.location}-aiplatform.googleapis.com",
        "gemini": "generativelanguage.googleapis.com",
        "offline": s.model_base_url or "unset",
    }[services.model.backend]
    return {
        "status": "ok",
        "service": service,
        "version": lote.__version__,
        "mode": s.mode.value,
        "project_id": s.project_id,
        "python": platform.python_version(),
        "dependencies": {
            "firestore": {
                "library": f"google-cloud-firestore {_version('google-cloud-firestore')}",
                "endpoint": s.firestore_emulator_host or "firestore.googleapis.com",
            },
            "storage": {
                "library": f"google-cloud-storage {_version('google-cloud-storage')}",
                "endpoint": s.storage_emulator_host or "storage.googleapis.com",
            },
            "tasks": {
                "library": f"google-cloud-tasks {_version('google-cloud-tasks')}",
                "endpoint": s.cloud_tasks_emulator_host or "cloudtasks.googleapis.com",
            },
            "model": {
                "library": f"google-genai {_version('google-genai')}",
                "backend": services.model.backend,
                "endpoint": model_endpoint,
                "default_model": s.default_model,
            },
            "framework": {
                "functions-framework": _version("functions-framework"),
                "flask": _version("flask"),
            },
        },
    }
