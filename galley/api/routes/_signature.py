"""FastAPI reads parameters from a function's signature; generic handlers get theirs set here."""

from __future__ import annotations

import inspect
from typing import Any, Callable


def with_parameters(handler: Callable, path_names: list[str], extra: dict[str, tuple[Any, Any]]) -> Callable:
    """Give `handler(**kwargs)` a signature: str path parameters, then (annotation, default) extras."""
    params = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=str)
              for name in path_names]
    params += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                                 default=default) for name, (annotation, default) in extra.items()]
    handler.__signature__ = inspect.Signature(params)
    return handler
