"""Billing: runs, invoices, payments, dunning (HTTP routes only)."""

from dotmac.core.api import Api

api = Api("billing")
app = api.app
