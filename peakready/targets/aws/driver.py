"""The AWS fault driver: the :class:`~peakready.targets.base.Driver` of an AWS stack.

Every fault goes through chaostoolkit-aws or AWS FIS; nothing here re-implements them:

========================  ==============================================================
``kill_app_instance``     ``chaosaws.asg.actions.terminate_random_instances`` (one
                          instance), or ``chaosaws.ec2.actions.terminate_instances`` on
                          one in-service instance of the requested AZ
``power_off_az``          an AWS FIS experiment built from the "AZ Availability: Power
                          Interruption" scenario (``az_power_interruption.json``),
                          scoped to this stack's resources, started with
                          ``chaosaws.fis.actions.start_experiment``
``power_on_az``           ``chaosaws.fis.actions.stop_experiment`` + wait
``fail_database_primary`` ``chaosaws.rds.actions.reboot_db_instance(force_failover=True)``
                          (Multi-AZ instance) or ``failover_db_cluster`` (Multi-AZ cluster)
``fail_cache_primary``    ``chaosaws.elasticache.actions.test_failover``
``app_group_at_desired``  ``chaosaws.asg.probes`` + ``chaosaws.elbv2.probes``
``stop_consumers``        the back-office group's ``UpdateAutoScalingGroup`` to 0 (its
                          sizes kept in a tag; ``start_consumers`` and ``restore`` put
                          them back): chaostoolkit-aws has no capacity action
========================  ==============================================================

``stop_cache``, ``stop_search``, ``kill_search_node`` and ``fail_queue_leader`` raise
ActivityFailed: ElastiCache, OpenSearch and Amazon MQ are managed services with no API
that stops a whole tier or a single node, and cutting them off with security-group
changes is not a real outage (already tracked connections survive a rule removal). The
``degraded-dependencies``, ``search-node-loss`` and ``broker-node-loss`` scenarios
therefore run on the lab only; the AZ power interruption covers losing the cache and search
nodes of one AZ on AWS.

Resources come from the stack outputs (DESIGN §3, see :mod:`peakready.targets.aws.shared`);
the rest (group ARN, target groups, subnets, ARNs) is looked up from them.

Over 500 lines: one class implements the whole ``Driver`` interface, a short section
per tier; splitting it per tier would scatter one object's state (clients, outputs).
"""

from __future__ import annotations

import functools
import json
import random
import string
import uuid
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from botocore.exceptions import ClientError
from chaosaws.asg import actions as asg_actions
from chaosaws.asg import probes as asg_probes
from chaosaws.ec2 import actions as ec2_actions
from chaosaws.elasticache import actions as elasticache_actions
from chaosaws.elbv2 import probes as elbv2_probes
from chaosaws.fis import actions as fis_actions
from chaosaws.rds import actions as rds_actions
from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

import peakready.targets.aws.shared as shared
from peakready.monitoring.detection import Seen
from peakready.targets.aws.shared import TAG_AZ, TAG_FAULT, TAG_STACK

__all__ = ["AwsDriver"]

#: FIS experiment states after which nothing more happens.
FIS_DONE = ("completed", "stopped", "failed", "cancelled")
FIS_ACTIVE = ("pending", "initiating", "running")
FAULT_AZ_POWER = "az-power"
#: On the back-office group while its consumers are stopped: "<min>,<desired>" to restore.
TAG_CONSUMERS_STOPPED = "peakready:consumers-stopped"
#: ELB target health states that mean a target is not serving yet (or any more).
TARGETS_NOT_READY = {"initial", "unhealthy", "unavailable"}


class AwsDriver:
    """Faults and observations on an AWS stack; see the module docstring."""

    target = "aws"

    def __init__(self, configuration: Configuration = None, secrets: Secrets = None) -> None:
        self.configuration: dict[str, Any] = dict(configuration or {})
        self.secrets = secrets
        self._outputs: shared.StackOutputs | None = None

    # helpers used by every method ---------------------------------------------
    @property
    def stack_outputs(self) -> shared.StackOutputs:
        if self._outputs is None:
            self._outputs = shared.load_outputs(self.configuration)
        return self._outputs

    def client(self, service: str) -> Any:
        return shared.client(service, self.configuration, self.secrets)

    @property
    def stack(self) -> str:
        return str(self.stack_outputs.get("stack") or self.configuration.get("peakready_stack"))

    def outputs(self) -> dict[str, Any]:
        """The stack outputs of DESIGN §3."""
        return dict(self.stack_outputs.values)

    # app tier ------------------------------------------------------------------
    def app_instances(self) -> list[dict[str, Any]]:
        """Instances of the Auto Scaling group: ``{"id", "az", "healthy"}`` each."""
        return [
            {
                "id": i["InstanceId"],
                "az": i["AvailabilityZone"],
                "healthy": i["LifecycleState"] == "InService" and i["HealthStatus"] == "Healthy",
            }
            for i in self._app_group()["Instances"]
        ]

    def app_group_at_desired(self) -> dict[str, Any]:
        """``{"desired", "healthy", "ok", "targets"}``: the group at its desired size and
        every load-balancer target healthy (chaosaws asg + elbv2 probes); ``targets`` maps
        each target group to its count of targets per health state."""
        group = self._app_group()
        healthy = sum(1 for i in self.app_instances() if i["healthy"])
        desired = int(group["DesiredCapacity"])
        targets = self._target_health(group)
        # no target on its way in or failing; "draining"/"unhealthy.draining" (the lost
        # instance, for the deregistration delay) and "unused" take no traffic
        targets_ok = not any(set(t) & TARGETS_NOT_READY for t in targets.values())
        return {
            "desired": desired,
            "healthy": healthy,
            "targets": targets,
            "ok": healthy >= desired and targets_ok,
        }

    def capacity_per_instance(self) -> tuple[float, str]:
        """The stack's own figure (``app.requests_per_instance``, else the bench's): a
        production fleet is not probed to saturation."""
        from peakready.planner import requests_per_instance  # lazy: a lab driver needs none
        from peakready.topology import Topology

        return requests_per_instance(Topology.load(self.stack))

    def reset_app_group(self) -> dict[str, Any]:
        return {"reset": False, "reason": "an AWS group keeps the size its operators set"}

    def unsettled_alerts(self) -> list[str] | None:
        firing = self.alerts()
        if firing is None:
            return None
        return sorted(
            {str(a["labels"]["alertname"]) for a in firing if a["labels"]["severity"] != "ticket"}
        )

    def alerts(self) -> list[dict[str, Any]] | None:
        """The stack's alarms (``infra/alarms.py`` names them ``peakready-<stack>-<alert>``)
        in state ALARM, shaped like Alertmanager's: the alarm's name is its fingerprint,
        the time it entered ALARM its ``startsAt``."""
        prefix = f"peakready-{self.stack}-"
        firing: list[dict[str, Any]] = []
        try:
            pages = self.client("cloudwatch").get_paginator("describe_alarms")
            for page in pages.paginate(AlarmNamePrefix=prefix, StateValue="ALARM"):
                for alarm in page["MetricAlarms"]:
                    if alarm.get("StateValue") != "ALARM":  # (moto ignores the filter)
                        continue
                    name = alarm["AlarmName"]
                    # infra/alarms.py ends each description with "(<severity>)".
                    described = str(alarm.get("AlarmDescription", ""))
                    severity = described.rpartition("(")[2].rstrip(")") or "page"
                    firing.append(
                        {
                            "fingerprint": name,
                            "startsAt": alarm["StateUpdatedTimestamp"].isoformat(),
                            "labels": {
                                "alertname": alarm_alert(name, prefix),
                                "severity": severity,
                            },
                            "status": {"state": "active"},
                        }
                    )
        except ClientError:
            return None
        return firing

    def alert_history(self, since: float, until: float) -> list[Seen] | None:
        """The stack's alarms' state changes between ``since`` and ``until`` (CloudWatch
        alarm history, ``StateUpdate`` items) as firing episodes: into ALARM opens one,
        out of it closes it; an alarm whose first change leaves ALARM was firing when
        the window began (carried). None when the history cannot be read."""
        prefix = f"peakready-{self.stack}-"
        items: list[tuple[float, str, str, str]] = []  # (at, alarm, old, new state)
        try:
            pages = self.client("cloudwatch").get_paginator("describe_alarm_history")
            for page in pages.paginate(
                HistoryItemType="StateUpdate",
                StartDate=datetime.fromtimestamp(since, UTC),
                EndDate=datetime.fromtimestamp(until, UTC),
                ScanBy="TimestampAscending",
            ):
                for item in page["AlarmHistoryItems"]:
                    name = item.get("AlarmName", "")
                    if not name.startswith(prefix):
                        continue
                    data = json.loads(item.get("HistoryData") or "{}")
                    old = (data.get("oldState") or {}).get("stateValue", "")
                    new = (data.get("newState") or {}).get("stateValue", "")
                    items.append((item["Timestamp"].timestamp(), name, old, new))
        except (ClientError, ValueError):
            return None
        episodes: list[Seen] = []
        open_: dict[str, Seen] = {}
        for at, name, old, new in sorted(items):
            if new == "ALARM" and name not in open_:
                open_[name] = Seen(alarm_alert(name, prefix), name, at, at)
                episodes.append(open_[name])
            elif new != "ALARM" and name in open_:
                open_.pop(name).resolved_at = at
            elif (
                new != "ALARM"
                and old == "ALARM"
                and not any(e.fingerprint == name for e in episodes)
            ):
                episodes.append(
                    Seen(alarm_alert(name, prefix), name, since, since, at, carried=True)
                )
        return episodes

    def scaling_timeline(self, since: float) -> list[dict[str, Any]]:
        """Scaling activities of the group since ``since`` and its instances in service
        per minute (CloudWatch ``GroupInServiceInstances``, which the stack enables)."""
        name = self.stack_outputs.require("app_group")
        start = datetime.fromtimestamp(since, UTC)
        rows: list[dict[str, Any]] = []
        pages = self.client("autoscaling").get_paginator("describe_scaling_activities")
        for page in pages.paginate(AutoScalingGroupName=name):
            for activity in page["Activities"]:
                if activity["StartTime"] >= start:
                    rows.append(
                        {
                            "event": "scale",
                            "at": activity["StartTime"].timestamp(),
                            "reason": activity.get("Cause", ""),
                            "status": activity.get("StatusCode", ""),
                        }
                    )
        policies = self.client("autoscaling").describe_policies(
            AutoScalingGroupName=name, PolicyTypes=["TargetTrackingScaling"]
        )["ScalingPolicies"]
        target = sum(
            float(p["TargetTrackingConfiguration"]["TargetValue"]) / 60  # per minute on AWS
            for p in policies[:1]
        )
        stats = self.client("cloudwatch").get_metric_statistics(
            Namespace="AWS/AutoScaling",
            MetricName="GroupInServiceInstances",
            Dimensions=[{"Name": "AutoScalingGroupName", "Value": name}],
            StartTime=start,
            EndTime=datetime.now(UTC),
            Period=60,
            Statistics=["Maximum"],
        )
        for point in stats.get("Datapoints", []):
            row = {"event": "in_service", "at": point["Timestamp"].timestamp()}
            row["in_service"] = int(point["Maximum"])
            if target:
                row["target"] = target
            rows.append(row)
        return sorted(rows, key=lambda r: float(r["at"]))

    def kill_app_instance(self, az: str | None = None) -> dict[str, Any]:
        """Terminate one in-service instance of the group (in ``az`` when given):
        ``{"id", "az", "group"}``."""
        name = self.stack_outputs.require("app_group")
        if az is not None:
            self.check_az(az)
        placed = {i["id"]: i["az"] for i in self.app_instances()}
        if az is None:
            done = asg_actions.terminate_random_instances(
                asg_names=[name],
                instance_count=1,
                configuration=self.configuration,
                secrets=self.secrets,
            )
            victim = done[0]["TerminatingInstances"][0]["InstanceId"]
        else:
            # terminate_random_instances(az=…) would take every instance of that AZ;
            # the contract is one instance, so pick it here and let chaosaws terminate it.
            in_az = [i for i in self.app_instances() if i["az"] == az and i["healthy"]]
            if not in_az:
                raise ActivityFailed(f"kill app instance: group {name} has no instance in {az}")
            victim = random.choice(in_az)["id"]
            ec2_actions.terminate_instances(
                instance_ids=[victim], configuration=self.configuration, secrets=self.secrets
            )
        return {"id": victim, "az": placed.get(victim, az), "group": name}

    # a whole availability zone -----------------------------------------------------
    def power_off_az(self, az: str) -> dict[str, Any]:
        """Start the FIS AZ power-interruption experiment for ``az`` on this stack."""
        self.check_az(az)
        template = self.az_power_template(az)
        fis = self.client("fis")
        try:
            created = fis.create_experiment_template(**template)
        except ClientError as exc:
            raise ActivityFailed(
                f"power off {az}: creating the FIS template failed: {shared.error_text(exc)}"
            ) from None
        template_id = created["experimentTemplate"]["id"]
        try:
            started = fis_actions.start_experiment(
                experiment_template_id=template_id,
                client_token=str(uuid.uuid4()),
                tags=self._fault_tags(az),
                configuration=self.configuration,
                secrets=self.secrets,
            )
        except ActivityFailed:
            _delete_template(fis, template_id)  # nothing would find it again
            raise
        return {
            "az": az,
            "experiment_id": started["experiment"]["id"],
            "template_id": template_id,
            "actions": sorted(template["actions"]),
        }

    def power_on_az(self, az: str) -> dict[str, Any]:
        """Stop the running FIS power-interruption experiments of ``az``; wait until they
        have ended and the app group is back at its desired size. Idempotent."""
        self.check_az(az)
        stopped = self.stop_fault_experiments(az)
        self._wait_app_group()
        return {"az": az, "stopped_experiments": stopped}

    def az_power_template(self, az: str) -> dict[str, Any]:
        """The ``CreateExperimentTemplate`` request for a power interruption of ``az``."""
        out = self.stack_outputs
        role_name = f"peakready-{self.stack}-fis"
        role = self.configuration.get("peakready_fis_role_arn") or shared.stack_role_arn(
            role_name, self.configuration, self.secrets
        )
        if not role:
            raise ActivityFailed(
                f"power off {az}: no IAM role for AWS FIS; set 'peakready_fis_role_arn' in the "
                f"configuration or deploy the stack's role {role_name}"
            )
        group = self._app_group()
        values: dict[str, Any] = {
            "stack": self.stack,
            "az": az,
            "duration": str(self.configuration.get("peakready_fis_duration", "PT10M")),
            "app_group": group["AutoScalingGroupName"],
            "app_group_arn": group["AutoScalingGroupARN"],
            "subnet_arns": self._subnet_arns(group, az),
        }
        parts = ["app", "network"]
        db = self._db_primary_description()
        if db["az"] == az:
            parts.append("db-cluster" if db["deployment"] == "cluster" else "db-instance")
            values["db_arn"] = db["arn"]
        cache_group = out.get("cache_group")
        if cache_group:
            parts.append("cache")
            values["cache_arn"] = self._cache_group(cache_group)["ARN"]
        return _render_template(parts, values, role, self._fault_tags(az))

    # database --------------------------------------------------------------------
    def db_primary(self) -> dict[str, Any]:
        """``{"id", "az", "deployment"}`` of the current primary (writer); ``deployment``
        is ``instance`` (Multi-AZ DB instance) or ``cluster`` (Multi-AZ DB cluster)."""
        db = self._db_primary_description()
        return {"id": db["id"], "az": db["az"], "deployment": db["deployment"]}

    def fail_database_primary(self) -> dict[str, Any]:
        """Fail over the primary: reboot with failover (Multi-AZ instance) or
        failover_db_cluster (Multi-AZ cluster)."""
        db = self._db_primary_description()
        if db["deployment"] == "cluster":
            # chaosaws passes TargetDBInstanceIdentifier through, and None is refused by
            # botocore's validation: name the reader that takes over.
            rds_actions.failover_db_cluster(
                db_cluster_identifier=db["cluster"],
                target_db_instance_identifier=_cluster_reader(self.client("rds"), db["cluster"]),
                configuration=self.configuration,
                secrets=self.secrets,
            )
        else:
            if not db["multi_az"]:
                raise ActivityFailed(
                    f"fail database primary: {db['id']} is not Multi-AZ, a reboot with "
                    "failover needs a standby"
                )
            rds_actions.reboot_db_instance(
                db_instance_identifier=db["id"],
                force_failover=True,
                configuration=self.configuration,
                secrets=self.secrets,
            )
        return {"id": db["id"], "az": db["az"], "deployment": db["deployment"]}

    def stale_primary_rejects_writes(self, member_id: str) -> dict[str, Any]:
        """After recovery: ``member_id`` (the primary before the fault) accepts no writes.

        RDS never exposes the old node of a Multi-AZ instance: its endpoint follows the
        new primary and the old node becomes the standby. So the check is that the
        failover took place (RDS event) and the instance is available again; for a
        cluster, that ``member_id`` is no longer the writer; a read replica is read-only.
        """
        if not member_id:
            raise ActivityFailed("stale primary check: member_id is empty")
        rds = self.client("rds")
        db = self._db_primary_description()
        if db["deployment"] == "cluster":
            writable = member_id == db["id"]
            return {"member_id": member_id, "writable": writable, "ok": not writable}
        if member_id != db["id"]:
            replica = _describe_instance(rds, member_id)
            writable = not replica.get("ReadReplicaSourceDBInstanceIdentifier")
            return {"member_id": member_id, "writable": writable, "ok": not writable}
        events = _failover_events(rds, member_id)
        ok = db["status"] == "available" and bool(events)
        return {
            "member_id": member_id,
            "writable": False,
            "failover_events": events,
            "status": db["status"],
            "ok": ok,
        }

    # cache -----------------------------------------------------------------------
    def cache_primary(self) -> dict[str, Any]:
        """The replication group's current primary; ``agreed`` when the group is available
        and names exactly one primary (during a failover it is ``modifying``)."""
        name = self.stack_outputs.require("cache_group")
        group = self._cache_group(name)
        primaries = [
            member
            for node_group in group.get("NodeGroups", [])
            for member in node_group.get("NodeGroupMembers", [])
            if member.get("CurrentRole") == "primary"
        ]
        primary = primaries[0] if primaries else {}
        return {
            "id": primary.get("CacheClusterId"),
            "az": primary.get("PreferredAvailabilityZone"),
            "agreed": group.get("Status") == "available" and len(primaries) == 1,
        }

    def fail_cache_primary(self) -> dict[str, Any]:
        """ElastiCache TestFailover on the node group of the current primary."""
        name = self.stack_outputs.require("cache_group")
        group = self._cache_group(name)
        if group.get("AutomaticFailover") != "enabled":
            raise ActivityFailed(
                f"fail cache primary: replication group {name} has automatic failover "
                f"'{group.get('AutomaticFailover')}', TestFailover needs 'enabled'"
            )
        node_group, primary = _cache_primary(group)
        elasticache_actions.test_failover(
            replication_group_id=name,
            node_group_id=node_group["NodeGroupId"],
            configuration=self.configuration,
            secrets=self.secrets,
        )
        return {
            "group": name,
            "node_group": node_group["NodeGroupId"],
            "id": primary.get("CacheClusterId"),
            "az": primary.get("PreferredAvailabilityZone"),
        }

    def stop_cache(self) -> dict[str, Any]:
        """Not supported on AWS (see the module docstring)."""
        raise ActivityFailed(
            "stop cache: not supported on AWS: ElastiCache has no API that stops a "
            "replication group; run degraded-dependencies on the lab"
        )

    # search ------------------------------------------------------------------------
    def kill_search_node(self, az: str | None = None) -> dict[str, Any]:
        """Not supported on AWS (see the module docstring)."""
        raise ActivityFailed(
            "kill search node: not supported on AWS: OpenSearch Service has no API that "
            "stops one data node; run search-node-loss on the lab, or az-power-loss on AWS"
        )

    def stop_search(self) -> dict[str, Any]:
        """Not supported on AWS (see the module docstring)."""
        raise ActivityFailed(
            "stop search: not supported on AWS: OpenSearch Service has no API that stops a "
            "domain; run degraded-dependencies on the lab"
        )

    # order pipeline ---------------------------------------------------------------------
    def stop_consumers(self) -> dict[str, Any]:
        """The back-office group goes to 0 (its sizes kept in a tag on the group, so
        that :meth:`start_consumers` and :meth:`restore` put them back from any process)."""
        group = self._backoffice_group()
        name = group["AutoScalingGroupName"]
        if not _tag(group, TAG_CONSUMERS_STOPPED):
            sizes = f"{group['MinSize']},{group['DesiredCapacity']}"
            self._tag_group(name, sizes)
        self.client("autoscaling").update_auto_scaling_group(
            AutoScalingGroupName=name, MinSize=0, DesiredCapacity=0
        )
        return {"stopped": [i["InstanceId"] for i in group.get("Instances", [])], "group": name}

    def start_consumers(self) -> dict[str, Any]:
        """The back-office group back at the sizes :meth:`stop_consumers` kept, then
        wait until that many instances are in service. Idempotent."""
        group = self._backoffice_group()
        name, kept = group["AutoScalingGroupName"], _tag(group, TAG_CONSUMERS_STOPPED)
        if not kept:
            return {"started": [], "group": name}
        low, desired = (int(v) for v in kept.split(","))
        autoscaling = self.client("autoscaling")
        autoscaling.update_auto_scaling_group(
            AutoScalingGroupName=name, MinSize=low, DesiredCapacity=desired
        )
        autoscaling.delete_tags(
            Tags=[
                {
                    "ResourceId": name,
                    "ResourceType": "auto-scaling-group",
                    "Key": TAG_CONSUMERS_STOPPED,
                }
            ]
        )

        def in_service() -> list[str] | None:
            found = self._backoffice_group().get("Instances", [])
            ready = [i["InstanceId"] for i in found if i.get("LifecycleState") == "InService"]
            return ready if len(ready) >= desired else None

        ready = shared.wait_for(in_service, "back-office group in service", self.configuration)
        return {"started": ready, "group": name}

    def queue_leader(self) -> dict[str, Any]:
        """Not available on AWS: Amazon MQ does not say which node leads a queue."""
        raise ActivityFailed(
            "queue leader: not supported on AWS: Amazon MQ has no API that names the node "
            "leading a queue, nor one that stops one node; run broker-node-loss on the lab"
        )

    def fail_queue_leader(self) -> dict[str, Any]:
        """Not supported on AWS (see :meth:`queue_leader`)."""
        return self.queue_leader()

    def _backoffice_group(self) -> dict[str, Any]:
        name = self.stack_outputs.require("backoffice_group")
        found = self.client("autoscaling").describe_auto_scaling_groups(
            AutoScalingGroupNames=[name]
        )["AutoScalingGroups"]
        if not found:
            raise ActivityFailed(f"back-office group {name}: not found")
        return dict(found[0])

    def _tag_group(self, name: str, value: str) -> None:
        self.client("autoscaling").create_or_update_tags(
            Tags=[
                {
                    "ResourceId": name,
                    "ResourceType": "auto-scaling-group",
                    "Key": TAG_CONSUMERS_STOPPED,
                    "Value": value,
                    "PropagateAtLaunch": False,
                }
            ]
        )

    # zones and FIS experiments ------------------------------------------------------
    def check_az(self, az: str) -> None:
        zones = self.stack_outputs.require("availability_zones")
        if az not in zones:
            raise ActivityFailed(f"az: '{az}' is not one of the stack's zones {zones}")

    def fault_experiments(self) -> list[dict[str, Any]]:
        """This stack's AZ-power experiments: ``{"id", "az", "status", "template_id"}``."""
        found = [e for e in _list_experiments(self.client("fis")) if self._is_ours(e, None)]
        found.sort(key=lambda e: str(e.get("creationTime", "")))
        return [
            {
                "id": e["id"],
                "az": e["tags"].get(TAG_AZ),
                "status": e["state"]["status"],
                "template_id": e["experimentTemplateId"],
            }
            for e in found
        ]

    def stop_fault_experiments(self, az: str | None) -> list[str]:
        """Stop this stack's active AZ-power experiments (of ``az``, or all); wait for them
        to end; delete their templates. Returns the ids of the experiments stopped."""
        fis = self.client("fis")
        ours = [e for e in _list_experiments(fis) if self._is_ours(e, az)]
        stopped: list[str] = []
        for exp in ours:
            if exp["state"]["status"] in FIS_ACTIVE:
                fis_actions.stop_experiment(
                    experiment_id=exp["id"], configuration=self.configuration, secrets=self.secrets
                )
                stopped.append(exp["id"])
        for exp_id in stopped:
            shared.wait_for(
                functools.partial(_ended, fis, exp_id),
                f"FIS experiment {exp_id} stopped",
                self.configuration,
            )
        for template_id in {e["experimentTemplateId"] for e in ours}:
            _delete_template(fis, template_id)
        return stopped

    # rollback ------------------------------------------------------------------------
    def restore(self) -> dict[str, Any]:
        """Stop every FIS experiment peakready started on this stack, then wait until the
        app group is at desired size, the database primary and the cache are available.
        Idempotent; safe after any fault."""
        stopped = self.stop_fault_experiments(None)
        consumers = self.start_consumers() if self.stack_outputs.get("backoffice_group") else None
        waited_app = self._wait_app_group()
        db = shared.wait_for(
            lambda: _ready(self._db_primary_description()), "database available", self.configuration
        )
        cache = None
        if self.stack_outputs.get("cache_group"):
            name = self.stack_outputs.require("cache_group")
            cache = shared.wait_for(
                lambda: _ready_cache(self._cache_group(name)), "cache available", self.configuration
            )
        return {
            "healthy": True,  # every wait above raises ActivityFailed when it times out
            "stopped_experiments": stopped,
            "app_group": waited_app,
            "db_primary": {"id": db["id"], "az": db["az"], "status": db["status"]},
            "cache_group": cache,
            "consumers": consumers,
        }

    # private ---------------------------------------------------------------------
    def _fault_tags(self, az: str) -> dict[str, str]:
        return {TAG_STACK: self.stack, TAG_FAULT: FAULT_AZ_POWER, TAG_AZ: az}

    def _app_group(self) -> dict[str, Any]:
        name = self.stack_outputs.require("app_group")
        found = asg_probes.describe_auto_scaling_groups(
            asg_names=[name], configuration=self.configuration, secrets=self.secrets
        )
        return dict(found["AutoScalingGroups"][0])

    def _target_health(self, group: dict[str, Any]) -> dict[str, Any]:
        arns = group.get("TargetGroupARNs") or []
        if not arns:
            return {}
        try:
            found = self.client("elbv2").describe_target_groups(TargetGroupArns=arns)
        except ClientError as exc:
            raise ActivityFailed(
                f"target groups of the app group: {shared.error_text(exc)}"
            ) from None
        names = [tg["TargetGroupName"] for tg in found["TargetGroups"]]
        counts = elbv2_probes.targets_health_count(
            tg_names=names, configuration=self.configuration, secrets=self.secrets
        )
        return dict(counts)

    def _wait_app_group(self) -> dict[str, Any]:
        return shared.wait_for(
            lambda: state if (state := self.app_group_at_desired())["ok"] else None,
            "app group back at desired size",
            self.configuration,
        )

    def _subnet_arns(self, group: dict[str, Any], az: str) -> list[str]:
        """This stack's subnets in ``az``: the app group's, the database's and the cache's."""
        ids = set(filter(None, group.get("VPCZoneIdentifier", "").split(",")))
        db = self._db_primary_description()
        ids.update(db["subnets"])
        ec2 = self.client("ec2")
        try:
            found = ec2.describe_subnets(SubnetIds=sorted(ids))["Subnets"] if ids else []
        except ClientError as exc:
            raise ActivityFailed(f"subnets of the stack: {shared.error_text(exc)}") from None
        return sorted(s["SubnetArn"] for s in found if s["AvailabilityZone"] == az)

    def _db_primary_description(self) -> dict[str, Any]:
        """The writer, whether ``db_primary`` names a DB instance or a Multi-AZ cluster."""
        name = self.stack_outputs.require("db_primary")
        rds = self.client("rds")
        try:
            inst = rds.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0]
        except ClientError as exc:
            if _code(exc) != "DBInstanceNotFound":
                raise ActivityFailed(f"database primary {name}: {shared.error_text(exc)}") from None
            return _cluster_writer(rds, name)
        return {
            "deployment": "instance",
            "id": name,
            "cluster": None,
            "arn": inst["DBInstanceArn"],
            "az": inst.get("AvailabilityZone"),
            "multi_az": bool(inst.get("MultiAZ")),
            "status": inst.get("DBInstanceStatus"),
            "subnets": [s["SubnetIdentifier"] for s in inst["DBSubnetGroup"]["Subnets"]]
            if inst.get("DBSubnetGroup")
            else [],
        }

    def _cache_group(self, name: str) -> dict[str, Any]:
        try:
            found = self.client("elasticache").describe_replication_groups(ReplicationGroupId=name)
        except ClientError as exc:
            raise ActivityFailed(f"cache group {name}: {shared.error_text(exc)}") from None
        return dict(found["ReplicationGroups"][0])

    def _is_ours(self, experiment: dict[str, Any], az: str | None) -> bool:
        tags = experiment.get("tags") or {}
        if tags.get(TAG_STACK) != self.stack or tags.get(TAG_FAULT) != FAULT_AZ_POWER:
            return False
        return az is None or tags.get(TAG_AZ) == az


def _render_template(
    parts: list[str], values: dict[str, Any], role: str, tags: dict[str, str]
) -> dict[str, Any]:
    data = json.loads(
        resources.files("peakready.targets.aws").joinpath("az_power_interruption.json").read_text()
    )
    targets: dict[str, Any] = {}
    actions: dict[str, Any] = {}
    for part in parts:
        targets.update(data["parts"][part]["targets"])
        actions.update(data["parts"][part]["actions"])
    if not values["subnet_arns"]:
        del targets["Subnets"], actions["Pause-Network-Connectivity"]
    return {
        "clientToken": str(uuid.uuid4()),
        "description": _fill(data["description"], values),
        "targets": _fill(targets, values),
        "actions": _fill(actions, values),
        "stopConditions": [{"source": "none"}],
        "roleArn": role,
        "tags": tags,
        "experimentOptions": {"emptyTargetResolutionMode": "skip"},
    }


def _fill(node: Any, values: dict[str, Any]) -> Any:
    """Replace ``${name}`` in every string; a string that is only ``${name}`` takes the
    value as it is (lists stay lists)."""
    if isinstance(node, dict):
        return {k: _fill(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_fill(v, values) for v in node]
    if isinstance(node, str):
        if node.startswith("${") and node.endswith("}") and node[2:-1] in values:
            return values[node[2:-1]]
        return string.Template(node).substitute(values)
    return node


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _describe_instance(rds: Any, name: str) -> dict[str, Any]:
    try:
        return dict(rds.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0])
    except ClientError as exc:
        raise ActivityFailed(f"database member {name}: {shared.error_text(exc)}") from None


def _cluster_writer(rds: Any, name: str) -> dict[str, Any]:
    try:
        cluster = rds.describe_db_clusters(DBClusterIdentifier=name)["DBClusters"][0]
    except ClientError as exc:
        raise ActivityFailed(
            f"database primary {name}: neither a DB instance nor a DB cluster "
            f"({shared.error_text(exc)})"
        ) from None
    writers = [m for m in cluster.get("DBClusterMembers", []) if m.get("IsClusterWriter")]
    if not writers:
        raise ActivityFailed(f"database primary {name}: the cluster has no writer")
    writer = _describe_instance(rds, writers[0]["DBInstanceIdentifier"])
    return {
        "deployment": "cluster",
        "id": writer["DBInstanceIdentifier"],
        "cluster": name,
        "arn": cluster["DBClusterArn"],
        "az": writer.get("AvailabilityZone"),
        "multi_az": bool(cluster.get("MultiAZ")),
        "status": cluster.get("Status"),
        "subnets": [
            s["SubnetIdentifier"] for s in writer.get("DBSubnetGroup", {}).get("Subnets", [])
        ],
    }


def _cluster_reader(rds: Any, cluster: str) -> str:
    try:
        found = rds.describe_db_clusters(DBClusterIdentifier=cluster)["DBClusters"][0]
    except ClientError as exc:
        raise ActivityFailed(f"database cluster {cluster}: {shared.error_text(exc)}") from None
    readers = [m for m in found.get("DBClusterMembers", []) if not m.get("IsClusterWriter")]
    if not readers:
        raise ActivityFailed(f"fail database primary: cluster {cluster} has no reader to promote")
    return str(readers[0]["DBInstanceIdentifier"])


def _failover_events(rds: Any, name: str) -> list[str]:
    """Messages of the failover events of ``name`` in the last hour."""
    try:
        events = rds.describe_events(
            SourceIdentifier=name,
            SourceType="db-instance",
            EventCategories=["failover"],
            Duration=60,
        )["Events"]
    except ClientError as exc:
        raise ActivityFailed(f"RDS events of {name}: {shared.error_text(exc)}") from None
    # filtered again: not every implementation of the API honours EventCategories
    return [str(e.get("Message", "")) for e in events if "failover" in e.get("EventCategories", [])]


def _cache_primary(group: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    for node_group in group.get("NodeGroups", []):
        for member in node_group.get("NodeGroupMembers", []):
            if member.get("CurrentRole") == "primary":
                return node_group, member
    groups = group.get("NodeGroups") or []
    if not groups:
        raise ActivityFailed(f"fail cache primary: {group.get('ReplicationGroupId')} has no shard")
    return groups[0], {}


def _ready(db: dict[str, Any]) -> dict[str, Any] | None:
    return db if db["status"] == "available" else None


def _ready_cache(group: dict[str, Any]) -> dict[str, Any] | None:
    if group.get("Status") != "available":
        return None
    return {"id": group["ReplicationGroupId"], "status": group["Status"]}


def _list_experiments(fis: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"maxResults": 100}
    for _ in range(100):  # bounded: at most 10 000 experiments
        try:
            page = fis.list_experiments(**kwargs)
        except ClientError as exc:
            raise ActivityFailed(f"listing FIS experiments: {shared.error_text(exc)}") from None
        found.extend(page.get("experiments", []))
        if not page.get("nextToken"):
            break
        kwargs["nextToken"] = page["nextToken"]
    return found


def _ended(fis: Any, exp_id: str) -> str | None:
    try:
        status = fis.get_experiment(id=exp_id)["experiment"]["state"]["status"]
    except ClientError as exc:
        raise ActivityFailed(f"FIS experiment {exp_id}: {shared.error_text(exc)}") from None
    return str(status) if status in FIS_DONE else None


def _delete_template(fis: Any, template_id: str) -> None:
    try:
        fis.delete_experiment_template(id=template_id)
    except ClientError as exc:
        if _code(exc) != "ResourceNotFoundException":
            raise ActivityFailed(
                f"deleting FIS template {template_id}: {shared.error_text(exc)}"
            ) from None


def alarm_alert(alarm_name: str, prefix: str) -> str:
    """The catalogue alert an alarm renders: ``peakready-dev-CacheReplicationLag-redis-2``
    is ``CacheReplicationLag`` (alarms per member carry the member after the name)."""
    return alarm_name.removeprefix(prefix).split("-", 1)[0]


def _tag(group: dict[str, Any], key: str) -> str | None:
    return next((t["Value"] for t in group.get("Tags", []) if t.get("Key") == key), None)
