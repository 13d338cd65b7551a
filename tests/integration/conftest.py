"""Integration fixtures: the whole STACK bootstrapped inside in-process moto."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from infra.bootstrap import Created
from infra.naming import physical
from infra.resources import STACK

STAGE = "test"


@dataclass
class MotoCloud:
    """A bootstrapped in-process cloud with the real handlers registered."""

    session: Any
    created: Created

    def client(self, service: str) -> Any:
        return self.session.client(service)

    def queue_url(self, logical: str) -> str:
        return self.created.queues[logical]


@pytest.fixture
def moto_cloud() -> Iterator[MotoCloud]:
    import boto3
    from moto import mock_aws

    from devcloud import dynamodb_atomicity, lambda_dispatch, registry
    from infra.bootstrap import bootstrap

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        lambda_dispatch.install()
        dynamodb_atomicity.install()
        try:
            session = boto3.session.Session(region_name="us-east-1")
            created = bootstrap(session, stage=STAGE)
            for function in STACK.functions:
                lambda_dispatch.register(physical(STAGE, function.name), registry.handler(function))
            yield MotoCloud(session, created)
        finally:
            lambda_dispatch.uninstall()
            dynamodb_atomicity.uninstall()
