"""ISP Framework: subscribers, services, IPAM, network, field work (HTTP routes only)."""

from dotmac.core.api import Api

api = Api("isp")
app = api.app
