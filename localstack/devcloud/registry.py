"""Loads the Chalice apps of `functions/` and resolves Lambda handlers by function name.

Each `functions/<app>/app.py` is imported under its own module name
(`dotmac_functions_<app>`), so several apps live in one process without clashing.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

from infra.resources import FUNCTIONS_DIR, STACK, Function

_lock = threading.Lock()


def load_app_module(app: str) -> ModuleType:
    """Import `functions/<app>/app.py` once, as module `dotmac_functions_<app>`."""
    module_name = f"dotmac_functions_{app}"
    with _lock:
        if module_name in sys.modules:
            return sys.modules[module_name]
        path = FUNCTIONS_DIR / app / "app.py"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"no app at {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
        return module


def chalice_app(app: str) -> Any:
    """The Chalice app object of `functions/<app>/app.py`."""
    return load_app_module(app).app


def handler(function: Function) -> Any:
    """The callable Lambda would invoke for `function`: `(event, context) -> result`."""
    return getattr(load_app_module(function.app), function.handler)


def handler_for(function_name: str) -> Any:
    """Resolve a Lambda function by its logical name in `infra.resources.STACK`."""
    return handler(STACK.function(function_name))
