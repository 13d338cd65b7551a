"""Feature flags: operator-defined switches every app asks about with `is_enabled`.

A flag is on only if it is ACTIVE, not past `ends_at`, and ALL of its rules pass
(business-rules.md). Strategies: `all` (on/off for everyone), `users`, `tenants`, `plans`,
`percentage` and `gradual` (a linear ramp from 0 % at `start` to 100 % at `end`). An ACTIVE
flag that is on may also carry A/B `variants` whose percents sum to exactly 100.

Bucketing is deterministic: the subject id is the user id, falling back to the tenant id
when there is no user, and `bucket = int(sha256(f"{key}:{subject}"), 16) % 10000 / 100`;
a subject is in a rollout of `p` % when `bucket < p`. The variant uses its own hash input
(`f"{key}:variant:{subject}"`), so which variant a subject sees is independent of whether
it is in the rollout. Same flag + same subject + same time -> same answer, in every container.

Storage: every flag is one item in the single partition `FLAG` (SK = flag key), so all
flags are read with one Query. Each container keeps them for `CACHE_SECONDS` in
`cached_flags`, so evaluation in a warm container makes no DynamoDB call; mutations drop
this container's cache (other containers see the change within `CACHE_SECONDS`). Expiry
uses `ends_at`, never the table's TTL attribute (`expires_at`), so an ended flag stays
visible to operators instead of silently disappearing.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    field_validator,
    model_validator,
)

from dotmac.core.errors import ConflictError, ForbiddenError, NotFoundError
from dotmac.core.tenancy import TENANT_ID_PATTERN, TenantContext
from dotmac.management.catalog import PLANS

if TYPE_CHECKING:
    from dotmac.core.pagination import PageRequest
    from dotmac.core.repository import Page
    from dotmac.management.models import FlagItem

FLAG_PARTITION = "FLAG"
CACHE_SECONDS = 60.0
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{1,62}$")
BUCKETS = 10_000  # buckets of 0.01 %
MAX_RULES = 20
MAX_IDS = 1_000  # per users/tenants rule; keeps the item far below DynamoDB's 400 KB
MAX_VARIANTS = 20


class FlagStatus(StrEnum):
    """Whether a flag is switched on at all (its rules decide for whom)."""

    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"


class Reason(StrEnum):
    """Why `evaluate` decided as it did (stable strings, safe to log)."""

    ENABLED = "enabled"
    UNKNOWN = "unknown_flag"
    INACTIVE = "inactive"
    EXPIRED = "expired"
    RULE_FAILED = "rule_failed"


# --- who is asking, and what they get -----------------------------------------------------


@dataclass(frozen=True)
class FlagSubject:
    """Who a flag is evaluated for; `subject_id` is the user id, else the tenant id."""

    tenant_id: str
    user_id: str | None = None
    plan: str | None = None

    @property
    def subject_id(self) -> str:
        """The id percentage buckets hash: the user's id, or the tenant's when there is no user."""
        return self.user_id or self.tenant_id


@dataclass(frozen=True)
class FlagDecision:
    """The outcome of evaluating one flag for one subject at one instant."""

    enabled: bool
    variant: str | None
    reason: str


def bucket(seed: str) -> float:
    """The deterministic bucket of `seed` in [0, 100) with 0.01 steps (sha256 mod 10000 / 100)."""
    return int(hashlib.sha256(seed.encode()).hexdigest(), 16) % BUCKETS / 100


# --- operator input --------------------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _known_plans(values: list[str]) -> list[str]:
    unknown = [v for v in values if v not in PLANS]
    if unknown:
        raise ValueError(f"unknown plan(s) {', '.join(unknown)}; one of {', '.join(PLANS)}")
    return _unique(values)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_utc)]
FlagKey = Annotated[str, StringConstraints(pattern=KEY_PATTERN.pattern)]
UserId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
TenantId = Annotated[str, StringConstraints(pattern=TENANT_ID_PATTERN.pattern)]
Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AllRule(_Schema):
    """On (`value: true`) or off for every subject."""

    strategy: Literal["all"] = "all"
    value: bool

    def passes(self, key: str, subject: FlagSubject, now: datetime) -> bool:
        """True when the rule lets `subject` in."""
        return self.value


class UsersRule(_Schema):
    """On for the listed user ids only."""

    strategy: Literal["users"] = "users"
    user_ids: Annotated[list[UserId], AfterValidator(_unique)] = Field(
        min_length=1, max_length=MAX_IDS
    )

    def passes(self, key: str, subject: FlagSubject, now: datetime) -> bool:
        """True when the rule lets `subject` in."""
        return subject.user_id is not None and subject.user_id in self.user_ids


class TenantsRule(_Schema):
    """On for the listed tenants only."""

    strategy: Literal["tenants"] = "tenants"
    tenant_ids: Annotated[list[TenantId], AfterValidator(_unique)] = Field(
        min_length=1, max_length=MAX_IDS
    )

    def passes(self, key: str, subject: FlagSubject, now: datetime) -> bool:
        """True when the rule lets `subject` in."""
        return subject.tenant_id in self.tenant_ids


class PlansRule(_Schema):
    """On for tenants on one of the listed plans (keys of `catalog.PLANS`)."""

    strategy: Literal["plans"] = "plans"
    plans: Annotated[list[str], AfterValidator(_known_plans)] = Field(
        min_length=1, max_length=len(PLANS)
    )

    def passes(self, key: str, subject: FlagSubject, now: datetime) -> bool:
        """True when the rule lets `subject` in."""
        return subject.plan is not None and subject.plan in self.plans


class PercentageRule(_Schema):
    """On for a fixed, deterministic `percent` of subjects."""

    strategy: Literal["percentage"] = "percentage"
    percent: Percent

    def passes(self, key: str, subject: FlagSubject, now: datetime) -> bool:
        """True when the rule lets `subject` in."""
        return bucket(f"{key}:{subject.subject_id}") < self.percent


class GradualRule(_Schema):
    """A rollout ramping linearly from 0 % at `start` to 100 % at `end`."""

    strategy: Literal["gradual"] = "gradual"
    start: UtcDatetime
    end: UtcDatetime

    @model_validator(mode="after")
    def _start_before_end(self) -> GradualRule:
        if self.start >= self.end:
            raise ValueError("start must be before end")
        return self

    def percent_at(self, now: datetime) -> float:
        """The rollout percent at `now`: 0 before `start`, 100 from `end` on."""
        if now <= self.start:
            return 0.0
        if now >= self.end:
            return 100.0
        return (now - self.start) / (self.end - self.start) * 100

    def passes(self, key: str, subject: FlagSubject, now: datetime) -> bool:
        """True when the rule lets `subject` in."""
        return bucket(f"{key}:{subject.subject_id}") < self.percent_at(now)


Rule = Annotated[
    AllRule | UsersRule | TenantsRule | PlansRule | PercentageRule | GradualRule,
    Field(discriminator="strategy"),
]
Rules = Annotated[list[Rule], Field(min_length=1, max_length=MAX_RULES)]
_RULES: TypeAdapter[list[Rule]] = TypeAdapter(list[Rule])


def _basis_points(percent: float) -> int:
    return round(percent * 100)


class Variant(_Schema):
    """One arm of an A/B test: `percent` of the subjects the flag is on for see `name`."""

    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
    percent: Percent

    @field_validator("percent")
    @classmethod
    def _hundredths(cls, value: float) -> float:
        if not math.isclose(value * 100, _basis_points(value), abs_tol=1e-6):
            raise ValueError("at most two decimal places (buckets are 0.01 % wide)")
        return value


def _check_variants(variants: list[Variant]) -> list[Variant]:
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ValueError("variant names must be unique")
    total = sum(_basis_points(v.percent) for v in variants)
    if total != 100 * 100:
        raise ValueError(f"variant percents must sum to exactly 100, not {total / 100:g}")
    return variants


Variants = Annotated[
    list[Variant], Field(min_length=1, max_length=MAX_VARIANTS), AfterValidator(_check_variants)
]
_VARIANTS: TypeAdapter[list[Variant]] = TypeAdapter(list[Variant])


class FlagCreate(_Schema):
    """A new flag. It needs at least one rule: `{"strategy": "all", "value": true}` is "on"."""

    key: FlagKey
    description: str = Field(default="", max_length=500)
    status: FlagStatus = FlagStatus.ACTIVE
    ends_at: UtcDatetime | None = None
    rules: Rules
    variants: Variants | None = None


class FlagUpdate(_Schema):
    """A partial change; `ends_at: null` / `variants: null` clear them. `version` = expected."""

    description: str | None = Field(default=None, max_length=500)
    status: FlagStatus | None = None
    ends_at: UtcDatetime | None = None
    rules: Rules | None = None
    variants: Variants | None = None
    version: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _meaningful(self) -> FlagUpdate:
        for name in ("description", "status", "rules"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        if not self.model_fields_set - {"version"}:
            raise ValueError("nothing to update")
        return self


class Flag(FlagCreate):
    """A stored flag, parsed for evaluation (what the cache holds)."""

    version: int | None = None


# --- pure evaluation ---------------------------------------------------------------------------


def evaluate(flag: Flag, subject: FlagSubject, now: datetime) -> FlagDecision:
    """Decide `flag` for `subject` at `now` (timezone-aware); pure, deterministic, no I/O."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if flag.status is not FlagStatus.ACTIVE:
        return FlagDecision(False, None, Reason.INACTIVE.value)
    if flag.ends_at is not None and now >= flag.ends_at:
        return FlagDecision(False, None, Reason.EXPIRED.value)
    for rule in flag.rules:
        if not rule.passes(flag.key, subject, now):
            return FlagDecision(False, None, f"{Reason.RULE_FAILED.value}:{rule.strategy}")
    return FlagDecision(True, choose_variant(flag, subject), Reason.ENABLED.value)


def choose_variant(flag: Flag, subject: FlagSubject) -> str | None:
    """The variant `subject` sees when `flag` is on (None if the flag has no variants)."""
    if not flag.variants:
        return None
    position = round(bucket(f"{flag.key}:variant:{subject.subject_id}") * 100)
    cumulative = 0
    for arm in flag.variants:
        cumulative += _basis_points(arm.percent)
        if position < cumulative:
            return arm.name
    return flag.variants[-1].name  # unreachable: percents sum to 100


# --- storage -----------------------------------------------------------------------------------


def _require_operator(ctx: TenantContext) -> None:
    if not ctx.is_platform:
        raise ForbiddenError("feature flags are managed by platform operators only")


def _not_found(key: str) -> NotFoundError:
    return NotFoundError(f"flag {key} not found")


def flag_view(item: FlagItem) -> dict[str, Any]:
    """The attributes of a flag for an API response (no keys)."""
    return {
        "key": item.SK,
        "description": item.description,
        "status": item.status,
        "ends_at": item.ends_at.isoformat() if item.ends_at else None,
        "rules": list(item.rules or []),
        "variants": None if item.variants is None else list(item.variants),
        "created_at": item.created_at.isoformat(),
        "updated_at": item.updated_at.isoformat(),
        "version": item.version,
    }


def to_flag(item: FlagItem) -> Flag:
    """Parse a stored item into an evaluable `Flag` (pydantic ValidationError if corrupt)."""
    return Flag(
        key=item.SK,
        description=item.description,
        status=FlagStatus(item.status),
        ends_at=item.ends_at,
        rules=_RULES.validate_python(item.rules or []),
        variants=None if item.variants is None else _VARIANTS.validate_python(item.variants),
        version=item.version,
    )


def _after_commit_view(item: FlagItem) -> dict[str, Any]:
    """The view the item will have once the pending write (which bumps `version`) commits."""
    view = flag_view(item)
    view["version"] = (item.version or 0) + 1
    return view


def _dump_rules(rules: list[Rule]) -> list[dict[str, Any]]:
    return [rule.model_dump(mode="json") for rule in rules]


def _dump_variants(variants: list[Variant] | None) -> list[dict[str, Any]] | None:
    return None if variants is None else [v.model_dump(mode="json") for v in variants]


def get_flag(key: str) -> FlagItem:
    """Read one flag (one GetItem); NotFoundError if there is none."""
    from dotmac.core.model import ensure_bound
    from dotmac.management.models import FlagItem

    if not KEY_PATTERN.fullmatch(key):
        raise _not_found(key)
    ensure_bound()
    try:
        return FlagItem.get(FLAG_PARTITION, key)
    except FlagItem.DoesNotExist as exc:
        raise _not_found(key) from exc


def list_flags() -> list[FlagItem]:
    """Every flag, ordered by key: one Query on partition `FLAG` (follows pages if >1 MB)."""
    from dotmac.core.model import ensure_bound
    from dotmac.management.models import FlagItem

    ensure_bound()
    return list(FlagItem.query(FLAG_PARTITION))


def page_flags(page: PageRequest) -> Page[FlagItem]:
    """One page of flags for the API (`limit` + opaque cursor): exactly one Query."""
    from dotmac.core.repository import query_page
    from dotmac.management.models import FlagItem

    return query_page(FlagItem, FLAG_PARTITION, page)


def create_flag(ctx: TenantContext, data: FlagCreate) -> FlagItem:
    """Create a flag with its audit record; ConflictError if the key is taken."""
    from dotmac.core.unit_of_work import UnitOfWork
    from dotmac.management.models import FlagItem

    _require_operator(ctx)
    now = datetime.now(UTC)
    item = FlagItem(
        FLAG_PARTITION,
        data.key,
        description=data.description,
        status=data.status.value,
        ends_at=data.ends_at,
        rules=_dump_rules(data.rules),
        variants=_dump_variants(data.variants),
        created_at=now,
        updated_at=now,
    )
    uow = UnitOfWork(ctx)
    uow.put(item, condition=FlagItem.PK.does_not_exist())
    uow.audit("platform.flag.create", "flag", data.key, after=_after_commit_view(item))
    uow.commit(conflict=f"flag {data.key} already exists")
    cached_flags.forget()
    return item


def update_flag(ctx: TenantContext, key: str, changes: FlagUpdate) -> FlagItem:
    """Apply a partial change under optimistic locking; ConflictError if the flag moved on."""
    from dotmac.core.unit_of_work import UnitOfWork

    _require_operator(ctx)
    item = get_flag(key)
    if changes.version is not None and changes.version != item.version:
        raise ConflictError(
            f"flag {key} is at version {item.version}, not {changes.version}; reload and retry"
        )
    before = flag_view(item)
    fields = changes.model_fields_set
    if "description" in fields and changes.description is not None:
        item.description = changes.description
    if "status" in fields and changes.status is not None:
        item.status = changes.status.value
    if "ends_at" in fields:
        item.ends_at = changes.ends_at
    if "rules" in fields and changes.rules is not None:
        item.rules = _dump_rules(changes.rules)
    if "variants" in fields:
        item.variants = _dump_variants(changes.variants)
    item.updated_at = datetime.now(UTC)
    uow = UnitOfWork(ctx)
    uow.put(item)  # the version attribute adds `version = <read>` and bumps it
    uow.audit("platform.flag.update", "flag", key, before=before, after=_after_commit_view(item))
    uow.commit(conflict=f"flag {key} was changed meanwhile; reload and retry")
    cached_flags.forget()
    return item


def delete_flag(ctx: TenantContext, key: str, *, version: int | None = None) -> None:
    """Delete a flag with its audit record (only at `version`, when given)."""
    from dotmac.core.unit_of_work import UnitOfWork

    _require_operator(ctx)
    item = get_flag(key)
    if version is not None and version != item.version:
        raise ConflictError(f"flag {key} is at version {item.version}, not {version}")
    uow = UnitOfWork(ctx)
    uow.delete(item)  # conditional on the version read
    uow.audit("platform.flag.delete", "flag", key, before=flag_view(item))
    uow.commit(conflict=f"flag {key} was changed meanwhile; reload and retry")
    cached_flags.forget()


# --- the per-container cache ---------------------------------------------------------------------


def load_flags() -> dict[str, Flag]:
    """Every flag parsed for evaluation (one Query); one that does not parse is left out (off)."""
    from pydantic import ValidationError

    flags: dict[str, Flag] = {}
    for item in list_flags():
        try:
            flags[item.SK] = to_flag(item)
        except (ValidationError, ValueError) as exc:
            from dotmac.core.observability import get_logger

            get_logger().warning("unreadable flag left off", flag=item.SK, error=str(exc))
    return flags


class FlagCache:
    """Per-container snapshot of every flag, re-read after `ttl` seconds (thread-safe)."""

    def __init__(
        self,
        ttl: float = CACHE_SECONDS,
        *,
        loader: Callable[[], dict[str, Flag]] = load_flags,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self._loader = loader
        self._clock = clock
        self._snapshot: tuple[float, dict[str, Flag]] | None = None
        self._generation = 0
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()

    def get(self, key: str) -> Flag | None:
        """The flag `key`, or None if there is no such flag."""
        return self.all().get(key)

    def all(self) -> dict[str, Flag]:
        """Every flag by key; at most one load per `ttl` however many threads ask."""
        fresh = self._fresh()
        if fresh is not None:
            return fresh
        with self._load_lock:
            fresh = self._fresh()  # another thread may have loaded while we waited
            if fresh is not None:
                return fresh
            with self._lock:
                generation = self._generation
            started = self._clock()
            flags = self._loader()
            with self._lock:
                if generation == self._generation:  # no mutation dropped the cache meanwhile
                    self._snapshot = (started, flags)
            return flags

    def forget(self) -> None:
        """Drop the snapshot (after a mutation in this container)."""
        with self._lock:
            self._snapshot = None
            self._generation += 1

    def _fresh(self) -> dict[str, Flag] | None:
        now = self._clock()
        with self._lock:
            snapshot = self._snapshot
        if snapshot is not None and now - snapshot[0] < self.ttl:
            return snapshot[1]
        return None


cached_flags = FlagCache()


# --- what apps call -------------------------------------------------------------------------------


def _needs_plan(flag: Flag) -> bool:
    return any(isinstance(rule, PlansRule) for rule in flag.rules)


def decide(
    ctx: TenantContext, key: str, *, plan: str | None = None, now: datetime | None = None
) -> FlagDecision:
    """Evaluate flag `key` for the caller from the cache; an unknown flag is off."""
    flag = cached_flags.get(key)
    if flag is None:
        return FlagDecision(False, None, Reason.UNKNOWN.value)
    if plan is None and _needs_plan(flag):  # the tenant read happens only if a rule needs it
        from dotmac.management.repository import cached_tenants

        tenant = cached_tenants.get(ctx.tenant_id)
        plan = tenant.plan if tenant is not None else None
    subject = FlagSubject(tenant_id=ctx.tenant_id, user_id=ctx.user_id or None, plan=plan)
    return evaluate(flag, subject, now or datetime.now(UTC))


def is_enabled(ctx: TenantContext, key: str, *, plan: str | None = None) -> bool:
    """True when flag `key` is on for the caller (unknown flags are off)."""
    return decide(ctx, key, plan=plan).enabled


def variant(ctx: TenantContext, key: str, plan: str | None = None) -> str | None:
    """The caller's variant of flag `key`, or None when the flag is off, unknown or has none."""
    return decide(ctx, key, plan=plan).variant
