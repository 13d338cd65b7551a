"""Health probes of every app against the bootstrapped emulator."""

from __future__ import annotations

import json

import pytest
from chalice.test import Client

from devcloud import registry
from infra.resources import STACK
from tests.integration.conftest import MotoCloud


@pytest.mark.parametrize("app", STACK.http_apps)
def test_every_app_is_ready_when_its_dependencies_answer(moto_cloud: MotoCloud, app: str) -> None:
    with Client(registry.chalice_app(app)) as client:
        for probe in ("live", "startup", "ready"):
            response = client.http.get(f"/api/v1/{app}/health/{probe}")
            assert response.status_code == 200, (probe, response.body)
        checks = json.loads(response.body)["checks"]
    assert set(checks) == {
        "table:dotmac-test-main",
        "bucket:dotmac-test-objects",
        "queue:dotmac-test-notifications",
        "queue:dotmac-test-billing-jobs",
        "queue:dotmac-test-device-events",
    }
    assert all(c["status"] == "ok" for c in checks.values())


@pytest.mark.parametrize(
    ("break_it", "failed"),
    [
        (
            lambda c: c.client("sqs").delete_queue(QueueUrl=c.queue_url("notifications")),
            "queue:dotmac-test-notifications",
        ),
        (
            lambda c: c.client("dynamodb").delete_table(TableName=c.created.table),
            "table:dotmac-test-main",
        ),
    ],
    ids=["queue", "table"],
)
def test_ready_answers_503_naming_the_missing_dependency(
    moto_cloud: MotoCloud, break_it: object, failed: str
) -> None:
    break_it(moto_cloud)  # type: ignore[operator]
    with Client(registry.chalice_app("management")) as client:
        response = client.http.get("/health/ready")
        live = client.http.get("/health/live")
    body = json.loads(response.body)
    assert response.status_code == 503
    assert body["failed"] == [failed]
    assert body["checks"][failed]["status"] == "error"
    assert live.status_code == 200  # liveness does not depend on the backends


def test_ready_reports_a_missing_bucket(moto_cloud: MotoCloud) -> None:
    s3 = moto_cloud.client("s3")
    bucket = moto_cloud.created.buckets["objects"]
    versions = s3.list_object_versions(Bucket=bucket).get("Versions", [])
    for version in versions:
        s3.delete_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])
    s3.delete_bucket(Bucket=bucket)
    with Client(registry.chalice_app("isp")) as client:
        response = client.http.get("/api/v1/isp/health/ready")
    assert response.status_code == 503
    assert json.loads(response.body)["failed"] == ["bucket:dotmac-test-objects"]
