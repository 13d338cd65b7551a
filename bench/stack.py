"""The whole stack in in-process moto, as the benches use it: Step Functions executing,
every Lambda dispatched to its real handler, DynamoDB writes atomic, demo data seeded."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

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
