"""Chaos Toolkit extension: target-neutral actions and probes per tier."""
