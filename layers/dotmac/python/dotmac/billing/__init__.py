"""Billing: billing accounts, invoices, payments, dunning, commissions."""
