"""The lab's components, one module each; :mod:`peakready.lab.assembly` lists them."""

from peakready.lab.components.app_group import AppGroup
from peakready.lab.components.backup import Backup
from peakready.lab.components.base import Component, ProcessSpec, Row, UpContext, Wave
from peakready.lab.components.cache import Cache
from peakready.lab.components.database import Database
from peakready.lab.components.etcd import Etcd
from peakready.lab.components.load_balancer import LoadBalancer
from peakready.lab.components.search import Search
from peakready.lab.components.sentinel import Sentinel

__all__ = [
    "AppGroup",
    "Backup",
    "Cache",
    "Component",
    "Database",
    "Etcd",
    "LoadBalancer",
    "ProcessSpec",
    "Row",
    "Search",
    "Sentinel",
    "UpContext",
    "Wave",
]
