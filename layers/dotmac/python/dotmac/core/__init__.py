"""Cross-cutting pieces every domain uses: settings, tenancy, errors, envelope, data access."""
