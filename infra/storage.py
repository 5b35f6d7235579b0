"""A private bucket: public access blocked, encrypted at rest (SSE-S3)."""

from __future__ import annotations

import pulumi
import pulumi_aws.s3 as s3


def private_bucket(
    name: str, force_destroy: bool, tags: dict[str, str], opts: pulumi.ResourceOptions
) -> s3.Bucket:
    """The bucket ``name``, its public access block and its encryption (resources ``name``).

    SSE-S3, not SSE-KMS: ALB access logs support no other."""
    bucket = s3.Bucket(name, force_destroy=force_destroy, tags=tags, opts=opts)
    s3.BucketPublicAccessBlock(
        name,
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=opts,
    )
    s3.BucketServerSideEncryptionConfiguration(
        name,
        bucket=bucket.id,
        rules=[
            s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="AES256"
                )
            )
        ],
        opts=opts,
    )
    return bucket
