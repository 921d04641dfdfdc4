"""The mxlab CDK app: the lab's stacks, one construct per concern.

    npx cdk deploy --all -c ssh_cidr=203.0.113.7/32 [-c attendees=30]
        [-c instance_type=g4dn.xlarge] --outputs-file outputs.json

attendees is 1..100. Deployed without `cdk bootstrap` (LegacyStackSynthesizer,
template inline, no assets), one stack holds at most 20 attendees (51,200-byte
inline template, 200 outputs), so the lab is split into shard stacks:
`<stack_name>` (the one VPC, security group, role, launch template and
attendees 1-20), `<stack_name>-2` (21-40) ... `<stack_name>-5` (81-100), which
import the network from the first stack (Fn::ImportValue) and depend on it.
Deploy and destroy with `--all` (the app only ever holds one lab's stacks).

Outputs, in every stack: `LabAttendees` (the lab's total), `LabStacks` (all its
stack names, comma-separated, deploy order), `LabSshUser`, and for each attendee
that stack holds, numbered globally, `Attendee{n}InstanceId`, `…PublicIp`,
`…PublicDns`, `…KeyPairId`, `…PrivateKeyParameter`. A sharded first stack also has `LabSubnetId`,
`LabSecurityGroupId`, `LabInstanceProfile` (`LabImageTemplateId`): the exports
(`LabSubnetId2` too from 60 attendees). `LabDeadline`: when the instances stop.

config.py validates the context and defines each default (LabConfig);
lab_stack.py builds the stacks (build_lab), wiring network.py, access.py,
instances.py, cost_guard.py and deadline.py, and publishes the outputs;
cli.py holds how to run the pinned CLI quietly and offline. Run from the repo
root (cdk.json's app is cdk/app.sh); not an installed package.
"""
