"""Management plane: catalog, plans, tenants, platform operations — HTTP routes only."""

from dotmac.core.api import Api

api = Api("management")
# The management plane fronts the platform, so it also answers the root `/health/*` probes.
api.add_health_routes("")
app = api.app
