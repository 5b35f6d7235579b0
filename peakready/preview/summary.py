"""Per-tier AZ summary of an offline plan: which AZs each tier actually lands in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TierSpan:
    tier: str
    zones: list[str]
    detail: str


def _by_type(plan: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r for r in plan.get("resources", []) if r["type"] == kind]


def _subnet_zones(plan: dict[str, Any]) -> dict[str, str]:
    """Mock subnet id (``<name>-id``) → AZ."""
    return {
        f"{r['name']}-id": r["inputs"].get("availabilityZone", "?")
        for r in _by_type(plan, "aws:ec2/subnet:Subnet")
    }


def _tier(resource: dict[str, Any]) -> str:
    """The ``peakready:tier`` tag of a resource with map tags ("" when untagged)."""
    tags = resource["inputs"].get("tags")
    return str(tags.get("peakready:tier", "")) if isinstance(tags, dict) else ""


def tier_spans(plan: dict[str, Any]) -> list[TierSpan]:
    zones_of = _subnet_zones(plan)

    def zones(subnet_ids: list[str] | None) -> list[str]:
        return sorted({zones_of.get(s, "?") for s in subnet_ids or []})

    spans: list[TierSpan] = []
    for alb in _by_type(plan, "aws:lb/loadBalancer:LoadBalancer"):
        spans.append(TierSpan("load balancer", zones(alb["inputs"].get("subnets")), "ALB subnets"))
    for asg in _by_type(plan, "aws:autoscaling/group:Group"):
        i = asg["inputs"]
        tier = next(
            (t.get("value") for t in i.get("tags") or [] if t.get("key") == "peakready:tier"),
            "app",
        )
        spans.append(
            TierSpan(
                "back office" if tier == "backoffice" else "app",
                zones(i.get("vpcZoneIdentifiers")),
                f"ASG {i.get('minSize')} to {i.get('maxSize')} instances",
            )
        )
    for broker in _by_type(plan, "aws:mq/broker:Broker"):
        i = broker["inputs"]
        spans.append(
            TierSpan(
                "queue",
                zones(i.get("subnetIds")),
                f"{i.get('engineType')} {i.get('deploymentMode')}",
            )
        )
    for tier, label in (("", "database"), ("backoffice", "back-office database")):
        instances = [r for r in _by_type(plan, "aws:rds/instance:Instance") if _tier(r) == tier]
        primaries = [r for r in instances if not r["inputs"].get("replicateSourceDb")]
        replicas = [r for r in instances if r["inputs"].get("replicateSourceDb")]
        groups = [r for r in _by_type(plan, "aws:rds/subnetGroup:SubnetGroup") if _tier(r) == tier]
        if primaries:
            db_zones = zones(groups[0]["inputs"].get("subnetIds")) if groups else []
            replica_zones = sorted({r["inputs"].get("availabilityZone", "?") for r in replicas})
            multi = "Multi-AZ" if primaries[0]["inputs"].get("multiAz") else "single-AZ"
            spans.append(
                TierSpan(
                    label,
                    db_zones,
                    f"primary {multi}; {len(replicas)} replicas in "
                    f"{', '.join(replica_zones) or '—'}",
                )
            )
    for cluster in _by_type(plan, "aws:rds/cluster:Cluster"):
        spans.append(
            TierSpan(
                "database",
                sorted(cluster["inputs"].get("availabilityZones") or []),
                "Multi-AZ DB cluster (writer + 2 readable standbys)",
            )
        )
    for redis in _by_type(plan, "aws:elasticache/replicationGroup:ReplicationGroup"):
        i = redis["inputs"]
        spans.append(
            TierSpan(
                "cache",
                sorted(set(i.get("preferredCacheClusterAzs") or [])),
                f"{i.get('numCacheClusters')} nodes, failover "
                f"{'on' if i.get('automaticFailoverEnabled') else 'off'}",
            )
        )
    for domain in _by_type(plan, "aws:opensearch/domain:Domain"):
        i = domain["inputs"]
        cluster = i.get("clusterConfig") or {}
        spans.append(
            TierSpan(
                "search",
                zones((i.get("vpcOptions") or {}).get("subnetIds")),
                f"{cluster.get('instanceCount')} data nodes, zone awareness "
                f"{(cluster.get('zoneAwarenessConfig') or {}).get('availabilityZoneCount', '—')}",
            )
        )
    return spans


def to_markdown(spans: list[TierSpan], expected: int) -> str:
    lines = ["| tier | AZs | spans | detail |", "| --- | --- | --- | --- |"]
    for span in spans:
        mark = "✅" if len(span.zones) >= expected else "⚠️" if len(span.zones) >= 2 else "❌"
        lines.append(
            f"| {span.tier} | {', '.join(span.zones) or '—'} | {mark} {len(span.zones)} "
            f"| {span.detail} |"
        )
    return "\n".join(lines)


def schedule_markdown(plan: dict[str, Any]) -> str:
    """The app tier's scheduled actions (pre-warm and release), in time order."""
    actions = sorted(
        (r["inputs"] for r in _by_type(plan, "aws:autoscaling/schedule:Schedule")),
        key=lambda a: a.get("startTime", ""),
    )
    if not actions:
        return "No scheduled capacity changes (no peak window ahead)."
    lines = ["| action | at (UTC) | min | max | desired |", "| --- | --- | --- | --- | --- |"]
    for a in actions:
        desired = a.get("desiredCapacity")
        lines.append(
            f"| {a.get('scheduledActionName')} | {a.get('startTime')} | {a.get('minSize')} "
            f"| {a.get('maxSize')} | {'unchanged' if desired == -1 else desired} |"
        )
    return "\n".join(lines)
