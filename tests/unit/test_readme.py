"""The README's variable table names every variable the settings objects read."""

from __future__ import annotations

import pytest
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from lote.settings import Settings
from lote_local.config import REPO_ROOT, StackConfig


def env_names(settings: type[BaseSettings]) -> set[str]:
    prefix = settings.model_config.get("env_prefix", "")
    names = set()
    for field_name, field in settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(choice) for choice in alias.choices)
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names


@pytest.mark.parametrize("settings", [Settings, StackConfig])
def test_every_variable_is_in_the_readme_table(settings: type[BaseSettings]):
    table = [line for line in (REPO_ROOT / "README.md").read_text().splitlines() if line.startswith("| `")]
    documented = {name.strip("` ") for line in table for name in line.split("|")[1].split(",")}
    assert env_names(settings) - documented == set()
