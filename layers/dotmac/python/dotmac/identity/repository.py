"""Identity data access: users, email reservations, custom roles, refresh-token families."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from pynamodb.exceptions import UpdateError

from dotmac.core.errors import AuthenticationError, NotFoundError
from dotmac.core.pagination import PageRequest
from dotmac.core.repository import Page, TenantRepository, query_page
from dotmac.core.unit_of_work import UnitOfWork
from dotmac.identity.models import EmailItem, RefreshFamilyItem, RoleItem, UserItem
from dotmac.identity.tokens import REFRESH_TOKEN_SECONDS, RefreshToken


def now_utc() -> datetime:
    return datetime.now(UTC)


class UserRepository(TenantRepository):
    """Users of one tenant (every key built from the context's tenant)."""

    def user_key(self, user_id: str) -> tuple[str, str]:
        return self.key("USER"), f"USER#{user_id}"

    def get(self, user_id: str) -> UserItem:
        """One GetItem; NotFoundError if absent."""
        try:
            return UserItem.get(*self.user_key(user_id))
        except UserItem.DoesNotExist as exc:
            raise NotFoundError(f"user {user_id} not found") from exc

    def find_by_email(self, email: str) -> UserItem | None:
        """One Query on GSI1 (`T#t#USER_EMAIL` / email)."""
        same_email: Any = UserItem.GSI1SK == email  # noqa: SIM300 - a key condition
        for user in UserItem.gsi1.query(self.key("USER_EMAIL"), same_email, limit=1):
            return user if isinstance(user, UserItem) else None
        return None

    def page(self, page: PageRequest) -> Page[UserItem]:
        return query_page(UserItem, self.key("USER"), page)

    def new_user(self, user_id: str, email: str, **attributes: Any) -> UserItem:
        pk, sk = self.user_key(user_id)
        now = now_utc()
        return UserItem(
            pk,
            sk,
            GSI1PK=self.key("USER_EMAIL"),
            GSI1SK=email,
            email=email,
            created_at=now,
            updated_at=now,
            **attributes,
        )

    def email_reservation(self, email: str, user_id: str) -> EmailItem:
        return EmailItem(self.key("EMAIL"), f"EMAIL#{email}", user_id=user_id)

    def add(self, uow: UnitOfWork, user: UserItem) -> None:
        """Stage a new user and its email reservation (both must be new)."""
        uow.put(user, condition=UserItem.PK.does_not_exist())
        uow.put(
            self.email_reservation(user.email, self._id(user)),
            condition=EmailItem.PK.does_not_exist(),
        )

    def remove(self, uow: UnitOfWork, user: UserItem) -> None:
        uow.delete(user)
        uow.delete(self.email_reservation(user.email, self._id(user)))

    @staticmethod
    def _id(user: UserItem) -> str:
        return user.SK.split("#", 1)[1]

    def record_failed_login(self, user: UserItem, *, max_failures: int, lock_seconds: int) -> bool:
        """Count one failure atomically; lock the account at `max_failures`. True if now locked."""
        # Counters are not part of the user's version: concurrent logins must not conflict.
        user.update(actions=[UserItem.failed_logins.add(1)], add_version_condition=False)
        if user.failed_logins >= max_failures:
            user.update(
                actions=[
                    UserItem.locked_until.set(int(time.time()) + lock_seconds),
                    UserItem.failed_logins.set(0),
                ],
                add_version_condition=False,
            )
            return True
        return False

    def record_successful_login(self, user: UserItem, *, totp_step: int | None) -> None:
        actions: list[Any] = [UserItem.failed_logins.set(0), UserItem.locked_until.remove()]
        if totp_step is not None:
            actions.append(UserItem.mfa_last_step.set(totp_step))
        user.update(actions=actions, add_version_condition=False)


class RoleRepository(TenantRepository):
    """Tenant-defined roles."""

    def role_key(self, name: str) -> tuple[str, str]:
        return self.key("ROLE"), f"ROLE#{name}"

    def get(self, name: str) -> RoleItem | None:
        try:
            return RoleItem.get(*self.role_key(name))
        except RoleItem.DoesNotExist:
            return None

    def many(self, names: list[str]) -> list[RoleItem]:
        """One BatchGetItem for several roles (missing ones are skipped)."""
        if not names:
            return []
        return list(RoleItem.batch_get([self.role_key(n) for n in names]))

    def all(self) -> list[RoleItem]:
        return list(RoleItem.query(self.key("ROLE")))

    def new_role(self, name: str, description: str, permissions: list[str]) -> RoleItem:
        return RoleItem(
            *self.role_key(name),
            description=description,
            permissions=permissions,
            created_at=now_utc(),
        )


class SessionRepository(TenantRepository):
    """Refresh-token families: create, rotate (detecting reuse), revoke."""

    def family_key(self, family: str) -> tuple[str, str]:
        return self.key("RT"), f"FAM#{family}"

    def create(self, user_id: str, token: RefreshToken) -> None:
        RefreshFamilyItem(
            *self.family_key(token.family),
            GSI1PK=self.key("USER_RT", user_id),
            GSI1SK=f"FAM#{token.family}",
            user_id=user_id,
            token_hash=token.digest,
            created_at=now_utc(),
            expires_at=int(time.time()) + REFRESH_TOKEN_SECONDS,
        ).save(condition=RefreshFamilyItem.PK.does_not_exist())

    def rotate(self, presented: RefreshToken, replacement: RefreshToken) -> str:
        """Swap the family's token for `replacement`; returns the user id.

        A spent token (hash mismatch) means the token was stolen or replayed: the whole
        family is revoked and the caller gets 401.
        """
        try:
            family = RefreshFamilyItem.get(*self.family_key(presented.family))
        except RefreshFamilyItem.DoesNotExist as exc:
            raise AuthenticationError("invalid refresh token") from exc
        if family.revoked or (family.expires_at or 0) < time.time():
            raise AuthenticationError("session has ended")
        try:
            family.update(
                actions=[
                    RefreshFamilyItem.token_hash.set(replacement.digest),
                    RefreshFamilyItem.generation.add(1),
                ],
                condition=(RefreshFamilyItem.token_hash == presented.digest)
                & (RefreshFamilyItem.revoked == False),  # noqa: E712 - a DynamoDB condition
            )
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
            self.revoke(presented.family, reason="refresh token reuse")
            raise AuthenticationError("refresh token reuse detected; session revoked") from exc
        return family.user_id

    def owner(self, family: str) -> str | None:
        try:
            return RefreshFamilyItem.get(*self.family_key(family)).user_id
        except RefreshFamilyItem.DoesNotExist:
            return None

    def revoke(self, family: str, *, reason: str) -> None:
        RefreshFamilyItem(*self.family_key(family)).update(
            actions=[
                RefreshFamilyItem.revoked.set(True),
                RefreshFamilyItem.revoked_reason.set(reason),
            ],
            condition=RefreshFamilyItem.PK.exists(),
        )

    def revoke_all(self, user_id: str, *, reason: str) -> int:
        """Revoke every session of a user (disable, delete, password change)."""
        count = 0
        for family in RefreshFamilyItem.gsi1.query(self.key("USER_RT", user_id)):
            if isinstance(family, RefreshFamilyItem) and not family.revoked:
                self.revoke(family.SK.split("#", 1)[1], reason=reason)
                count += 1
        return count
