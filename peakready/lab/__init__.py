"""The local lab: a multi-AZ copy of a stack from real servers on 127.0.0.1 (DESIGN §5)."""
