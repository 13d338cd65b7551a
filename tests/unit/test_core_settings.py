"""Settings: read lazily from `DOTMAC_*` variables; physical names derive from the stage."""

from __future__ import annotations

import json
import subprocess
import sys

import pydantic
import pytest

from dotmac.core.settings import get_settings, reset_settings


def _fresh(monkeypatch: pytest.MonkeyPatch, **env: str | None) -> None:
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    reset_settings()


def test_import_does_not_load_pydantic_settings() -> None:
    code = (
        "import json, sys\n"
        "import dotmac.core.settings\n"
        "before = 'pydantic_settings' in sys.modules\n"
        "dotmac.core.settings.get_settings()\n"
        "print(json.dumps([before, 'pydantic_settings' in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    # Not imported by the import itself; imported (so the probe is sound) on first use.
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [False, True]


def test_stage_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    _fresh(monkeypatch, DOTMAC_STAGE="dev", DOTMAC_TABLE_NAME=None, DOTMAC_BUCKET_NAME=None)
    settings = get_settings()
    assert settings.stage == "dev"
    assert settings.physical_name("main") == "dotmac-dev-main"
    assert settings.table == "dotmac-dev-main"
    assert settings.bucket == "dotmac-dev-objects"
    assert settings.kms_alias == "alias/dotmac-dev-pii"
    assert settings.queue_name("notifications") == "dotmac-dev-notifications"


def test_default_stage_is_local(monkeypatch: pytest.MonkeyPatch) -> None:
    _fresh(monkeypatch, DOTMAC_STAGE=None, DOTMAC_TABLE_NAME=None)
    assert get_settings().stage == "local"
    assert get_settings().table == "dotmac-local-main"


def test_explicit_names_win_over_derived_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    _fresh(
        monkeypatch,
        DOTMAC_STAGE="dev",
        DOTMAC_TABLE_NAME="my-table",
        DOTMAC_BUCKET_NAME="my-bucket",
        DOTMAC_KMS_KEY_ALIAS="alias/mine",
    )
    settings = get_settings()
    assert settings.table == "my-table"
    assert settings.bucket == "my-bucket"
    assert settings.kms_alias == "alias/mine"
    # Names that were not overridden still derive from the stage.
    assert settings.queue_name("billing") == "dotmac-dev-billing"


def test_settings_are_cached_until_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    _fresh(monkeypatch, DOTMAC_STAGE="one")
    first = get_settings()
    assert get_settings() is first
    monkeypatch.setenv("DOTMAC_STAGE", "two")
    assert get_settings().stage == "one"
    reset_settings()
    assert get_settings().stage == "two"


def test_settings_are_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    _fresh(monkeypatch, DOTMAC_STAGE="dev")
    with pytest.raises(pydantic.ValidationError):
        get_settings().stage = "prod"  # type: ignore[misc]


@pytest.mark.parametrize("stage", ["Prod", "dev_1", "dev stage", "a" * 21, "", "dev/x", "prod\n"])
def test_invalid_stage_rejected(monkeypatch: pytest.MonkeyPatch, stage: str) -> None:
    _fresh(monkeypatch, DOTMAC_STAGE=stage)
    with pytest.raises(pydantic.ValidationError) as caught:
        get_settings()
    assert caught.value.errors()[0]["loc"] == ("stage",)


@pytest.mark.parametrize("stage", ["a", "prod", "pr-123", "a" * 20])
def test_valid_stages_accepted(monkeypatch: pytest.MonkeyPatch, stage: str) -> None:
    _fresh(monkeypatch, DOTMAC_STAGE=stage)
    assert get_settings().physical_name("x") == f"dotmac-{stage}-x"
