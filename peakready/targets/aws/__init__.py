"""The AWS target: a fault driver built on chaostoolkit-aws and AWS FIS, the stack's
outputs (``pulumi stack output``) and the boto3 clients (``shared``)."""

from peakready.targets.aws.driver import AwsDriver

__all__ = ["AwsDriver"]
