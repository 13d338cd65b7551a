"""The settings model; imported lazily through `dotmac.core.settings.get_settings`."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where the platform's resources live; physical names derive from the stage."""

    model_config = SettingsConfigDict(env_prefix="DOTMAC_", frozen=True)

    stage: str = Field(default="local", pattern=r"^[a-z0-9-]{1,20}$")
    region: str = "us-east-1"
    table_name: str = ""
    bucket_name: str = ""
    kms_key_alias: str = ""
    version: str = "0.1.0"
    # `module:Class` of the ISP network adapter (`dotmac.isp.adapter`), built with no arguments.
    isp_network_adapter: str = Field(
        default="dotmac.isp.adapter:RecordingAdapter",
        pattern=r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$",
    )

    def physical_name(self, logical: str) -> str:
        """`dotmac-<stage>-<logical>`: the name a resource of `infra/` gets."""
        return f"dotmac-{self.stage}-{logical}"

    @property
    def table(self) -> str:
        return self.table_name or self.physical_name("main")

    @property
    def bucket(self) -> str:
        return self.bucket_name or self.physical_name("objects")

    @property
    def kms_alias(self) -> str:
        return self.kms_key_alias or f"alias/{self.physical_name('pii')}"

    def queue_name(self, logical: str) -> str:
        return self.physical_name(logical)
