"""The whole local platform in one process: emulator, resources, gateway, pollers, scheduler."""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from devcloud import dynamodb_atomicity, isp_demo, lambda_dispatch, registry, seed
from devcloud.events import queue_mappings, schedules
from devcloud.gateway import Gateway, GatewayServer
from devcloud.pollers import QueuePoller
from devcloud.scheduler import Scheduler
from infra.bootstrap import Created, bootstrap
from infra.naming import physical
from infra.resources import STACK, Stack

DRAIN_SECONDS = 30.0
# How long a stop waits for each queue batch in hand (a running invocation finishes).
POLLER_STOP_SECONDS = 30.0


@dataclass(frozen=True)
class LocalConfig:
    """Where things listen; every value can come from the environment."""

    host: str = "127.0.0.1"
    emulator_port: int = 4566
    api_port: int = 8000
    stage: str = "local"
    region: str = "us-east-1"
    external_endpoint: str | None = None  # e.g. LocalStack at http://localhost:4566
    access_log: bool = True
    seed: bool = True
    # Requests per user per minute instead of DESIGN §5's 100: for load tests only.
    api_limit_per_user: int | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> LocalConfig:
        env = dict(os.environ if env is None else env)
        return cls(
            host=env.get("DOTMAC_HOST", cls.host),
            emulator_port=int(env.get("DOTMAC_EMULATOR_PORT", cls.emulator_port)),
            api_port=int(env.get("DOTMAC_API_PORT", cls.api_port)),
            stage=env.get("DOTMAC_STAGE", cls.stage),
            region=env.get("AWS_DEFAULT_REGION", cls.region),
            external_endpoint=env.get("DOTMAC_EXTERNAL_ENDPOINT") or None,
            access_log=env.get("DOTMAC_ACCESS_LOG", "true").lower() == "true",
            seed=env.get("DOTMAC_SEED", "true").lower() == "true",
            api_limit_per_user=int(env["DOTMAC_API_LIMIT_PER_USER"])
            if env.get("DOTMAC_API_LIMIT_PER_USER")
            else None,
        )

    @property
    def endpoint(self) -> str:
        return self.external_endpoint or f"http://{self.host}:{self.emulator_port}"


def configure_environment(config: LocalConfig) -> None:
    """Point every AWS SDK call in this process at the emulator (before any client exists)."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    os.environ["AWS_DEFAULT_REGION"] = config.region
    os.environ["AWS_ENDPOINT_URL"] = config.endpoint
    os.environ["DOTMAC_STAGE"] = config.stage
    os.environ["DOTMAC_REGION"] = config.region
    # moto's Step Functions executor calls other services at localhost:$MOTO_PORT.
    os.environ["MOTO_PORT"] = str(config.emulator_port)


@dataclass
class LocalCloud:
    """Start and stop the local platform; the e2e tests and `make run` both use it."""

    config: LocalConfig
    stack: Stack = STACK
    created: Created | None = None
    gateway_server: GatewayServer | None = None
    pollers: list[QueuePoller] = field(default_factory=list)
    scheduler: Scheduler | None = None
    _moto: Any = None

    def start(self) -> None:
        configure_environment(self.config)
        if self.config.external_endpoint is None:
            self._start_moto()
        import boto3

        session = boto3.session.Session(region_name=self.config.region)
        self.created = bootstrap(session, stage=self.config.stage, stack=self.stack)
        self._register_functions()
        if self.config.api_limit_per_user is not None:
            from dotmac.core import ratelimit

            ratelimit.API_PER_USER = ratelimit.Limit(
                ratelimit.API_PER_USER.name, self.config.api_limit_per_user, 60
            )
        if self.config.seed:
            seed.run()
        apps = {name: registry.chalice_app(name) for name in self.stack.http_apps}
        gateway = Gateway(apps)
        if self.config.seed:  # through the API (in process), before anyone can call it
            isp_demo.ensure(gateway)
        self.gateway_server = GatewayServer(
            self.config.host, self.config.api_port, gateway, access_log=self.config.access_log
        )
        self.gateway_server.start()
        for mapping in queue_mappings(self.stack, self.config.stage):
            poller = QueuePoller(session, mapping, physical(self.config.stage, mapping.function))
            poller.start()
            self.pollers.append(poller)
        jobs = [(s, physical(self.config.stage, s.function)) for s in schedules(self.stack)]
        self.scheduler = Scheduler(session, jobs)
        self.scheduler.start()

    def _start_moto(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per AWS call is noise
        lambda_dispatch.install()
        dynamodb_atomicity.install()
        self._moto = ThreadedMotoServer(
            ip_address=self.config.host, port=self.config.emulator_port, verbose=False
        )
        self._moto.start()
        request = urllib.request.Request(  # noqa: S310 - our own loopback emulator
            f"{self.config.endpoint}/moto-api/config",
            data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            response.read()

    def _register_functions(self) -> None:
        for function in self.stack.functions:
            lambda_dispatch.register(
                physical(self.config.stage, function.name), registry.handler(function)
            )

    def stop(self, drain_seconds: float = DRAIN_SECONDS) -> int:
        """Graceful stop: drain HTTP, stop pollers and scheduler, stop the emulator.

        Returns the number of requests still in flight when the drain gave up (0 = clean).
        """
        left = 0
        if self.gateway_server is not None:
            left = self.gateway_server.drain(drain_seconds)
        for poller in self.pollers:  # all at once, so a long batch does not hold up the rest
            poller.stop_receiving()
        for poller in self.pollers:
            poller.stop(POLLER_STOP_SECONDS)
        if self.scheduler is not None:
            self.scheduler.stop()
        if self._moto is not None:
            self._moto.stop()
            lambda_dispatch.uninstall()
            dynamodb_atomicity.uninstall()
        return left

    def urls(self) -> dict[str, str]:
        api = f"http://{self.config.host}:{self.config.api_port}"
        return {
            "api": api,
            "health": f"{api}/health/ready",
            "emulator": self.config.endpoint,
            **{
                f"openapi ({app})": f"{api}/api/v1/{app}/openapi.json"
                for app in self.stack.http_apps
            },
        }
