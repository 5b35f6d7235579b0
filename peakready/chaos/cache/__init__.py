"""Cache tier: the Redis primary and replicas (Sentinel in the lab, ElastiCache on AWS)."""
