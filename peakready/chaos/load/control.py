"""Chaos Toolkit control: order load with a ledger, flowing for the whole experiment.

Declare it in an experiment's ``controls``::

    controls:
      - name: load
        provider:
          type: python
          module: peakready.chaos.load.control
          arguments: {orders_per_s: 10, reads_per_s: 24, searches_per_s: 6}

Before the experiment it empties the run folder and starts the headless Locust
generator (its own process, 127.0.0.1 only on the lab, bounded in rate, count and
time) and waits for its first success, so that the steady-state hypothesis runs with
load flowing; after the experiment — also after a failure or Ctrl-C — it stops it.

Rollbacks are unconditional: every experiment declares ``runtime.rollbacks.strategy:
always``; and should no rollback have run at all (a second Ctrl-C during them), this
control restores the environment itself after the experiment.
"""

from __future__ import annotations

import logging
from typing import Any

from chaoslib.exceptions import ActivityFailed, InterruptExecution
from chaoslib.types import Configuration, Experiment, Journal, Secrets

from peakready.chaos import shared
from peakready.errors import PeakreadyError
from peakready.load import process
from peakready.load.settings import LoadSettings, loopback_only

logger = logging.getLogger("chaostoolkit")

# The generator started by this control, keyed by run folder: the one piece of state a
# control must keep between its before- and after-experiment hooks.
_running: dict[str, process.LoadProcess] = {}


def before_experiment_control(
    context: Experiment,
    configuration: Configuration = None,
    secrets: Secrets = None,
    orders_per_s: float = 10.0,
    reads_per_s: float = 24.0,
    searches_per_s: float = 6.0,
    duration_s: float = 300.0,
    max_orders: int = 5000,
    warmup_s: float = 3.0,
    **kwargs: Any,
) -> None:
    if context.get("dry"):
        logger.info("Dry run: no load is sent")
        return
    try:
        run = shared.run_dir(configuration)
        process.stop_stray(run)
        process.reset_run_dir(run)
        endpoint = str(shared.driver(configuration, secrets).outputs()["endpoint"]).rstrip("/")
        loopback_only(endpoint, shared.target_of(configuration))
        settings = LoadSettings(
            endpoint=endpoint,
            orders_per_s=float(orders_per_s),
            reads_per_s=float(reads_per_s),
            searches_per_s=float(searches_per_s),
            duration_s=float(duration_s),
            max_orders=int(max_orders),
        )
        _running[str(run)] = process.start(settings, run, warmup_s=float(warmup_s))
    except OSError as exc:
        raise InterruptExecution(f"load: cannot use the run folder: {exc}") from None
    except (PeakreadyError, ActivityFailed, KeyError) as exc:
        raise InterruptExecution(f"load: cannot start: {exc}") from None
    logger.info(f"Load flowing against {endpoint}: {settings.total_per_s:g} requests/s")


def after_experiment_control(
    context: Experiment,
    state: Journal = None,
    configuration: Configuration = None,
    secrets: Secrets = None,
    **kwargs: Any,
) -> None:
    run = shared.run_dir(configuration)
    load = _running.pop(str(run), None)
    if load is not None:
        process.stop(load)
        logger.info("Load stopped")
    if state is not None and "rollbacks" not in state and not context.get("dry"):
        logger.warning("No rollback ran: restoring the environment")
        try:
            shared.driver(configuration, secrets).restore()
        except ActivityFailed as exc:
            logger.error(f"restore failed: {exc}")
