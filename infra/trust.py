"""IAM trust policies shared by the tiers' roles."""

from __future__ import annotations

import json


def service_trust_policy(service: str) -> str:
    """An assume-role policy that lets only the AWS service ``service`` assume the role."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": service},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )
