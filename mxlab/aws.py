"""boto3 sessions the way the AWS CLI takes profile and region (flags, then environment)."""
import boto3

_options = {"profile": None, "region": None}


def configure(profile=None, region=None):
    _options.update(profile=profile, region=region)


def session():
    return boto3.session.Session(profile_name=_options["profile"], region_name=_options["region"])
