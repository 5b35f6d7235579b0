"""Run a Pulumi program in-process under mocks and record every resource it declares.

This module imports only the standard library, PyYAML and the Pulumi SDK, never the
rest of ``peakready``: ``peakready preview --against REF`` runs it as a script against
an older checkout whose ``peakready`` package may differ from this one.

Usage as a script::

    python runner.py --root DIR --stack S --out plan.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import os
import runpy
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

PLAN_FORMAT = 1
SECRET = "[secret]"
UNKNOWN = "[unknown]"
MOCK_ACCOUNT = "123456789012"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def mask(value: Any) -> Any:
    """``value`` with every secret replaced by ``[secret]`` and unknowns by ``[unknown]``."""
    if isinstance(value, dict):
        if value.get("4dabf18193072939515e22adb298388d") == _SECRET_SIG:
            return SECRET
        return {key: mask(item) for key, item in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [mask(item) for item in value]
    if value == _UNKNOWN:
        return UNKNOWN
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _short(token: str) -> str:
    return token.split(":")[-1].split("/")[-1]


def computed_outputs(token: str, name: str, inputs: dict[str, Any], region: str) -> dict[str, Any]:
    """What the provider would compute for a resource: deterministic, derived from its name."""
    digest = hashlib.sha1(f"{token}::{name}".encode()).hexdigest()[:8]
    kind = _short(token)
    outputs: dict[str, Any] = {"arn": f"arn:aws:mock:{region}:{MOCK_ACCOUNT}:{kind}/{name}"}
    ident = inputs.get("identifier") or inputs.get("clusterIdentifier") or name
    if token == "aws:lb/loadBalancer:LoadBalancer":
        outputs |= {
            "dnsName": f"{name}-{digest}.{region}.elb.amazonaws.com",
            "arnSuffix": f"app/{name}/{digest}",
        }
    elif token == "aws:lb/targetGroup:TargetGroup":
        outputs |= {"arnSuffix": f"targetgroup/{name}/{digest}"}
    elif token == "aws:rds/instance:Instance":
        outputs |= {
            "identifier": ident,
            "address": f"{ident}.{digest}.{region}.rds.amazonaws.com",
            "masterUserSecrets": [
                {"secretArn": f"arn:aws:secretsmanager:{region}:{MOCK_ACCOUNT}:secret:rds!{ident}"}
            ],
        }
    elif token == "aws:rds/cluster:Cluster":
        host = f"{ident}.cluster-{digest}.{region}.rds.amazonaws.com"
        outputs |= {
            "clusterIdentifier": ident,
            "endpoint": host,
            "readerEndpoint": host.replace(".cluster-", ".cluster-ro-"),
            "masterUserSecrets": [
                {"secretArn": f"arn:aws:secretsmanager:{region}:{MOCK_ACCOUNT}:secret:rds!{ident}"}
            ],
        }
    elif token == "aws:elasticache/replicationGroup:ReplicationGroup":
        group = inputs.get("replicationGroupId", name)
        outputs |= {
            "replicationGroupId": group,
            "primaryEndpointAddress": f"master.{group}.{digest}.cache.amazonaws.com",
        }
    elif token == "aws:opensearch/domain:Domain":
        domain = inputs.get("domainName", name)
        outputs |= {
            "domainName": domain,
            "endpoint": f"vpc-{domain}-{digest}.{region}.es.amazonaws.com",
        }
    elif token == "aws:ec2/launchTemplate:LaunchTemplate":
        outputs |= {"latestVersion": 1}
    elif token == "random:index/randomPassword:RandomPassword":
        outputs |= {"result": f"mock-{digest}"}
    if "name" not in inputs and token.startswith(
        ("aws:iam/", "aws:autoscaling/", "aws:backup/", "aws:ec2/securityGroup:", "aws:rds/")
    ):
        outputs["name"] = name
    return outputs


def _load_mocks() -> tuple[Any, Any]:
    # Imported here: in the preview's own process, after the slim imports.
    import pulumi
    from pulumi.runtime.mocks import MockMonitor

    class Mocks(pulumi.runtime.Mocks):
        """Deterministic ids and outputs; inputs come back as outputs, as after a create."""

        def __init__(self, region: str = "eu-central-1") -> None:
            self.region = region

        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
            outputs = computed_outputs(args.typ, args.name, args.inputs, self.region)
            return f"{args.name}-id", {
                **outputs,
                **args.inputs,
                **{k: v for k, v in outputs.items() if k not in args.inputs or k == "arn"},
            }

        def call(
            self, args: pulumi.runtime.MockCallArgs
        ) -> tuple[dict, list[tuple[str, str]] | None]:
            if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
                return {
                    "accountId": MOCK_ACCOUNT,
                    "id": MOCK_ACCOUNT,
                    "userId": "mock",
                    "arn": f"arn:aws:iam::{MOCK_ACCOUNT}:user/mock",
                }, []
            if args.token == "aws:elb/getServiceAccount:getServiceAccount":
                return {"id": "054676820949", "arn": "arn:aws:iam::054676820949:root"}, []
            return {}, []

    class RecordingMonitor(MockMonitor):
        """The mock monitor, also noting each registration's parent and inputs."""

        def __init__(self, mocks: Mocks) -> None:
            super().__init__(mocks)
            self.registrations: list[dict[str, Any]] = []

        def RegisterResource(self, request: Any) -> Any:
            # Imported here: in the preview's own process.
            from pulumi.runtime import rpc

            if request.type != "pulumi:pulumi:Stack":
                self.registrations.append(
                    {
                        "urn": self.make_urn(request.parent, request.type, request.name),
                        "type": request.type,
                        "name": request.name,
                        "parent_urn": request.parent,
                        "custom": bool(request.custom),
                        "protect": bool(request.protect),
                        "inputs": _plain(rpc.deserialize_properties(request.object)),
                    }
                )
            return super().RegisterResource(request)

    return Mocks, RecordingMonitor


def _plain(value: Any) -> Any:
    """Inputs as JSON: an asset becomes the SHA-256 of its text, an archive the map of
    its members (a changed canary script shows in the diff, not its whole text)."""
    import hashlib

    import pulumi

    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, pulumi.StringAsset):
        return {"asset_sha256": hashlib.sha256(value.text.encode()).hexdigest()}
    if isinstance(value, pulumi.AssetArchive):
        return {"archive": {name: _plain(member) for name, member in value.assets.items()}}
    if isinstance(value, pulumi.Asset | pulumi.Archive):
        return {"asset": type(value).__name__}
    return value


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[dict[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            self.lines.append({"level": record.levelname.lower(), "message": record.getMessage()})


def stack_config(stacks_dir: Path, stack: str) -> dict[str, Any]:
    """The ``config:`` mapping of ``Pulumi.<stack>.yaml`` (raises OSError / ValueError)."""
    document = yaml.safe_load((stacks_dir / f"Pulumi.{stack}.yaml").read_text()) or {}
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise ValueError(f"Pulumi.{stack}.yaml: 'config:' is not a mapping")
    return config


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _run_program(main: Path) -> None:
    runpy.run_path(str(main), run_name="__main__")


def _slim_imports() -> None:
    try:
        # Imported here: runs in the preview's own process, after the slim imports are installed.
        import peakready.preview.slim as slim
    except ImportError:  # a baseline runner copied next to slim.py (see --against)
        import slim  # type: ignore[no-redef]
    slim.install()


def record(
    root: Path, stack: str, program: str = "infra", stacks: Path | None = None
) -> dict[str, Any]:
    """Run ``root/<program>/__main__.py`` for ``stack`` under mocks; return the plan.

    The stack file is read from ``stacks`` (default ``root/stacks``).
    """
    # Imported here: in the preview's own process, after the slim imports.
    import pulumi
    from pulumi.runtime.settings import reset_options
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    config = stack_config(stacks or root / "stacks", stack)
    region = str(config.get("aws:region") or config.get("peakready:region") or "eu-central-1")
    env_config = {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    _slim_imports()
    mocks_class, monitor_class = _load_mocks()
    monitor = monitor_class(mocks_class(region))
    logger = logging.getLogger(f"peakready.preview.{stack}")
    logger.propagate = False
    collector = _Collector()
    logger.handlers[:] = [collector]
    error: str | None = None
    exports: dict[str, Any] = {}
    with _environ(PULUMI_CONFIG=json.dumps(env_config)):
        pulumi.runtime.set_all_config({})
        # A fresh root stack: set_mocks keeps the last one, and with it the outputs the
        # previous stack recorded in this process exported (those it does not export too).
        reset_options()
        try:
            asyncio.get_event_loop()
        except RuntimeError:  # a fresh root stack needs a loop (another test may have closed it)
            asyncio.set_event_loop(asyncio.new_event_loop())
        pulumi.runtime.set_mocks(
            mocks_class(region),
            project="peakready",
            stack=stack,
            preview=False,
            logger=logger,
            monitor=monitor,
        )
        main = root / program / "__main__.py"
        try:
            _sync_await(run_pulumi_func(lambda: _run_program(main)))
        except pulumi.RunError as exc:
            error = str(exc)
        except Exception as exc:  # the program is user code: report any failure as a line
            error = f"{type(exc).__name__}: {exc}"
            if os.environ.get("PEAKREADY_DEBUG"):
                raise
        root_resource = pulumi.runtime.get_root_resource()
        outputs = getattr(root_resource, "outputs", None) or {}
        if error is None and outputs:
            keys = sorted(outputs)
            values = _sync_await(
                pulumi.Output.all(*[outputs[k] for k in keys]).future(with_unknowns=True)
            )
            exports = {k: mask(v) for k, v in zip(keys, values or [], strict=False)}
    return build_plan(stack, monitor.registrations, exports, collector.lines, error)


def build_plan(
    stack: str,
    registrations: list[dict[str, Any]],
    exports: dict[str, Any],
    diagnostics: list[dict[str, str]],
    error: str | None,
) -> dict[str, Any]:
    """The deterministic plan: resources sorted by type and name, secrets masked."""
    by_urn = {r["urn"]: r for r in registrations}
    resources = []
    for reg in registrations:
        parent = by_urn.get(reg["parent_urn"])
        resources.append(
            {
                "key": f"{reg['type']}::{reg['name']}",
                "type": reg["type"],
                "name": reg["name"],
                "parent": f"{parent['type']}::{parent['name']}" if parent else None,
                "protect": reg["protect"],
                "inputs": mask(reg["inputs"]),
            }
        )
    resources.sort(key=lambda r: (r["type"], r["name"]))
    return {
        "format": PLAN_FORMAT,
        "stack": stack,
        "error": error,
        "diagnostics": diagnostics,
        "outputs": exports,
        "resources": resources,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, required=True, help="checkout holding infra/, stacks/")
    parser.add_argument("--stack", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(args.root))
    plan = record(args.root, args.stack)
    args.out.write_text(json.dumps(plan, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
