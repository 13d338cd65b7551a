"""Runtime settings from the environment, read once on first use (never at import time)."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dotmac.core.settings_model import Settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, built from the environment on first call."""
    # pydantic-settings costs ~0.2 s to import: keep it off the cold-start import path.
    from dotmac.core.settings_model import Settings

    return Settings()


def reset_settings() -> None:
    """Forget the cached settings (tests and the local launcher change the environment)."""
    get_settings.cache_clear()
