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

A peak rehearsal passes ``peak`` instead of the steady rates::

    arguments:
      peak: {surge: 1.5, baseline_s: 10, ramp_s: 15, hold_s: 30, flash_k: 20}

and the load follows the stack's peak profile (:func:`peakready.load.shape.peak_profile`):
on the lab the forecast peak is what the lab's group serves at its minimum size (its
instances x the capacity one instance showed in a short probe); on AWS it is the
forecast itself. The configuration's ``peakready_load_workers`` (local worker
processes) and ``peakready_remote_workers`` (``peakready load worker`` elsewhere, joining
``peakready_master_bind``) make the generator a Locust master.

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
from peakready.load.shape import forecast_mix, peak_profile

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
    peak: dict[str, Any] | None = None,
    **kwargs: Any,
) -> None:
    if context.get("dry"):
        logger.info("Dry run: no load is sent")
        return
    config = configuration or {}
    try:
        run = shared.run_dir(configuration)
        process.stop_stray(run)
        process.reset_run_dir(run)
        drv = shared.driver(configuration, secrets)
        endpoint = str(drv.outputs()["endpoint"]).rstrip("/")
        target = shared.target_of(configuration)
        loopback_only(endpoint, target)
        if peak is not None:
            if target == "lab":  # a peak starts from the group at rest, as the real one
                logger.info(f"App group reset to its resting size: {drv.reset_app_group()}")
            settings = _peak_settings(configuration, drv, endpoint, dict(peak), int(max_orders))
            warmup_s = 0.0  # the profile's baseline is the warm-up
        else:
            settings = LoadSettings(
                endpoint=endpoint,
                orders_per_s=float(orders_per_s),
                reads_per_s=float(reads_per_s),
                searches_per_s=float(searches_per_s),
                duration_s=float(duration_s),
                max_orders=int(max_orders),
            )
        remote = int(config.get("peakready_remote_workers") or 0)
        if remote and target == "lab":
            raise PeakreadyError("remote load workers: only against aws (the lab is local)")
        _running[str(run)] = process.start(
            settings,
            run,
            warmup_s=float(warmup_s),
            workers=int(config.get("peakready_load_workers") or 0),
            remote_workers=remote,
            bind=str(config.get("peakready_master_bind") or "127.0.0.1:5557"),
        )
    except OSError as exc:
        raise InterruptExecution(f"load: cannot use the run folder: {exc}") from None
    except (PeakreadyError, ActivityFailed, KeyError, ValueError, TypeError) as exc:
        raise InterruptExecution(f"load: cannot start: {exc}") from None
    if settings.profile is None:
        logger.info(f"Load flowing against {endpoint}: {settings.total_per_s:g} requests/s")
    else:
        logger.info(f"Peak load flowing against {endpoint}: {settings.profile}")


#: After the profile the baseline goes on for at most this long (the verdict's probes
#: and the rollbacks run with traffic flowing, as they would in a shop).
PEAK_TAIL_S = 300.0

#: What a peak rehearsal may set, with its default.
PEAK_KEYS: dict[str, Any] = {
    "surge": 1.5,
    "baseline_fraction": 0.1,
    "baseline_s": 10.0,
    "ramp_s": 15.0,
    "hold_s": 30.0,
    "flash_k": None,
    "flash_buyers": None,  # instead of flash_k: this many buyers in the spike
    "hot_products": 1,
    "retry_window_s": 10.0,
}


def _flash_k(model: Any, capacity: float, values: dict[str, Any], buyers: int) -> float:
    """The spike's k for ``buyers`` arriving over it: orders at the peak x (k - 1) x the
    spike's length (half the hold) = buyers."""
    if not 1 <= buyers <= 1_000_000:
        raise PeakreadyError(f"peak: flash_buyers {buyers}: expected 1 to 1000000")
    orders_at_peak = capacity * float(values["surge"]) * forecast_mix(model)["order"]
    return 1.0 + buyers / (orders_at_peak * float(values["hold_s"]) / 2)


def _peak_settings(
    configuration: Configuration, drv: Any, endpoint: str, peak: dict[str, Any], max_orders: int
) -> LoadSettings:
    unknown = sorted(set(peak) - set(PEAK_KEYS))
    if unknown:
        raise PeakreadyError(
            f"peak: unknown setting {unknown[0]!r} (known: {', '.join(PEAK_KEYS)})"
        )
    values = {**PEAK_KEYS, **peak}
    model = shared.topology(configuration)
    per_instance, how = drv.capacity_per_instance()
    if shared.target_of(configuration) == "lab":
        capacity = per_instance * model.lab.app_instances
        source = f"{how}; x {model.lab.app_instances} instances (the group's minimum)"
    else:
        capacity, source = model.forecast.requests_per_s, "the stack's forecast"
    flash_k = None if values["flash_k"] is None else float(values["flash_k"])
    if values["flash_buyers"] is not None:
        flash_k = _flash_k(model, capacity, values, int(values["flash_buyers"]))
    profile = peak_profile(
        model,
        capacity_per_s=capacity,
        source=source,
        surge=float(values["surge"]),
        baseline_fraction=float(values["baseline_fraction"]),
        baseline_s=float(values["baseline_s"]),
        ramp_s=float(values["ramp_s"]),
        hold_s=float(values["hold_s"]),
        flash_k=flash_k,
        hot_products=int(values["hot_products"]),
    )
    shared.record(
        configuration,
        "info",
        "peak_profile",
        capacity_per_s=round(capacity, 1),
        per_instance_s=round(per_instance, 1),
        peak_per_s=round(profile.peak_per_s, 1),
        source=source,
    )
    return LoadSettings(
        endpoint=endpoint,
        profile=profile.as_dict(),
        duration_s=profile.duration_s + PEAK_TAIL_S,
        max_orders=max_orders,
        retry_window_s=float(values["retry_window_s"]),
        hot_products=tuple(range(1, int(values["hot_products"]) + 1)),
    )


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
