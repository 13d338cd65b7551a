"""The local platform's settings from its environment."""

from __future__ import annotations

from devcloud.cloud import LocalConfig


def test_the_api_limit_per_user_is_changed_only_when_asked() -> None:
    assert LocalConfig.from_env({}).api_limit_per_user is None
    assert LocalConfig.from_env({"DOTMAC_API_LIMIT_PER_USER": ""}).api_limit_per_user is None
    raised = LocalConfig.from_env({"DOTMAC_API_LIMIT_PER_USER": "100000"})
    assert raised.api_limit_per_user == 100_000
