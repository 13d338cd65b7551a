"""Every cloud resource DotMac needs, declared once.

`infra.cloudformation` renders these for AWS and `infra.bootstrap` creates them in the
local emulator; `tests/integration/test_infra_parity.py` proves both say the same thing.
Names here are logical; the physical names are prefixed with the stage (`dotmac-local-...`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
STATEMACHINE_DIR = REPO_ROOT / "statemachines"
FUNCTIONS_DIR = REPO_ROOT / "functions"


@dataclass(frozen=True)
class Index:
    """A global secondary index with string keys, projecting all attributes."""

    name: str
    pk: str
    sk: str


@dataclass(frozen=True)
class Table:
    """The single DynamoDB table: string PK/SK, GSIs, a TTL attribute, on-demand, PITR."""

    name: str
    pk: str
    sk: str
    indexes: tuple[Index, ...]
    ttl_attribute: str


@dataclass(frozen=True)
class Queue:
    """A standard SQS queue and its dead-letter queue (`<name>-dlq`)."""

    name: str
    visibility_timeout: int = 60
    max_receive_count: int = 3
    dlq_retention_seconds: int = 14 * 24 * 3600

    @property
    def dlq_name(self) -> str:
        return f"{self.name}-dlq"


@dataclass(frozen=True)
class Bucket:
    """A versioned, encrypted, private S3 bucket."""

    name: str


@dataclass(frozen=True)
class QueueTrigger:
    """An SQS event source mapping with partial batch responses switched on."""

    queue: str
    batch_size: int = 10
    max_batching_window: int = 0


@dataclass(frozen=True)
class Function:
    """A Lambda function: `functions/<app>/app.py`, attribute `handler` of the Chalice app.

    `handler` is the name Chalice registered (the route app itself for HTTP apps, the
    decorated function's name for pure Lambda functions).
    """

    name: str
    app: str
    handler: str
    timeout: int = 30
    memory: int = 512
    queue_triggers: tuple[QueueTrigger, ...] = ()
    schedule: str | None = None  # "rate(5 minutes)" or "cron(...)" as EventBridge writes it


@dataclass(frozen=True)
class StateMachine:
    """A Step Functions state machine from `statemachines/<name>.asl.json`.

    The definition may reference `${<function name>Arn}` for each function it invokes.
    """

    name: str
    functions: tuple[str, ...] = ()
    definition_dir: Path = STATEMACHINE_DIR

    @property
    def definition_path(self) -> Path:
        return self.definition_dir / f"{self.name}.asl.json"


@dataclass(frozen=True)
class Stack:
    """Everything, in one value."""

    table: Table
    queues: tuple[Queue, ...]
    buckets: tuple[Bucket, ...]
    kms_key_alias: str
    http_apps: tuple[str, ...]
    functions: tuple[Function, ...]
    state_machines: tuple[StateMachine, ...] = field(default_factory=tuple)

    def function(self, name: str) -> Function:
        return next(f for f in self.functions if f.name == name)


@dataclass(frozen=True)
class GatewayResponse:
    """An answer the API gateway gives itself, before any app runs, in the error envelope."""

    status: int | None  # None keeps the status API Gateway chose
    code: str
    message: str
    retry_after: int | None = None


AUTHORIZER_UNAVAILABLE = GatewayResponse(
    503, "SERVICE_UNAVAILABLE", "the request could not be authorized now", retry_after=1
)
# API Gateway response type -> answer. The local gateway answers from the same table.
GATEWAY_RESPONSES: dict[str, GatewayResponse] = {
    "UNAUTHORIZED": GatewayResponse(401, "UNAUTHENTICATED", "a valid bearer token is required"),
    "ACCESS_DENIED": GatewayResponse(403, "FORBIDDEN", "the authorizer denied this request"),
    # API Gateway's type for an authorizer that raised (in practice: the table did not answer
    # it) or answered malformed. Either way no request gets through: unavailable, retry.
    "AUTHORIZER_CONFIGURATION_ERROR": AUTHORIZER_UNAVAILABLE,
    "AUTHORIZER_FAILURE": AUTHORIZER_UNAVAILABLE,  # the authorizer could not be run at all
    # What API Gateway answers for a path or method no route declares.
    "MISSING_AUTHENTICATION_TOKEN": GatewayResponse(404, "NOT_FOUND", "no route for this request"),
    "REQUEST_TOO_LARGE": GatewayResponse(413, "PAYLOAD_TOO_LARGE", "request body too large"),
    "THROTTLED": GatewayResponse(429, "RATE_LIMITED", "too many requests", retry_after=1),
    "DEFAULT_4XX": GatewayResponse(None, "BAD_REQUEST", "the gateway refused this request"),
    "DEFAULT_5XX": GatewayResponse(500, "INTERNAL_ERROR", "an internal error occurred"),
}


TABLE = Table(
    name="main",
    pk="PK",
    sk="SK",
    indexes=(
        Index("GSI1", "GSI1PK", "GSI1SK"),
        Index("GSI2", "GSI2PK", "GSI2SK"),
    ),
    ttl_attribute="expires_at",
)

HTTP_APPS = ("identity", "management", "billing", "isp", "crm", "commerce", "projects")

STACK = Stack(
    table=TABLE,
    queues=(
        Queue("notifications", visibility_timeout=60),
        Queue("billing-jobs", visibility_timeout=120),
        Queue("device-events", visibility_timeout=60),
    ),
    buckets=(Bucket("objects"),),
    kms_key_alias="pii",
    http_apps=HTTP_APPS,
    functions=(
        *(Function(name=f"{app}-api", app=app, handler="app") for app in HTTP_APPS),
        # The one token authorizer every API route uses (dotmac.identity.authorizer).
        Function(name="authorizer", app="identity", handler="dotmac_authorizer", memory=256),
        Function(
            name="notifications-worker",
            app="workers",
            handler="deliver_notifications",
            queue_triggers=(QueueTrigger("notifications", batch_size=10),),
        ),
        # Every step of the tenant lifecycle workflows (dotmac.management.provisioning).
        Function(
            name="lifecycle-steps",
            app="management",
            handler="lifecycle_step",
            timeout=300,
            memory=1024,
        ),
        # Every step of the ISP service activation workflow (dotmac.isp.provisioning).
        Function(name="isp-activation-steps", app="isp", handler="isp_activation_step", timeout=60),
        Function(
            name="invoice-worker",
            app="workers",
            handler="run_billing_jobs",  # invoice and dunning jobs
            timeout=100,
            queue_triggers=(QueueTrigger("billing-jobs", batch_size=10),),
        ),
        Function(
            name="device-events-worker",
            app="workers",
            handler="ingest_device_events",  # device status reports (dotmac.isp.network)
            queue_triggers=(QueueTrigger("device-events", batch_size=10),),
        ),
        Function(
            name="billing-scheduler",
            app="workers",
            handler="start_scheduled_billing",
            schedule="rate(1 day)",
        ),
        Function(
            name="dunning-scheduler",
            app="workers",
            handler="start_scheduled_dunning",
            schedule="rate(1 day)",
        ),
        Function(
            name="ticket-sla-sweeper",
            app="workers",
            handler="sweep_ticket_slas",
            schedule="rate(5 minutes)",
        ),
        Function(
            name="dlq-monitor",
            app="workers",
            handler="monitor_dead_letter_queues",
            schedule="rate(5 minutes)",
        ),
    ),
    state_machines=(
        StateMachine("provision_tenant", functions=("lifecycle-steps",)),
        StateMachine("deprovision_tenant", functions=("lifecycle-steps",)),
        StateMachine("activate_isp_service", functions=("isp-activation-steps",)),
    ),
)
