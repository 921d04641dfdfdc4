"""mxlab/lab/aws.py: sessions with a region, or a clear error saying how to set one."""
import pytest

from mxlab.lab import aws
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


EC2_REFUSAL = ("You are not authorized to perform this operation. User: arn:aws:iam::123456789012:user/org "
               "is not authorized to perform: ec2:StartInstances on resource: "
               "arn:aws:ec2:us-east-1:123456789012:instance/i-0abc because no identity-based policy allows "
               "the ec2:StartInstances action. Encoded authorization failure message: AbC")


@pytest.mark.parametrize("code,message,action", [
    ("UnauthorizedOperation", EC2_REFUSAL, "ec2:StartInstances"),
    ("UnauthorizedOperation", "You are not authorized to perform this operation.", "ec2:StartInstances"),
    ("AccessDenied", "User: arn:aws:iam::1:user/o is not authorized to perform: iam:PassRole on resource: r",
     "iam:PassRole"),
])
def test_an_iam_refusal_is_one_mxlab_message_naming_the_action(no_aws_config, monkeypatch, code, message, action):
    from botocore.stub import Stubber

    from mxlab.errors import AwsAccessDenied
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    aws.configure(region="us-east-1")
    ec2 = aws.session().client("ec2")
    with Stubber(ec2) as stub:
        stub.add_client_error("start_instances", service_error_code=code, service_message=message,
                              http_status_code=403)
        with pytest.raises(AwsAccessDenied) as refused:
            ec2.start_instances(InstanceIds=["i-0abc"])
    assert refused.value.action == action
    assert str(refused.value) == ("AWS refused %s: the IAM policy of this user does not allow it; "
                                  "`mxlab policy` prints what mxlab needs" % action)
    # any other error stays botocore's, for the callers that handle it
    with Stubber(ec2) as stub:
        stub.add_client_error("start_instances", service_error_code="IncorrectInstanceState", http_status_code=400)
        with pytest.raises(ec2.exceptions.ClientError):
            ec2.start_instances(InstanceIds=["i-0abc"])


def test_the_cdk_clis_refusal_lines_name_the_action():
    from mxlab.errors import AwsAccessDenied
    line = ('MxnetLab | 1:05:18 AM | CREATE_FAILED | AWS::IAM::Role | Access/InstanceRole Resource handler '
            'returned message: "User: arn:aws:iam::1:user/o is not authorized to perform: iam:CreateRole on '
            'resource: arn:aws:iam::1:role/MxnetLab-x because no identity-based policy allows the '
            'iam:CreateRole action')
    assert AwsAccessDenied.action_in(line) == "iam:CreateRole"
    assert AwsAccessDenied.action_in("MxnetLab: deploying... [1/1]") is None
