"""Identity: login, tokens, users, roles and audit (HTTP routes only)."""

from dotmac.core.api import Api

api = Api("identity")
app = api.app
