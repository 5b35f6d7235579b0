"""What every AWS activity needs: the stack outputs, clients built per call, bounded waits.

Clients come from chaostoolkit-aws's :func:`chaosaws.aws_client` (region from the
``aws_region`` configuration key, credentials from the ``aws_*`` secrets, profile and
assumed role as chaostoolkit-aws documents them); nothing here keeps a client between
calls.

Configuration keys read here (all optional except the region):

``peakready_outputs`` (a mapping) or ``peakready_outputs_file`` (a JSON file): the stack
outputs of DESIGN §3; without either, ``pulumi stack output --json --stack
<peakready_stack>`` when the ``pulumi`` CLI is on PATH. ``peakready_aws_timeout_s``
(default 900) bounds every wait, ``peakready_aws_poll_s`` (default 10) paces it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from botocore.exceptions import ClientError
from chaosaws import aws_client
from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from peakready.topology import OUTPUT_KEYS, REPO_ROOT

__all__: list[str] = []  # helpers only: no Chaos Toolkit activities here


#: Tag put on everything peakready creates in an account (FIS templates, snapshots…).
TAG_STACK = "peakready:stack"
TAG_FAULT = "peakready:fault"
TAG_AZ = "peakready:az"

DEFAULT_TIMEOUT_S = 900.0
DEFAULT_POLL_S = 10.0

T = TypeVar("T")


class StackOutputs:
    """The stack outputs and where they were read from (named in every error)."""

    def __init__(self, values: dict[str, Any], source: str) -> None:
        self.values = values
        self.source = source

    def require(self, key: str) -> Any:
        """The value of ``key``; ActivityFailed naming the key and the source when absent."""
        value = self.values.get(key)
        if value in (None, "", []):
            raise ActivityFailed(
                f"stack outputs: '{key}' is missing from {self.source}; expected the outputs "
                f"of DESIGN §3 ({', '.join(OUTPUT_KEYS)})"
            )
        return value

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)


def load_outputs(configuration: Configuration = None) -> StackOutputs:
    """Read the stack outputs named by the configuration (see the module docstring)."""
    cfg = configuration or {}
    inline = cfg.get("peakready_outputs")
    if inline is not None:
        return _checked(inline, "configuration key 'peakready_outputs'")
    path = cfg.get("peakready_outputs_file")
    if path:
        return _checked(_read_json_file(Path(str(path))), f"outputs file {path}")
    stack = cfg.get("peakready_stack")
    if not stack:
        raise ActivityFailed(
            "reading stack outputs: set 'peakready_outputs_file' (a JSON file of the stack "
            "outputs) or 'peakready_stack' in the configuration"
        )
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        raise ActivityFailed(
            f"reading stack outputs of stack '{stack}': no 'peakready_outputs_file' in the "
            "configuration and no pulumi CLI on PATH"
        )
    return _checked(_pulumi_outputs(pulumi, str(stack)), f"pulumi stack output of '{stack}'")


def client(service: str, configuration: Configuration = None, secrets: Secrets = None) -> Any:
    """A boto3 client for ``service``, built for this call by chaostoolkit-aws."""
    return aws_client(service, configuration, secrets)


def stack_role_arn(
    role_name: str, configuration: Configuration = None, secrets: Secrets = None
) -> str | None:
    """The ARN of the stack's IAM role ``role_name`` (created by ``infra/``), if it exists."""

    try:
        role = client("iam", configuration, secrets).get_role(RoleName=role_name)
    except ClientError:
        return None
    return str(role["Role"]["Arn"])


def timeout_s(configuration: Configuration = None) -> float:
    return float((configuration or {}).get("peakready_aws_timeout_s", DEFAULT_TIMEOUT_S))


def poll_s(configuration: Configuration = None) -> float:
    return float((configuration or {}).get("peakready_aws_poll_s", DEFAULT_POLL_S))


def wait_for(
    check: Callable[[], T | None],
    what: str,
    configuration: Configuration = None,
    timeout: float | None = None,
) -> T:
    """Call ``check`` until it returns something other than None; bounded in time.

    Raises ActivityFailed("<what>: not reached after N s") on timeout.
    """
    limit = timeout_s(configuration) if timeout is None else timeout
    pause = poll_s(configuration)
    deadline = time.monotonic() + limit
    while True:
        result = check()
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            raise ActivityFailed(f"{what}: not reached after {limit:.0f} s")
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))


def error_text(exc: Exception) -> str:
    """``Code: message`` of a botocore ClientError, else the exception's text."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        err = response.get("Error", {})
        return f"{err.get('Code', 'Error')}: {err.get('Message', '')}".strip()
    return str(exc)


# private


def _checked(values: Any, source: str) -> StackOutputs:
    if not isinstance(values, dict):
        raise ActivityFailed(f"reading stack outputs: {source} is not a JSON object")
    target = values.get("target")
    if target not in (None, "aws"):
        raise ActivityFailed(
            f"reading stack outputs: {source} has target '{target}', expected 'aws'"
        )
    return StackOutputs(values, source)


def _read_json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ActivityFailed(f"reading stack outputs: {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ActivityFailed(f"reading stack outputs: {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ActivityFailed(f"reading stack outputs: {path}: not JSON ({exc})") from None


def _pulumi_outputs(pulumi: str, stack: str) -> Any:
    try:
        done = subprocess.run(
            [pulumi, "stack", "output", "--json", "--stack", stack],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ActivityFailed(f"pulumi stack output --stack {stack}: timed out") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise ActivityFailed(f"pulumi stack output --stack {stack}: {last}")
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise ActivityFailed(f"pulumi stack output --stack {stack}: not JSON ({exc})") from None
