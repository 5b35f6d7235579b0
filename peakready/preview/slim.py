"""Import only the pulumi_aws classes a program touches (offline preview speed-up).

``import pulumi_aws.ec2`` executes ~180 modules of generated classes (≈ 1 s for EC2
alone). Under mocks the program needs a handful of them, so :func:`install` replaces
the service packages in ``sys.modules`` with a module that imports, on first access,
just the file defining the requested name (``Vpc`` → ``vpc.py``, ``*Args`` →
``_inputs.py``, ``get_x_output`` → ``get_x.py``), falling back to the full package
for anything else. It only changes how the classes are found, never which classes
are used, and is installed only by the offline preview — never under ``pulumi up``.

Standard library only: it runs inside the ``--against`` baseline runner too.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import types
from typing import Any

SERVICES = (
    "autoscaling", "backup", "cloudwatch", "ec2", "elasticache", "elb", "iam", "lb",
    "mq", "opensearch", "rds", "s3", "secretsmanager", "sns", "vpc",
)  # fmt: skip


def _candidates(name: str) -> list[str]:
    if name.endswith(("Args", "ArgsDict")):
        return ["_inputs"]
    if name[:1].islower() or name.startswith("_"):
        # A submodule (`from . import outputs`) or a function (`get_x_output` in get_x.py).
        base = name.removesuffix("_output")
        return [name] if base == name else [base]
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
    return [snake, "outputs", "_enums"]


class _SlimPackage(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        for module in _candidates(name):
            try:
                sub = importlib.import_module(f"{self.__name__}.{module}")
            except ImportError:
                continue
            if module == name:
                return sub
            if hasattr(sub, name):
                value = getattr(sub, name)
                setattr(self, name, value)
                return value
        return getattr(self._full(), name)

    def _full(self) -> types.ModuleType:
        """Anything unforeseen: execute the real package and use it from now on."""
        spec = importlib.util.find_spec(self.__name__)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[self.__name__] = module
        spec.loader.exec_module(module)
        return module


def install(provider: str = "pulumi_aws", services: tuple[str, ...] = SERVICES) -> None:
    """Replace ``provider.<service>`` packages not yet fully imported by slim ones."""
    root = importlib.import_module(provider)
    for service in services:
        name = f"{provider}.{service}"
        current = sys.modules.get(name)
        if isinstance(current, _SlimPackage) or type(current) is types.ModuleType:
            continue  # slim already, or fully imported: keep it
        # Otherwise it is pulumi's not-yet-loaded lazy module: call install() before
        # anything keeps a reference to it (the offline preview does so first thing).
        spec = importlib.util.find_spec(name) if current is None else current.__spec__
        if spec is None or spec.submodule_search_locations is None:
            continue
        slim = _SlimPackage(name)
        slim.__path__ = list(spec.submodule_search_locations)
        slim.__package__ = name
        slim.__spec__ = spec
        slim.__file__ = spec.origin
        sys.modules[name] = slim
        setattr(root, service, slim)
