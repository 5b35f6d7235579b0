"""Database tier: the primary and its replicas (Patroni in the lab, RDS on AWS)."""
