"""Faults and probes of the order pipeline: the back office's consumers and the broker."""
