"""The `dotmac` operator CLI: manage a DotMac platform over its HTTP API (never imports it)."""

__version__ = "0.1.0"
