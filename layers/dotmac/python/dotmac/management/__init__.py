"""Management plane: tenants, catalog, plans, subscriptions, licences."""
