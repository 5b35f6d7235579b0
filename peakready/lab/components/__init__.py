"""The lab's components, one module each; :mod:`peakready.lab.assembly` finds and orders them."""

from peakready.lab.components.base import Component, ProcessSpec, Row, UpContext, Wave

__all__ = ["Component", "ProcessSpec", "Row", "UpContext", "Wave"]
