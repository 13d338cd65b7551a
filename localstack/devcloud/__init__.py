"""devcloud: the embedded local cloud (moto + gateway + pollers + scheduler) behind `make run`.

This package lives in `localstack/` next to the LocalStack compose file; it is named
`devcloud` so it never shadows the real `localstack` package.
"""
