"""Rich renderables for tenants, workflow steps, billing runs and errors."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from dotmac_cli.client import ApiError, Json

STATUS_STYLES = {
    "ACTIVE": "bold green",
    "FAILED": "bold red",
    "SUSPENDED": "yellow",
    "DEPROVISIONING": "magenta",
    "DEPROVISIONED": "dim",
    "COMPLETED": "bold green",
}
OUTCOMES = {"ok": ("✓", "green"), "failed": ("✗", "red"), "compensated": ("↩", "yellow")}
HIDDEN_FIELDS = {"steps"}


def value(raw: Any) -> str:
    """One attribute as text: lists joined, missing values as a dash."""
    if raw is None or raw == "":
        return "-"
    if isinstance(raw, list | tuple | set):
        return ", ".join(str(v) for v in raw) or "-"
    return str(raw)


def status(raw: Any) -> Text:
    """A tenant status, coloured."""
    text = value(raw)
    return Text(text, style=STATUS_STYLES.get(text, "cyan"))


def step_line(step: Json) -> Text:
    """One workflow step as it appears: mark, name, time and detail."""
    mark, style = OUTCOMES.get(str(step.get("outcome")), ("•", "white"))
    line = Text(f"  {mark} ", style=style)
    line.append(f"{value(step.get('step')):<20}", style=style)
    line.append(f" {value(step.get('at'))}", style="dim")
    if step.get("detail"):
        line.append(f"  {step['detail']}")
    return line


def steps_table(steps: Iterable[Json]) -> Table:
    """A tenant's step history."""
    table = Table(title="Step history", title_justify="left")
    for column in ("#", "step", "outcome", "at", "detail"):
        table.add_column(column)
    for number, step in enumerate(steps, 1):
        _mark, style = OUTCOMES.get(str(step.get("outcome")), ("•", "white"))
        table.add_row(
            str(number),
            value(step.get("step")),
            Text(value(step.get("outcome")), style=style),
            value(step.get("at")),
            value(step.get("detail")),
        )
    return table


def tenants_table(items: Iterable[Json]) -> Table:
    """Tenants, one per row."""
    table = Table()
    for column in ("id", "name", "status", "plan", "apps", "created_at"):
        table.add_column(column, no_wrap=column in {"id", "status"})
    for item in items:
        attributes = item.get("attributes") or {}
        table.add_row(
            value(item.get("id")),
            value(attributes.get("name")),
            status(attributes.get("status")),
            value(attributes.get("plan")),
            value(attributes.get("apps")),
            value(attributes.get("created_at")),
        )
    return table


def fields(rows: Iterable[tuple[str, Any]]) -> Table:
    """Key/value pairs in two columns."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for key, raw in rows:
        table.add_row(key, status(raw) if key == "status" else Text(value(raw)))
    return table


def tenant_fields(data: Json) -> Table:
    """Every attribute of one tenant (its steps go in their own table)."""
    attributes: Json = data.get("attributes") or {}
    rows = [("id", data.get("id"))]
    rows += [(k, v) for k, v in attributes.items() if k not in HIDDEN_FIELDS]
    return fields(rows)


def run_fields(data: Json) -> Table:
    """A billing run's figures: period, status and its invoices done, failed and pending."""
    attributes: Json = data.get("attributes") or {}
    keys = ("period", "status", "total", "done", "failed", "pending", "created_at")
    return fields([("run", data.get("id")), *((k, attributes.get(k)) for k in keys)])


def error(exc: ApiError) -> Group:
    """An API error: status, code, message, field details and request id, in red."""
    lines = [Text(f"Error {exc.status} {exc.code}: {exc.message}", style="bold red")]
    for detail in exc.details:
        field = detail.get("field")
        prefix = f"{field}: " if field else ""
        lines.append(Text(f"  • {prefix}{value(detail.get('message'))}", style="red"))
    if exc.request_id:
        lines.append(Text(f"  request id: {exc.request_id}", style="red"))
    return Group(*lines)
