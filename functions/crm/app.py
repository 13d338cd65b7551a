"""CRM: leads, contacts, deals — HTTP routes only; the domain lives in the dotmac layer."""

from dotmac.core.api import Api

api = Api("crm")
app = api.app
