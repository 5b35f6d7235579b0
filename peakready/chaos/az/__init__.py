"""A whole availability zone: every component in it at once."""
