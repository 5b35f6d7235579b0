"""Search tier: Sphinx searchd nodes in the lab, OpenSearch on AWS."""
