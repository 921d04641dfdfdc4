"""The lab as AWS sees it: deploying it (`mxlab up/down/extend`: deploy.py, redeploy.py, preflight.py), where its
hosts are (targets.py: the stacks' outputs, or a direct host), the boto3 clients (aws.py), the organiser's
least-privilege policy (iam_policy.py) and the operator's local state under ~/.mxlab (statedir.py).

The lowest layer: nothing here reaches a host over SSH.
"""
# The mxlab subpackages this one may import (tests/test_architecture.py walks the graph).
MAY_IMPORT = ()
