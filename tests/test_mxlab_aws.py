"""mxlab/aws.py: sessions with a region, or a clear error saying how to set one."""
import pytest

from mxlab import aws
from mxlab.errors import UsageError


@pytest.fixture
def no_aws_config(monkeypatch, tmp_path):
    """A machine with no region anywhere: no variables, empty config files."""
    for key in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    empty = tmp_path / "aws-config"
    empty.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("MXLAB_HOME", str(tmp_path / "home"))
    aws.configure()
    yield
    aws.configure()


@pytest.mark.aws_behaviour
def test_mxlab_hosts_without_any_region_says_how_to_set_one(no_aws_config, mxlab_cli):
    code, out, err = mxlab_cli("hosts", "--stack", "Lab")
    assert code == 2
    assert "no AWS region is configured: pass --region" in err
    assert "AWS_REGION" in err and "aws configure set region" in err
    assert "Traceback" not in err and "NoRegionError" not in err


def test_the_region_comes_from_the_flag_then_the_environment(no_aws_config, monkeypatch):
    with pytest.raises(UsageError):
        aws.session()
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")  # boto3's own
    assert aws.session().region_name == "eu-west-1"
    monkeypatch.setenv("AWS_REGION", "eu-west-2")  # before it, as in the AWS CLI v2
    assert aws.session().region_name == "eu-west-2"
    aws.configure(region="ap-south-1")
    assert aws.session().region_name == "ap-south-1"


def test_an_unknown_profile_is_a_usage_error(no_aws_config):
    aws.configure(profile="nosuchprofile", region="us-east-1")
    with pytest.raises(UsageError, match="nosuchprofile"):
        aws.session()
