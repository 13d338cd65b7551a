"""DotMac: the application code shipped as the shared Lambda layer."""
