"""Fixtures of the AWS activity tests: the moto world (tests/support/aws_world.py)."""

from __future__ import annotations

import aws_world

aws = aws_world.aws  # fixtures, used by name
world = aws_world.world
