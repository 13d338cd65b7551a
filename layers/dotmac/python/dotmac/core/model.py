"""The single-table base model. Only repositories import this module (and PynamoDB)."""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from dotmac.core.tenancy import KEY_SEPARATOR, PLATFORM_PREFIXES, TENANT_ID_PATTERN

DEFAULT_TABLE_NAME = "dotmac-local-main"
# (partition, sort) attribute of the table (None) and of each index, by model attribute name.
INDEX_KEYS: dict[str | None, tuple[str, str]] = {
    None: ("PK", "SK"),
    "gsi1": ("GSI1PK", "GSI1SK"),
    "gsi2": ("GSI2PK", "GSI2SK"),
}


class _GSI1(GlobalSecondaryIndex["TableItem"]):
    class Meta:
        index_name = "GSI1"
        projection = AllProjection()

    GSI1PK = UnicodeAttribute(hash_key=True)
    GSI1SK = UnicodeAttribute(range_key=True)


class _GSI2(GlobalSecondaryIndex["TableItem"]):
    class Meta:
        index_name = "GSI2"
        projection = AllProjection()

    GSI2PK = UnicodeAttribute(hash_key=True)
    GSI2SK = UnicodeAttribute(range_key=True)


def check_partition_key(key: str) -> None:
    """Refuse a partition key outside the tenant (`T#…#`) and platform key spaces."""
    head, *rest = key.split(KEY_SEPARATOR)
    if head == "T":
        if len(rest) < 2 or not TENANT_ID_PATTERN.fullmatch(rest[0]) or not all(rest[1:]):
            raise ValueError(f"malformed tenant key (want T#<tenant>#<entity part>...): {key!r}")
        return
    if head not in PLATFORM_PREFIXES:
        raise ValueError(f"partition key outside the tenant and platform spaces: {key!r}")


_shared_lock = threading.Lock()
_shared: list[Any] = []


def shared_connection() -> Any:
    """The process's one PynamoDB `Connection` (one botocore client for every model and
    transaction; building a client parses botocore's service model, ~100 ms or more)."""
    with _shared_lock:
        if not _shared:
            from pynamodb.connection import Connection

            from dotmac.core.settings import get_settings

            _shared.append(Connection(region=get_settings().region))
        return _shared[0]


class TableItem(Model):
    """Base of every item: PK/SK, two overloaded GSIs, a TTL and the entity type.

    Subclasses set `entity`; `save` refuses keys that break the `T#{tenant}#` rule.
    """

    class Meta:
        table_name = DEFAULT_TABLE_NAME

    entity: ClassVar[str] = "item"

    PK = UnicodeAttribute(hash_key=True)
    SK = UnicodeAttribute(range_key=True)
    GSI1PK = UnicodeAttribute(null=True)
    GSI1SK = UnicodeAttribute(null=True)
    GSI2PK = UnicodeAttribute(null=True)
    GSI2SK = UnicodeAttribute(null=True)
    kind = UnicodeAttribute()
    expires_at = NumberAttribute(null=True)

    gsi1 = _GSI1()
    gsi2 = _GSI2()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kind = type(self).entity

    @classmethod
    def _get_connection(cls) -> Any:
        """PynamoDB's per-model connection, talking through the shared one."""
        table = super()._get_connection()
        shared = shared_connection()
        if table.connection is not shared:
            with _shared_lock:
                if table.table_name not in shared._tables:  # every model has the same schema
                    shared.add_meta_table(table.connection.get_meta_table(table.table_name))
            table.connection = shared
        return table

    def save(self, *args: Any, **kwargs: Any) -> Any:
        self.check_keys()
        return super().save(*args, **kwargs)

    def check_keys(self) -> None:
        """Raise ValueError unless PK and each GSI partition key obey the key-space rules."""
        check_partition_key(self.PK)
        for gsi_pk in (self.GSI1PK, self.GSI2PK):
            if gsi_pk is not None:
                check_partition_key(gsi_pk)
        # A tenant item's GSI partitions must stay in the same tenant's space.
        if self.PK.startswith("T#"):
            prefix = KEY_SEPARATOR.join(self.PK.split(KEY_SEPARATOR, 2)[:2]) + KEY_SEPARATOR
            for gsi_pk in (self.GSI1PK, self.GSI2PK):
                if gsi_pk is not None and not gsi_pk.startswith(prefix):
                    raise ValueError(f"GSI key {gsi_pk!r} leaves the tenant space of {self.PK!r}")


_bound_to: str | None = None


def ensure_bound() -> None:
    """Bind the models to the configured table once per process (first repository use)."""
    from dotmac.core.settings import get_settings

    table = get_settings().table
    if _bound_to != table:
        bind_table(table)


def bind_table(table_name: str) -> None:
    """Point every model at `table_name`."""
    global _bound_to
    _bound_to = table_name
    TableItem.Meta.table_name = table_name
    for model in _all_subclasses(TableItem):
        model.Meta.table_name = table_name
        model._connection = None
    TableItem._connection = None


def _all_subclasses(cls: type) -> list[type[Any]]:
    found: list[type[Any]] = []
    sub: type[Any]
    for sub in type.__subclasses__(cls):
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found
