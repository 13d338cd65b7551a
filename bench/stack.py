"""The whole stack in in-process moto, as the benches use it: Step Functions executing,
every Lambda dispatched to its real handler, DynamoDB writes atomic, demo data seeded."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

STAGE = "bench"


@contextmanager
def seeded_stack() -> Iterator[None]:
    """Bootstrap and seed the stack inside `mock_aws`; undo the patches on exit."""
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        DOTMAC_STAGE=STAGE,
        POWERTOOLS_METRICS_NAMESPACE="DotMacBench",
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)
    import boto3
    from moto import mock_aws

    from devcloud import dynamodb_atomicity, lambda_dispatch, registry, seed
    from infra.bootstrap import bootstrap
    from infra.naming import physical
    from infra.resources import STACK

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        lambda_dispatch.install()
        dynamodb_atomicity.install()
        try:
            bootstrap(boto3.session.Session(region_name="us-east-1"), stage=STAGE)
            for function in STACK.functions:
                lambda_dispatch.register(physical(STAGE, function.name), registry.handler(function))
            seed.run()
            yield
        finally:
            lambda_dispatch.uninstall()
            dynamodb_atomicity.uninstall()


@contextmanager
def counted_aws_calls() -> Iterator[Counter[str]]:
    """Count every AWS call any botocore client makes (`service:Operation`), while inside."""
    import botocore.client

    calls: Counter[str] = Counter()
    original = botocore.client.BaseClient._make_api_call

    def counting(self: Any, operation: str, params: Any) -> Any:
        calls[f"{self.meta.service_model.service_name}:{operation}"] += 1
        return original(self, operation, params)

    botocore.client.BaseClient._make_api_call = counting  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        botocore.client.BaseClient._make_api_call = original  # type: ignore[method-assign]
