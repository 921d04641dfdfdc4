"""The mxlab CDK app: the lab stack, one construct per concern.

    npx cdk deploy -c ssh_cidr=203.0.113.7/32 [-c attendees=3] [-c instance_type=p2.xlarge]
        --outputs-file outputs.json

config.py validates the context (defaults in cdk.json); lab_stack.py wires
network.py, access.py, instances.py and cost_guard.py and publishes the outputs;
cli.py holds how to run the pinned CLI quietly and offline. Run from the repo
root (cdk.json's app is cdk/app.sh); not an installed package.
"""
