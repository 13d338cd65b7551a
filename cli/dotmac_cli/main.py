"""The `dotmac` command: operate a DotMac platform's management plane over HTTP."""

from __future__ import annotations

import functools
import json
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar
from urllib.parse import quote

import httpx
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from dotmac_cli import render
from dotmac_cli.client import Answer, ApiClient, ApiError, Json

DEFAULT_ENDPOINT = "http://127.0.0.1:8000"
DEFAULT_EMAIL = "operator@dotmac.example"
# The local demo operator's password (README); deployed stages set DOTMAC_OPERATOR_PASSWORD.
DEFAULT_PASSWORD = "DotMac-demo-2026"  # noqa: S105
TENANTS = "/api/v1/platform/tenants"
BILLING_RUNS = "/api/v1/platform/billing/runs"
PERIOD = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
PROVISION_STEPS = (
    "validate",
    "reserve_subdomain",
    "create_tenant",
    "create_admin",
    "subscribe_apps",
    "issue_licence",
    "create_storage",
    "open_billing_account",
    "activate",
    "welcome",
)
DEPROVISION_STEPS = ("export", "purge", "release", "deprovisioned")

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    name="dotmac",
    help="Operate a DotMac platform over its HTTP API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
tenants = typer.Typer(
    help="Provision, inspect, suspend and deprovision tenants.", no_args_is_help=True
)
app.add_typer(tenants, name="tenants")
billing = typer.Typer(help="Start, follow and redrive monthly billing runs.", no_args_is_help=True)
app.add_typer(billing, name="billing")


class Plan(StrEnum):
    """The plans a tenant can be provisioned on."""

    starter = "starter"
    professional = "professional"
    enterprise = "enterprise"


class Status(StrEnum):
    """A tenant's lifecycle states."""

    REQUESTED = "REQUESTED"
    PROVISIONING = "PROVISIONING"
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    DEPROVISIONING = "DEPROVISIONING"
    DEPROVISIONED = "DEPROVISIONED"
    FAILED = "FAILED"


class CliFailure(Exception):
    """A failure found by the CLI itself (not an API answer), reported like an API error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class State:
    """What every command needs: the operator's connection settings and the output mode."""

    endpoint: str
    email: str
    password: str
    as_json: bool
    out: Console = field(default_factory=lambda: Console(highlight=False))
    err: Console = field(default_factory=lambda: Console(stderr=True, highlight=False))
    _client: ApiClient | None = None

    @property
    def client(self) -> ApiClient:
        """The API client, created (and logged in) on first use."""
        if self._client is None:
            self._client = ApiClient(self.endpoint, self.email, self.password)
        return self._client

    def close(self) -> None:
        """Release the client's connections."""
        if self._client is not None:
            self._client.close()

    def emit(self, body: Json) -> None:
        """Print a JSON document on stdout (the --json output)."""
        typer.echo(json.dumps(body, indent=2, default=str))

    def note(self, message: str | Text) -> None:
        """Tell the operator something; on stderr under --json so stdout stays parseable."""
        (self.err if self.as_json else self.out).print(message, soft_wrap=True)

    def fail(self, code: str, message: str, body: Json | None = None) -> NoReturn:
        """Report a failure and exit 1 (--json prints `body`, or an error envelope)."""
        if self.as_json:
            self.emit(body or _error_envelope(code, message))
        else:
            self.err.print(Text(f"Error {code}: {message}", style="bold red"))
        raise typer.Exit(1)


def _error_envelope(code: str, message: str) -> Json:
    return {"error": {"code": code, "message": message, "details": [], "request_id": None}}


def _state(ctx: Any) -> State:
    state = getattr(ctx, "obj", None)
    if not isinstance(state, State):  # pragma: no cover - the callback always sets it
        raise typer.Exit(2)
    return state


def guarded(command: Callable[P, R]) -> Callable[P, R]:
    """Turn API, connection and CLI failures into a red message and exit code 1."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        state = _state(kwargs["ctx"])  # typer passes every parameter by name
        try:
            return command(*args, **kwargs)
        except ApiError as exc:
            if state.as_json:
                state.emit(exc.envelope)
            else:
                state.err.print(render.error(exc))
            raise typer.Exit(1) from exc
        except httpx.RequestError as exc:
            reason = str(exc) or type(exc).__name__
            state.fail("CONNECTION_ERROR", f"cannot reach {state.endpoint}: {reason}")
        except CliFailure as exc:
            state.fail(exc.code, exc.message)

    return run


@app.callback()
def main(
    ctx: typer.Context,
    endpoint: Annotated[
        str, typer.Option(envvar="DOTMAC_ENDPOINT", help="Base URL of the DotMac API.")
    ] = DEFAULT_ENDPOINT,
    email: Annotated[
        str, typer.Option(envvar="DOTMAC_OPERATOR_EMAIL", help="Platform operator's email.")
    ] = DEFAULT_EMAIL,
    password: Annotated[
        str,
        typer.Option(
            envvar="DOTMAC_OPERATOR_PASSWORD",
            help="Platform operator's password (default: the local demo operator's).",
            show_default=False,
        ),
    ] = DEFAULT_PASSWORD,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")
    ] = False,
) -> None:
    """Operate a DotMac platform over its HTTP API."""
    state = State(endpoint=endpoint, email=email, password=password, as_json=as_json)
    ctx.obj = state
    ctx.call_on_close(state.close)


def tenant_path(tenant_id: str, action: str = "") -> str:
    """The URL path of one tenant, or of one of its actions."""
    path = f"{TENANTS}/{quote(tenant_id, safe='')}"
    return f"{path}/{action}" if action else path


@dataclass(frozen=True)
class Workflow:
    """How to follow one tenant lifecycle workflow."""

    verb: str
    steps: tuple[str, ...]
    success: Status
    ends: frozenset[Status]
    # The run records a failed step last and leaves the status as it was (deprovisioning).
    stops_on_failed_step: bool = False


PROVISIONING = Workflow(
    "Provisioning",
    PROVISION_STEPS,
    Status.ACTIVE,
    frozenset({Status.ACTIVE, Status.FAILED, Status.DEPROVISIONED}),
)
DEPROVISIONING = Workflow(
    "Deprovisioning",
    DEPROVISION_STEPS,
    Status.DEPROVISIONED,
    frozenset({Status.DEPROVISIONED, Status.FAILED}),
    stops_on_failed_step=True,
)


def _step_key(step: Json) -> tuple[Any, ...]:
    return (step.get("step"), step.get("outcome"), step.get("at"), step.get("detail"))


def follow(
    state: State,
    tenant_id: str,
    workflow: Workflow,
    *,
    timeout: float,
    interval: float,
    before: Iterable[Json] = (),
) -> Json:
    """Poll a tenant until `workflow` is over, printing each step it records."""
    # Steps in `before` (the history when the workflow was asked for) are not repeated,
    # whether the API shows the tenant's whole history or only its latest run's.
    shown = {_step_key(step) for step in before}
    done: set[str] = set()
    deadline = time.monotonic() + timeout
    title = f"{workflow.verb} {tenant_id}"
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=state.out, transient=True, disable=state.as_json) as bar:
        task = bar.add_task(title, total=len(workflow.steps))
        while True:
            body = state.client.get(tenant_path(tenant_id)).body
            attributes: Json = (body.get("data") or {}).get("attributes") or {}
            new = [s for s in attributes.get("steps") or [] if _step_key(s) not in shown]
            for step in new:
                shown.add(_step_key(step))
                if step.get("outcome") == "ok":
                    done.add(str(step.get("step")))
                if not state.as_json:
                    bar.console.print(render.step_line(step))
            status = str(attributes.get("status"))
            finished = status == workflow.success
            completed = len(workflow.steps) if finished else len(done & set(workflow.steps))
            bar.update(task, completed=completed, description=f"{title} · {status}")
            failed = workflow.stops_on_failed_step and any(
                s.get("outcome") == "failed" for s in new
            )
            if status in workflow.ends or failed:
                return body
            if time.monotonic() >= deadline:
                raise CliFailure(
                    "WAIT_TIMEOUT",
                    f"{tenant_id} still {status} after {timeout:g}s; "
                    f"check later with `dotmac tenants show {tenant_id}`",
                )
            time.sleep(interval)


TenantArg = Annotated[str, typer.Argument(metavar="ID", help="The tenant id.")]
TimeoutOption = Annotated[
    float, typer.Option(min=0, help="Seconds to wait for the workflow to finish.")
]
IntervalOption = Annotated[float, typer.Option(min=0, help="Seconds between two status polls.")]
WaitOption = Annotated[
    bool, typer.Option("--wait/--no-wait", help="Follow the workflow until it finishes.")
]


@tenants.command()
@guarded
def provision(
    ctx: typer.Context,
    *,
    name: Annotated[str, typer.Option(help="The organisation's name.")],
    subdomain: Annotated[str, typer.Option(help="Subdomain, also the tenant id.")],
    plan: Annotated[Plan, typer.Option(case_sensitive=False, help="The plan.")],
    admin_email: Annotated[str, typer.Option(help="The tenant admin's email.")],
    admin_name: Annotated[str, typer.Option(help="The tenant admin's name.")],
    apps: Annotated[
        list[str] | None, typer.Option("--app", help="An app to subscribe (repeat).")
    ] = None,
    partner: Annotated[str | None, typer.Option(help="Referring partner id.")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Reuse to retry a request safely (default: a new one).")
    ] = None,
    wait: WaitOption = True,
    timeout: TimeoutOption = 120.0,
    poll_interval: IntervalOption = 0.25,
) -> None:
    """Provision a tenant and follow its workflow until it is active or has failed."""
    state = _state(ctx)
    body: Json = {
        "name": name,
        "subdomain": subdomain,
        "plan": plan.value,
        "apps": apps or [],
        "admin_email": admin_email,
        "admin_name": admin_name,
    }
    if partner:
        body["partner_id"] = partner
    key = idempotency_key or str(uuid.uuid4())
    state.note(Text(f"Idempotency-Key: {key} (pass --idempotency-key to retry safely)"))
    accepted = state.client.post(TENANTS, body, headers={"Idempotency-Key": key})
    tenant_id = str(accepted.data.get("id") or subdomain)
    if not wait:
        _accepted(state, tenant_id, accepted)
        return
    final = follow(state, tenant_id, PROVISIONING, timeout=timeout, interval=poll_interval)
    attributes = final["data"]["attributes"]
    password = accepted.attributes.get("admin_temporary_password")
    if password and not attributes.get("admin_temporary_password"):
        attributes["admin_temporary_password"] = password
    _finish(state, tenant_id, PROVISIONING, final, _provision_summary)


def _accepted(state: State, tenant_id: str, accepted: Answer) -> None:
    """Report a 202 without following the workflow."""
    if state.as_json:
        state.emit(accepted.body)
        return
    status = render.status(accepted.attributes.get("status"))
    state.out.print(Text.assemble(f"Tenant {tenant_id} accepted: ", status))
    state.out.print(Text(f"follow it with: dotmac tenants show {tenant_id}", style="dim"))


def _finish(
    state: State,
    tenant_id: str,
    workflow: Workflow,
    final: Json,
    summary: Callable[[Json], list[Any]],
) -> None:
    """Print how a followed workflow ended; exit 1 unless it succeeded."""
    data = final["data"]
    attributes = data["attributes"]
    status = str(attributes.get("status"))
    what = f"{workflow.verb} {tenant_id}"
    if status != workflow.success:
        reason = attributes.get("failure_reason") or "no reason given"
        state.fail(status, f"{what} stopped ({status}): {reason}", body=final)
    if state.as_json:
        state.emit(final)
        return
    state.out.print(Text.assemble(f"{what}: ", render.status(status)))
    state.out.print(render.fields(summary(data)))


def _provision_summary(data: Json) -> list[Any]:
    attributes = data["attributes"]
    rows: list[Any] = [
        ("tenant", data.get("id")),
        ("name", attributes.get("name")),
        ("plan", attributes.get("plan")),
        ("apps", attributes.get("apps")),
        ("licence_id", attributes.get("licence_id")),
        ("licence_expires_at", attributes.get("licence_expires_at")),
        ("admin", attributes.get("admin_email")),
    ]
    if attributes.get("admin_temporary_password"):
        rows.append(("temporary password", attributes["admin_temporary_password"]))
    return rows


@tenants.command("list")
@guarded
def list_tenants(
    ctx: typer.Context,
    status: Annotated[
        Status | None, typer.Option(case_sensitive=False, help="Only tenants in this status.")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, max=200, help="Page size.")] = None,
    cursor: Annotated[str | None, typer.Option(help="Start from this page cursor.")] = None,
    follow_all: Annotated[bool, typer.Option("--all", help="Follow every page.")] = False,
) -> None:
    """List tenants (one page, or every page with --all)."""
    state = _state(ctx)
    items: list[Json] = []
    while True:
        page = state.client.get(
            TENANTS, status=status.value if status else None, limit=limit, cursor=cursor
        )
        items += page.body.get("data") or []
        cursor = (page.body.get("meta") or {}).get("next_cursor")
        if not (follow_all and cursor):
            break
    if state.as_json:
        state.emit({**page.body, "data": items})
        return
    state.out.print(render.tenants_table(items))
    if cursor:
        state.out.print(Text(f"more: --cursor {cursor} (or --all)", style="dim"))


@tenants.command()
@guarded
def show(ctx: typer.Context, tenant_id: TenantArg) -> None:
    """Show a tenant and its step history."""
    state = _state(ctx)
    answer = state.client.get(tenant_path(tenant_id))
    if state.as_json:
        state.emit(answer.body)
        return
    state.out.print(render.tenant_fields(answer.data))
    state.out.print(render.steps_table(answer.attributes.get("steps") or []))


def _act(state: State, tenant_id: str, action: str, body: Json) -> None:
    answer = state.client.post(tenant_path(tenant_id, action), body)
    if state.as_json:
        state.emit(answer.body)
        return
    state.out.print(
        Text.assemble(f"Tenant {tenant_id} is ", render.status(answer.attributes.get("status")))
    )


@tenants.command()
@guarded
def suspend(
    ctx: typer.Context,
    tenant_id: TenantArg,
    reason: Annotated[str, typer.Option(help="Why (recorded and shown to the tenant).")],
) -> None:
    """Suspend a tenant: its users can no longer sign in or call any app."""
    _act(_state(ctx), tenant_id, "suspend", {"reason": reason})


@tenants.command()
@guarded
def reactivate(ctx: typer.Context, tenant_id: TenantArg) -> None:
    """Reactivate a suspended tenant."""
    _act(_state(ctx), tenant_id, "reactivate", {})


@tenants.command()
@guarded
def deprovision(
    ctx: typer.Context,
    *,
    tenant_id: TenantArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    wait: WaitOption = True,
    timeout: TimeoutOption = 120.0,
    poll_interval: IntervalOption = 0.25,
) -> None:
    """Export a tenant's data, then purge it and release its subdomain (irreversible)."""
    state = _state(ctx)
    current = state.client.get(tenant_path(tenant_id))
    if not yes:
        typer.confirm(
            f"Deprovision tenant {tenant_id} ({current.attributes.get('name')}, "
            f"{current.attributes.get('status')})? Its data is exported, then purged",
            abort=True,
            err=True,
        )
    accepted = state.client.post(tenant_path(tenant_id, "deprovision"), {})
    if not wait:
        _accepted(state, tenant_id, accepted)
        return
    final = follow(
        state,
        tenant_id,
        DEPROVISIONING,
        timeout=timeout,
        interval=poll_interval,
        before=current.attributes.get("steps") or [],
    )
    _finish(state, tenant_id, DEPROVISIONING, final, _deprovision_summary)


def _deprovision_summary(data: Json) -> list[Any]:
    return [
        ("tenant", data.get("id")),
        ("export_location", data["attributes"].get("export_location")),
    ]


# --- billing runs -----------------------------------------------------------------------------


def run_path(run_id: str, action: str = "") -> str:
    """The URL path of one billing run, or of one of its actions."""
    path = f"{BILLING_RUNS}/{quote(run_id, safe='')}"
    return f"{path}/{action}" if action else path


def _period(period: str) -> str:
    if not PERIOD.fullmatch(period):
        raise typer.BadParameter(f"{period!r} is not a month as YYYY-MM (e.g. 2026-11)")
    return period


def _run_over(attributes: Json) -> bool:
    """No invoice left to make (a QUEUED run has not counted its tenants yet)."""
    return attributes.get("status") != "QUEUED" and not attributes.get("pending")


def follow_run(state: State, first: Json, *, timeout: float, interval: float) -> Json:
    """Poll a billing run, from the answer `first`, until no invoice is pending."""
    body = first
    run_id = str(body["data"]["id"])
    deadline = time.monotonic() + timeout
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[green]{task.fields[done]} done[/] [red]{task.fields[failed]} failed[/]"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=state.out, transient=True, disable=state.as_json) as bar:
        task = bar.add_task(f"Billing run {run_id}", total=None, done=0, failed=0)
        while True:
            attributes: Json = (body.get("data") or {}).get("attributes") or {}
            done, failed = int(attributes.get("done") or 0), int(attributes.get("failed") or 0)
            status = str(attributes.get("status"))
            bar.update(
                task,
                total=int(attributes.get("total") or 0),
                completed=done + failed,
                description=f"Billing run {run_id} · {status}",
                done=done,
                failed=failed,
            )
            if _run_over(attributes):
                return body
            if time.monotonic() >= deadline:
                raise CliFailure(
                    "WAIT_TIMEOUT",
                    f"billing run {run_id} still {status} ({attributes.get('pending')} pending) "
                    f"after {timeout:g}s; check later with `dotmac billing show {run_id}`",
                )
            time.sleep(interval)
            body = state.client.get(run_path(run_id)).body


def _run_report(state: State, answer: Json, *, wait: bool, timeout: float, interval: float) -> None:
    """Follow a run (unless not `wait`) and print its figures; exit 1 if invoices failed."""
    if not wait:
        _print_run(state, answer, f"follow it with: dotmac billing show {answer['data']['id']}")
        return
    final = follow_run(state, answer, timeout=timeout, interval=interval)
    run_id = final["data"]["id"]
    attributes = final["data"]["attributes"]
    failed = int(attributes.get("failed") or 0)
    if not (failed and state.as_json):  # on failure, --json prints the run through fail()
        _print_run(state, final)
    if not failed:
        return
    state.note(Text(f"retry the failed invoices with: dotmac billing redrive {run_id}"))
    total = attributes.get("total")
    state.fail("INVOICES_FAILED", f"{failed} of {total} invoices failed in {run_id}", body=final)


def _print_run(state: State, body: Json, hint: str = "") -> None:
    if state.as_json:
        state.emit(body)
        return
    data = body["data"]
    status = render.status(data["attributes"].get("status"))
    state.out.print(Text.assemble(f"Billing run {data['id']}: ", status))
    state.out.print(render.run_fields(data))
    if hint:
        state.out.print(Text(hint, style="dim"))


RunArg = Annotated[str, typer.Argument(metavar="RUN_ID", help="The billing run id.")]


@billing.command("run")
@guarded
def start_run(
    ctx: typer.Context,
    *,
    period: Annotated[str, typer.Option(callback=_period, help="The month to bill, as YYYY-MM.")],
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            help="Names the run: the same key follows the same run (default: run-PERIOD)."
        ),
    ] = None,
    wait: WaitOption = True,
    timeout: TimeoutOption = 600.0,
    poll_interval: IntervalOption = 0.5,
) -> None:
    """Bill every active tenant for a month and follow the run until no invoice is pending."""
    state = _state(ctx)
    key = idempotency_key or f"run-{period}"
    state.note(Text(f"Idempotency-Key: {key} (the same key again follows the same run)"))
    accepted = state.client.post(BILLING_RUNS, {"period": period}, headers={"Idempotency-Key": key})
    _run_report(state, accepted.body, wait=wait, timeout=timeout, interval=poll_interval)


@billing.command("show")
@guarded
def show_run(ctx: typer.Context, run_id: RunArg) -> None:
    """Show a billing run's figures."""
    state = _state(ctx)
    _print_run(state, state.client.get(run_path(run_id)).body)


@billing.command("redrive")
@guarded
def redrive_run(
    ctx: typer.Context,
    *,
    run_id: RunArg,
    wait: WaitOption = True,
    timeout: TimeoutOption = 600.0,
    poll_interval: IntervalOption = 0.5,
) -> None:
    """Queue a run's failed invoices again and follow the run until none is pending."""
    state = _state(ctx)
    answer = state.client.post(run_path(run_id, "redrive"), {})
    _run_report(state, answer.body, wait=wait, timeout=timeout, interval=poll_interval)
