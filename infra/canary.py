"""The synthetic checkout on AWS: a CloudWatch Synthetics canary walking the lab probe's
flow (``peakready.monitoring.probe``) through the ALB, once a minute.

Each run places a flagged test order of the synthetic product (header
``X-Peakready-Synthetic``: the storefront's audit token, read from Secrets Manager at
run time, never in the canary's configuration) and reads it back; the storefront leaves
such orders out of its business figures and of the back office. The canary's
``SuccessPercent`` is the ``CheckoutProbe`` alarm's metric. Its artifacts go to a
private, encrypted bucket kept 14 days.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws.iam as iam
import pulumi_aws.s3 as s3
import pulumi_aws.synthetics as synthetics

from infra.generated import generated_password
from infra.storage import private_bucket

RUNTIME = "syn-nodejs-puppeteer-9.1"
SYNTHETIC_PRODUCT_ID = 999_999  # peakready.app.db.SYNTHETIC_PRODUCT_ID

SCRIPT = """\
const synthetics = require('Synthetics');
const { SecretsManagerClient, GetSecretValueCommand } = require('@aws-sdk/client-secrets-manager');
const { randomUUID } = require('crypto');

function body(res) {
  return new Promise((resolve, reject) => {
    let data = '';
    res.on('data', (chunk) => { data += chunk; });
    res.on('end', () => resolve(data));
    res.on('error', reject);
  });
}

exports.handler = async () => {
  const secrets = new SecretsManagerClient({});
  const answer = await secrets.send(
    new GetSecretValueCommand({ SecretId: process.env.TOKEN_SECRET_ARN }));
  const endpoint = new URL(process.env.ENDPOINT);
  const tls = endpoint.protocol === 'https:';
  const base = { hostname: endpoint.hostname, port: endpoint.port || (tls ? 443 : 80),
                 protocol: endpoint.protocol };
  let order;
  await synthetics.executeHttpStep('place a synthetic order', {
    ...base, method: 'POST', path: '/orders',
    headers: { 'Content-Type': 'application/json', 'Idempotency-Key': 'synthetic-' + randomUUID(),
               'X-Peakready-Synthetic': answer.SecretString },
    body: JSON.stringify({ product_id: PRODUCT, quantity: 1 }),
  }, async (res) => {
    const text = await body(res);
    if (res.statusCode !== 201) throw new Error('POST /orders answered ' + res.statusCode);
    order = JSON.parse(text);
  });
  await synthetics.executeHttpStep('read it back', {
    ...base, method: 'GET', path: '/orders/' + order.id,
  }, async (res) => {
    const text = await body(res);
    if (res.statusCode !== 200 || JSON.parse(text).id !== order.id) {
      throw new Error('GET /orders/' + order.id + ' answered ' + res.statusCode);
    }
  });
};
""".replace("PRODUCT", str(SYNTHETIC_PRODUCT_ID))


@dataclass
class CanaryArgs:
    stack: str
    #: The storefront's public endpoint (``http[s]://<ALB DNS name>``).
    endpoint: pulumi.Input[str]
    tags: dict[str, str] = field(default_factory=dict)


def canary_name(stack: str) -> str:
    """At most 21 characters of ``[0-9a-z_-]``, as Synthetics demands."""
    return f"{stack.lower()}-checkout"[:21]


class CheckoutCanary(pulumi.ComponentResource):
    """The canary, its role (logs, its bucket, its metrics, the token), its bucket, and
    the storefront's audit token it flags its orders with (generated; the instances
    read it from Secrets Manager too)."""

    name: pulumi.Output[str]
    token_secret_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: CanaryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("peakready:canary:CheckoutCanary", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        _, token_arn = generated_password(
            f"{name}-audit-token",
            f"storefront audit token of stack {args.stack} (drills, synthetic checkout)",
            32,
            args.tags,
            child,
        )
        bucket = private_bucket(f"{name}-artifacts", True, args.tags, child)
        s3.BucketLifecycleConfiguration(
            f"{name}-artifacts",
            bucket=bucket.id,
            rules=[
                s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire",
                    status="Enabled",
                    expiration=s3.BucketLifecycleConfigurationRuleExpirationArgs(days=14),
                    filter=s3.BucketLifecycleConfigurationRuleFilterArgs(),
                )
            ],
            opts=child,
        )
        code = s3.BucketObjectv2(
            f"{name}-code",
            bucket=bucket.id,
            key="code/checkout.zip",
            source=pulumi.AssetArchive(
                {"nodejs/node_modules/checkout.js": pulumi.StringAsset(SCRIPT)}
            ),
            opts=child,
        )
        role = iam.Role(
            f"{name}-role",
            assume_role_policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
            tags=args.tags,
            opts=child,
        )
        iam.RolePolicy(
            f"{name}-policy",
            role=role.id,
            policy=pulumi.Output.all(bucket.arn, token_arn).apply(
                lambda v: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": ["s3:PutObject", "s3:GetObject"],
                                "Resource": f"{v[0]}/*",
                            },
                            {
                                "Effect": "Allow",
                                "Action": ["s3:GetBucketLocation", "s3:ListAllMyBuckets"],
                                "Resource": "*",
                            },
                            {
                                "Effect": "Allow",
                                "Action": [
                                    "logs:CreateLogGroup",
                                    "logs:CreateLogStream",
                                    "logs:PutLogEvents",
                                ],
                                "Resource": "arn:aws:logs:*:*:log-group:/aws/lambda/cwsyn-*",
                            },
                            {
                                "Effect": "Allow",
                                "Action": "cloudwatch:PutMetricData",
                                "Resource": "*",
                                "Condition": {
                                    "StringEquals": {"cloudwatch:namespace": "CloudWatchSynthetics"}
                                },
                            },
                            {
                                "Effect": "Allow",
                                "Action": "secretsmanager:GetSecretValue",
                                "Resource": v[1],
                            },
                        ],
                    }
                )
            ),
            opts=child,
        )
        canary = synthetics.Canary(
            f"{name}-canary",
            name=canary_name(args.stack),
            artifact_s3_location=pulumi.Output.concat("s3://", bucket.id, "/runs/"),
            execution_role_arn=role.arn,
            handler="checkout.handler",
            runtime_version=RUNTIME,
            s3_bucket=bucket.id,
            s3_key=code.key,
            schedule=synthetics.CanaryScheduleArgs(expression="rate(1 minute)"),
            run_config=synthetics.CanaryRunConfigArgs(
                timeout_in_seconds=30,
                environment_variables={
                    "ENDPOINT": args.endpoint,
                    "TOKEN_SECRET_ARN": token_arn,
                },
            ),
            start_canary=True,
            success_retention_period=2,
            failure_retention_period=14,
            tags=args.tags,
            opts=child,
        )
        self.name = canary.name
        self.token_secret_arn = token_arn
        self.register_outputs({"name": self.name})
