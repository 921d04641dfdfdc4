"""CDK entry point: cdk.json runs `python -m cdk.app` (via cdk/app.sh) from the repo root.

It synthesizes one lab: `<stack_name>` and, past 20 attendees, its shard
stacks `<stack_name>-2`...; deploy/destroy them together with `--all`.
"""
import os
import sys

from aws_cdk import App, Aspects, Environment
from cdk_nag import AwsSolutionsChecks

from cdk.config import ConfigError, from_context
from cdk.lab_stack import build_lab


def environment(config):
    """Region only, never an account unless an AMI lookup needs one.

    An explicit account makes the VPC look up availability zones at synth time
    (a network call); ami_name is a synth-time lookup anyway and needs both.
    """
    if not (config.region or config.ami_name):
        return None  # env-agnostic: the CLI's region at deploy time
    return Environment(
        region=config.region or os.environ.get("CDK_DEFAULT_REGION"),
        account=os.environ.get("CDK_DEFAULT_ACCOUNT") if config.ami_name else None,
    )


def main() -> None:
    app = App()
    try:
        config = from_context(app.node.try_get_context)
    except ConfigError as exc:
        print("mxlab: invalid context: %s" % exc, file=sys.stderr)
        sys.exit(2)
    # One stack per 20 attendees: <stack_name>, <stack_name>-2, ... (deploy --all).
    build_lab(app, config, env=environment(config))
    Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    app.synth()


if __name__ == "__main__":
    main()
