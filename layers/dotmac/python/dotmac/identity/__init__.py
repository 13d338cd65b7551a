"""Identity: users, single sign-on tokens, roles and permissions, audit trail."""
