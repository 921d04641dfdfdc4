"""The emulator's IAM evaluation where it differs from moto's own (mxlab/offline/iam_enforcement.py):
IAM's wildcards. (The enforcement end to end: tests/test_iam_enforced_deploy.py, _sandbox.py.)"""
import json

from mxlab.offline.emulator import install_extensions


def permitted(resource_pattern, resource):
    from moto.iam.access_control import IAMPolicy, PermissionResult
    install_extensions()  # iam_enforcement's patches, once
    policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "cloudformation:Describe*", "Resource": resource_pattern}]})
    return IAMPolicy(policy).is_action_permitted("cloudformation:DescribeStacks", resource) \
        == PermissionResult.PERMITTED


def test_a_question_mark_is_one_character_and_a_dot_only_a_dot():
    shards = "arn:aws:cloudformation:us-east-1:*:stack/Lab-?/*"
    assert permitted(shards, "arn:aws:cloudformation:us-east-1:123456789012:stack/Lab-2/0f1e")
    assert not permitted(shards, "arn:aws:cloudformation:us-east-1:123456789012:stack/Lab-22/0f1e")
    assert not permitted(shards, "arn:aws:cloudformation:us-east-1:123456789012:stack/Lab/0f1e")
    assert not permitted("arn:aws:cloudformation:us-east-1:*:stack/L.b/*",
                         "arn:aws:cloudformation:us-east-1:123456789012:stack/Lab/0f1e")
