"""boto3 sessions the way the AWS CLI takes profile and region (flags, then environment)."""
import os

from mxlab.errors import UsageError

_options = {"profile": None, "region": None}

NO_REGION = ("no AWS region is configured: pass --region (e.g. --region us-east-1), set "
             "AWS_REGION or AWS_DEFAULT_REGION, or put one in ~/.aws/config "
             "(`aws configure set region us-east-1`)")


def configure(profile=None, region=None):
    _options.update(profile=profile, region=region)


def session():
    """A boto3 session with a region, or UsageError saying how to set one.

    AWS_REGION counts as the AWS CLI v2 takes it, before AWS_DEFAULT_REGION and
    the profile's region (boto3 itself reads only AWS_DEFAULT_REGION); a missing
    region would otherwise surface as botocore's NoRegionError from whichever
    call came first.
    """
    # Imported here, not at the top: start-up time of runs that need no AWS call (boto3 costs ~0.25 s).
    import boto3
    import botocore.exceptions

    region = _options["region"] or os.environ.get("AWS_REGION") or None
    try:
        sess = boto3.session.Session(profile_name=_options["profile"], region_name=region)
    except botocore.exceptions.ProfileNotFound as exc:
        raise UsageError("%s: check --profile / AWS_PROFILE (`aws configure list-profiles`)"
                         % exc) from None
    if not sess.region_name:
        raise UsageError(NO_REGION)
    return sess
