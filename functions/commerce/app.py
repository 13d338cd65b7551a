"""E-commerce: catalog, orders, stock — HTTP routes only; the domain lives in the dotmac layer."""

from dotmac.core.api import Api

api = Api("commerce")
app = api.app
