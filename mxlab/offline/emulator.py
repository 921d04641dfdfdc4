"""An AWS API emulator on 127.0.0.1: moto's server, in-process, plus what moto lacks.

Extensions (each a gap between moto 5.2.5 and AWS, found by deploying the real CDK app into it):
- AWS::EC2::KeyPair in CloudFormation: creates the key pair (ed25519 or rsa) and,
  as AWS does, the SecureString /ec2/keypair/<key-pair-id> holding the private key.
- AWS::CloudWatch::Alarm in CloudFormation (moto skips it): a real moto alarm.
- AWS::EC2::Instance launched from a launch template (no ImageId of its own).
- Reserved /aws/ SSM parameters (PutParameter refuses them): the DLAMI one injected.
- Stack Outputs after a change set (what `cdk deploy` uses) are rebuilt, their
  Exports published and Fn::ImportValue resolved (cross-stack references between
  the lab's shard stacks); change sets behave as the CLI expects on a second
  deploy (no-change sets, cleanup).
- EC2 instances as AWS runs them (ec2_instances.py): loopback public IPs, a new one after
  stop/start, host keys on the console at first boot only, no `Latest` console on Xen
  types, the cost-guard alarm's stop action carried out.
- The Deep Learning AMI behind its public SSM parameter (ec2_images.py): x86_64, root on
  /dev/sda1, a 75 GB root snapshot (moto's images are arm64/x86 Amazon Linux, all "15 GB").
- SSM Run Command (AWS-RunShellScript) runs on the instance (ssm_run_command.py).
- Throttling on demand (throttle.py): a share of calls answered RequestLimitExceeded/Throttling.
- IAM enforced, when asked (enforce_iam=True; iam_enforcement.py): every request signed by an IAM
  user's key and allowed by its policies, CloudFormation acting with the deployer's permissions;
  the emulator's own calls then use an administrator user's keys (credentials).
- CloudWatch alarms evaluated against the metric data put to them (cloudwatch_alarms.py).

Standalone: `python -m mxlab.offline.emulator --port P` prints the endpoint, stays up
until SIGTERM/Ctrl-C.
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading

from cdk.cli import app_dir, cdk_argv, quiet_env  # stdlib-only module
from cdk.config import DEFAULT_AMI_SSM_PARAMETER
from mxlab.offline import ec2_images, ec2_instances, scheduler
from mxlab.offline.account import ACCOUNT_ID, DEFAULT_REGION
from mxlab import status_codes

# What clients sign with when IAM is not enforced (moto accepts any key then).
TESTING_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing"}
ADMIN_USER = "mxlab-sandbox-admin"
ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}

_patched = False


def host_keys_block(pubkey_lines):
    """cloud-init's console block listing the host's public keys."""
    body = "\n".join("ec2: " + line.strip() for line in pubkey_lines)
    return ("ec2: #############################################################\n"
            "-----BEGIN SSH HOST KEY KEYS-----\n%s\n-----END SSH HOST KEY KEYS-----\n"
            "ec2: #############################################################\n"
            % body)


def install_extensions():
    """Extend moto, once per process (the server runs in this process): the one guard for every extension
    (each module's install() patches moto's classes again whenever it is called, so only this calls them)."""
    global _patched
    if _patched:
        return
    _patched = True

    # -- instance life cycle (stop/start, new public IP), console output ----
    ec2_instances.install()
    ec2_images.install(DEFAULT_AMI_SSM_PARAMETER)
    _patch_instances_from_launch_template()
    _patch_subnet_public_ip_mapping()
    _patch_vpc_deletions()
    _refresh_cfn_models(_add_cfn_key_pair(), _add_cfn_alarm())
    _patch_change_set_outputs()
    _patch_change_sets()
    _patch_ssm_use_previous_value()
    _patch_deleted_stack_outputs()

    from mxlab.offline import (  # more that moto lacks, one module each
        cloudformation_rules, cloudwatch_alarms, iam_enforcement, quotas, ssm_run_command, throttle)
    for extension in (cloudformation_rules, cloudwatch_alarms, quotas, scheduler, ssm_run_command, throttle,
                      iam_enforcement):
        extension.install()


def _patch_instances_from_launch_template():
    """AWS::EC2::Instance from a launch template (no ImageId of its own), its public IP as the subnet says."""
    from moto.ec2.models import ec2_backends, instances
    original_create = instances.Instance.create_from_cloudformation_json.__func__

    def create_instance(cls, resource_name, cloudformation_json, account_id,
                        region_name, **kwargs):
        props = cloudformation_json["Properties"]
        spec = props.get("LaunchTemplate")
        if spec and "ImageId" not in props:
            backend = ec2_backends[account_id][region_name]
            template = backend.get_launch_template(spec["LaunchTemplateId"])
            version = template.get_version(spec.get("Version", "$Default"))
            props["ImageId"] = version.data["ImageId"]
        instance = original_create(cls, resource_name, cloudformation_json,
                                   account_id, region_name, **kwargs)
        # moto's CloudFormation path ignores the subnet's MapPublicIpOnLaunch
        # (both on the subnet and here).
        subnet_id = props.get("SubnetId")
        if subnet_id and not instance.public_ip:
            subnet = ec2_backends[account_id][region_name].get_subnet(subnet_id)
            if str(subnet.map_public_ip_on_launch).lower() == "true":
                instance.nics[0].public_ip = ec2_instances.next_public_ip()
        return instance
    instances.Instance.create_from_cloudformation_json = classmethod(create_instance)


def _patch_subnet_public_ip_mapping():
    """moto's CloudFormation path ignores a subnet's MapPublicIpOnLaunch."""
    from moto.ec2.models import subnets
    original_subnet = subnets.Subnet.create_from_cloudformation_json.__func__

    def create_subnet(cls, resource_name, cloudformation_json, *args, **kwargs):
        subnet = original_subnet(cls, resource_name, cloudformation_json, *args, **kwargs)
        mapped = cloudformation_json["Properties"].get("MapPublicIpOnLaunch", False)
        subnet.map_public_ip_on_launch = str(mapped).lower() == "true"
        return subnet
    subnets.Subnet.create_from_cloudformation_json = classmethod(create_subnet)


def _patch_vpc_deletions():
    """Deletions moto's CloudFormation lacks (else the VPC cannot go)."""
    from moto.ec2.models import internet_gateways, route_tables

    def delete_route_table(self, account_id, region_name):
        if self.main_association_id is None:
            self._associations.clear()
            self._routes.clear()
            self.ec2_backend.route_tables.pop(self.id, None)
    route_tables.RouteTable.delete = delete_route_table

    def delete_gateway(self, account_id, region_name):
        self.vpc = None
        self.ec2_backend.internet_gateways.pop(self.id, None)
    internet_gateways.InternetGateway.delete = delete_gateway


class _KeyPairResource:
    """What an AWS::EC2::KeyPair resource is to CloudFormation (its type, Ref, GetAtt and the SSM
    parameter of its private key); _add_cfn_key_pair makes it a moto model (moto imported only there)."""

    def __init__(self, key_pair, account_id, region_name):
        self.key_pair = key_pair
        self.account_id = account_id
        self.region_name = region_name

    @staticmethod
    def cloudformation_type():
        return "AWS::EC2::KeyPair"

    @staticmethod
    def cloudformation_name_type():
        return "KeyName"

    @property
    def physical_resource_id(self):
        return self.key_pair.key_name  # Ref gives the key name, as in AWS

    @classmethod
    def has_cfn_attr(cls, attr):
        return attr in ("KeyPairId", "KeyFingerprint")

    def get_cfn_attribute(self, attribute_name):
        if attribute_name == "KeyPairId":
            return self.key_pair.id
        if attribute_name == "KeyFingerprint":
            return self.key_pair.key_fingerprint
        raise KeyError(attribute_name)

    @property
    def parameter_name(self):
        return "/ec2/keypair/%s" % self.key_pair.id


def _add_cfn_key_pair():
    """AWS::EC2::KeyPair: the key pair and, as AWS does, the SecureString /ec2/keypair/<id>
    holding its private key."""
    from moto.core.common_models import CloudFormationModel
    from moto.ec2.models import ec2_backends
    from moto.ssm.models import ssm_backends

    # moto finds models as CloudFormationModel's direct subclasses: this class, not the one above.
    class CfnKeyPair(_KeyPairResource, CloudFormationModel):
        # moto files models by the 2nd part of their module name (the service);
        # this one belongs with EC2, whether imported or run as __main__.
        __module__ = "moto.ec2.cfn_key_pair"

        @classmethod
        def create_from_cloudformation_json(cls, resource_name, cloudformation_json,
                                            account_id, region_name, **kwargs):
            key_pair = _key_pair_from_properties(
                ec2_backends[account_id][region_name], resource_name, cloudformation_json["Properties"])
            model = cls(key_pair, account_id, region_name)
            if key_pair.material:
                _store_private_key(ssm_backends[account_id][region_name], model.parameter_name, key_pair)
            return model

        def delete(self, account_id, region_name):
            ec2_backends[account_id][region_name].delete_key_pair(self.key_pair.key_name)
            ssm = ssm_backends[account_id][region_name]
            if self.parameter_name in ssm._parameters:
                ssm.delete_parameter(self.parameter_name)
    return CfnKeyPair


def _key_pair_from_properties(backend, resource_name, props):
    """The key pair an AWS::EC2::KeyPair resource asks for: imported, or made (ed25519 or rsa)."""
    tags = {t["Key"]: t["Value"] for t in props.get("Tags", [])}
    if props.get("PublicKeyMaterial"):
        return backend.import_key_pair(resource_name, props["PublicKeyMaterial"].encode(), tags)
    return backend.create_key_pair(resource_name, props.get("KeyType", "rsa"), tags)


def _store_private_key(ssm, parameter_name, key_pair):
    """As AWS does, a made key pair's private key goes into SSM as a SecureString."""
    ssm.put_parameter(
        name=parameter_name, description=None,
        value=key_pair.key_material, parameter_type="SecureString",
        allowed_pattern=None, keyid=None, overwrite=False, tags=[],
        data_type="text", tier=None, policies=None)


def _add_cfn_alarm():
    """AWS::CloudWatch::Alarm (the cost guard; moto skips it): a real moto alarm."""
    from moto.cloudwatch.models import cloudwatch_backends
    from moto.core.common_models import CloudFormationModel

    class CfnAlarm(CloudFormationModel):
        __module__ = "moto.cloudwatch.cfn_alarm"  # see CfnKeyPair

        def __init__(self, name):
            self.name = name

        @staticmethod
        def cloudformation_type():
            return "AWS::CloudWatch::Alarm"

        @staticmethod
        def cloudformation_name_type():
            return "AlarmName"

        @property
        def physical_resource_id(self):
            return self.name

        @classmethod
        def create_from_cloudformation_json(cls, resource_name, cloudformation_json,
                                            account_id, region_name, **kwargs):
            p = cloudformation_json["Properties"]
            cloudwatch_backends[account_id][region_name].put_metric_alarm(
                name=resource_name, namespace=p.get("Namespace"),
                metric_name=p.get("MetricName"),
                comparison_operator=p["ComparisonOperator"],
                evaluation_periods=int(p["EvaluationPeriods"]),
                period=int(p.get("Period", 60)), threshold=float(p.get("Threshold", 0)),
                statistic=p.get("Statistic"), description=p.get("AlarmDescription"),
                dimensions=[{"Name": d["Name"], "Value": d["Value"]}
                            for d in p.get("Dimensions", [])],
                alarm_actions=p.get("AlarmActions", []),
                treat_missing_data=p.get("TreatMissingData"))
            return cls(resource_name)

        def delete(self, account_id, region_name):
            cloudwatch_backends[account_id][region_name].delete_alarms([self.name])
    return CfnAlarm


def _refresh_cfn_models(*added):
    """moto caches its CloudFormation model lists: drop them so the models added count. moto finds
    models as CloudFormationModel's subclasses, weakly held: `added` keeps them alive until its
    rebuilt cache holds them."""
    from moto.cloudformation import parsing
    for cached in (parsing.get_model_list, parsing.get_model_map,
                   parsing.get_name_type_map):
        cached.cache_clear()
    models = parsing.get_model_map()
    assert all(model.cloudformation_type() in models for model in added)


def _patch_change_set_outputs():
    """Outputs after a change set (what `cdk deploy` uses): rebuilt, their Exports published."""
    from moto.cloudformation import models as cf_models, parsing
    original_apply = cf_models.ChangeSet.apply

    def apply(self):
        # Stacks made by CreateChangeSet get no view of the region's exports
        # (Fn::ImportValue then fails) and never publish their own: wire both,
        # as CreateStack does, so shard stacks can import the first one's ids.
        stack = self.stack
        backend = cf_models.cloudformation_backends[stack.account_id][stack.region_name]
        stack.cross_stack_resources = backend.exports
        stack.resource_map.cross_stack_resources = backend.exports
        original_apply(self)
        stack.template_dict = self.template_dict
        stack.output_map = parsing.OutputMap(
            stack.resource_map, self.template_dict, stack.stack_id)
        new = {e.name: e for e in stack.output_map.exports}
        for name, export in list(backend.exports.items()):
            if export.exporting_stack_id == stack.stack_id and name not in new:
                del backend.exports[name]  # dropped by this update
        backend.exports.update(new)
    cf_models.ChangeSet.apply = apply


def _patch_change_sets():
    """Change sets: what the CLI expects on a second deploy (lookup by name, cleanup, no-change sets)."""
    from moto.cloudformation import models as cf_models
    from moto.cloudformation.exceptions import CloudFormationError

    class ChangeSetNotFound(CloudFormationError):
        code = "ChangeSetNotFoundException"

    backend_class = cf_models.CloudFormationBackend

    def _find_change_set(self, name):
        if name in self.change_sets:
            return name
        for key, change_set in self.change_sets.items():
            if change_set.change_set_name == name:
                return key
        return None

    def delete_change_set(self, change_set_name):
        key = _find_change_set(self, change_set_name)
        if key is not None:  # deleting a gone change set is not an error
            del self.change_sets[key]

    def describe_change_set(self, change_set_name):
        key = _find_change_set(self, change_set_name)
        if key is None:
            raise ChangeSetNotFound("ChangeSet [%s] does not exist" % change_set_name)
        return self.change_sets[key]

    original_execute = backend_class.execute_change_set

    def execute_change_set(self, change_set_name, stack_name=None):
        original_execute(self, change_set_name, stack_name)
        # AWS drops a stack's change sets once one of them is executed.
        key = _find_change_set(self, change_set_name)
        stack_id = self.change_sets[key].stack_id
        for other in [k for k, c in self.change_sets.items() if c.stack_id == stack_id]:
            del self.change_sets[other]
    backend_class.delete_change_set = delete_change_set
    backend_class.describe_change_set = describe_change_set
    backend_class.execute_change_set = execute_change_set
    _allow_unchanged_change_sets()


def _allow_unchanged_change_sets():
    """An unchanged template gives a FAILED "didn't contain changes" change set
    (the backend does that); moto's response layer refused it outright."""
    from moto.cloudformation.responses import CloudFormationResponse
    original_validate = CloudFormationResponse._validate_different_update

    def validate_different_update(self, *args, **kwargs):
        if self._get_action() != "CreateChangeSet":
            original_validate(self, *args, **kwargs)
    CloudFormationResponse._validate_different_update = validate_different_update


def _patch_ssm_use_previous_value():
    """UsePreviousValue hands back the resolved value of an SSM-typed parameter
    (an AMI id), which moto then tries to resolve again as a parameter name."""
    from moto.cloudformation import parsing
    from moto.ssm.models import ssm_backends
    original_parse_ssm = parsing.ResourceMap.parse_ssm_parameter

    def parse_ssm_parameter(self, value, value_type):
        if ssm_backends[self._account_id][self._region_name].get_parameter(value) is None:
            return value
        return original_parse_ssm(self, value, value_type)
    parsing.ResourceMap.parse_ssm_parameter = parse_ssm_parameter


def _patch_deleted_stack_outputs():
    """A deleted stack's Outputs are parsed lazily when it is described (the CLI
    polls it by id): a Ref in them re-creates the resource it names (a subnet,
    then its VPC). Deleted stacks keep no outputs."""
    from moto.cloudformation import models as cf_models, parsing
    backend_class = cf_models.CloudFormationBackend
    original_delete_stack = backend_class.delete_stack

    def delete_stack(self, name_or_stack_id):
        original_delete_stack(self, name_or_stack_id)
        for stack in self.deleted_stacks.values():
            stack.output_map = parsing.OutputMap(
                stack.resource_map, {"Outputs": {}}, stack.stack_id)
    backend_class.delete_stack = delete_stack


def _aws_managed_policies(load):
    """moto knows AWS's managed policies but loads them only when asked (memory, start-up time):
    an attached AmazonSSMManagedInstanceCore is otherwise an empty name. Reloads IAM's backend."""
    from moto.core.config import default_user_config
    from moto.iam.models import iam_backends
    default_user_config.setdefault("iam", {})["load_aws_managed_policies"] = load
    iam_backends[ACCOUNT_ID]["aws"].reset()


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AwsEmulator:
    """moto's server on 127.0.0.1 with the extensions above."""

    def __init__(self, port=None, region=DEFAULT_REGION, enforce_iam=False):
        self.port = port or _free_port()
        self.region = region
        self.enforce_iam = enforce_iam
        self.credentials = dict(TESTING_CREDENTIALS)  # the emulator's own calls (an admin's when enforcing)
        self._server = None

    @property
    def endpoint_url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self):
        install_extensions()
        from moto.server import ThreadedMotoServer
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port,
                                          verbose=False)
        self._server.start()
        self.inject_public_parameter(DEFAULT_AMI_SSM_PARAMETER, self.default_image_id())
        scheduler.start()  # runs due at() schedules (the lab's deadline)
        if self.enforce_iam:
            from mxlab.offline import iam_enforcement
            _aws_managed_policies(True)  # AmazonSSMManagedInstanceCore & co. with their real documents
            self.credentials = self.add_user(ADMIN_USER, [ADMIN_POLICY])
            iam_enforcement.enable()
        return self

    def instance_role_credentials(self, instance_id):
        """What the instance metadata service hands code on the instance: its role's session keys."""
        from moto.sts.models import sts_backends
        profile = self._ec2().iam_instance_profile_associations[instance_id].iam_instance_profile
        (role,) = profile.roles
        assumed = sts_backends[ACCOUNT_ID]["aws"].assume_role(
            region_name=self.region, role_session_name=instance_id, role_arn=role.arn, policy=None,
            duration=3600, external_id=None)
        return {"AWS_ACCESS_KEY_ID": assumed.access_key_id, "AWS_SECRET_ACCESS_KEY": assumed.secret_access_key,
                "AWS_SESSION_TOKEN": assumed.session_token}

    # -- IAM users (what an account's administrator makes) -------------------
    def add_user(self, name, documents):
        """An IAM user with these policy documents attached (managed policies); its credentials,
        as the environment takes them."""
        iam = self.boto3_client("iam")
        iam.create_user(UserName=name)
        self.set_user_policies(name, documents)
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}

    def set_user_policies(self, name, documents):
        """Replace the user's managed policies with these documents (named <user>-1, -2 ...)."""
        iam = self.boto3_client("iam")
        for attached in iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]:
            iam.detach_user_policy(UserName=name, PolicyArn=attached["PolicyArn"])
            iam.delete_policy(PolicyArn=attached["PolicyArn"])
        for i, document in enumerate(documents, 1):
            arn = iam.create_policy(PolicyName="%s-%d" % (name, i),
                                    PolicyDocument=json.dumps(document))["Policy"]["Arn"]
            iam.attach_user_policy(UserName=name, PolicyArn=arn)

    def stop(self):
        if self.enforce_iam:
            from mxlab.offline import iam_enforcement
            iam_enforcement.disable()
            _aws_managed_policies(False)
        if self._server is not None:
            self._server.stop()
            self._server = None
        # Backends are process-global: a later emulator starts empty (and unthrottled).
        scheduler.stop()
        from mxlab.offline import throttle
        throttle.set_rate(0)
        from moto.backends import get_backend
        for name in ("cloudformation", "ec2", "ssm", "iam", "cloudwatch", "sts", "scheduler", "service-quotas"):
            for account in list(get_backend(name).keys()):
                get_backend(name)[account].reset()
        ec2_instances.reset()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- state helpers (in-process: the server shares these backends) -------
    def _ec2(self):
        from moto.ec2.models import ec2_backends
        return ec2_backends[ACCOUNT_ID][self.region]

    def default_image_id(self):
        """The Deep Learning AMI's stand-in: x86_64, root on /dev/sda1 (ec2_images.py)."""
        return ec2_images.deep_learning_ami(self._ec2())

    def set_throttle(self, rate):
        """Answer this share of EC2/CloudFormation/SSM/Service Quotas calls as AWS throttles them."""
        from mxlab.offline import throttle
        return throttle.set_rate(rate)

    def register_image(self, name, **facts):
        """Another image (architecture, root_device_name, root_gb): a test's own AMI."""
        return ec2_images.register(self._ec2(), name, **facts)

    def inject_public_parameter(self, name, value):
        """Put a reserved /aws/... parameter, as AWS publishes them."""
        from moto.core.utils import utcnow
        from moto.ssm.models import Parameter, ssm_backends
        params = ssm_backends[ACCOUNT_ID][self.region]._parameters
        version = len(params[name]) + 1
        params[name].append(Parameter(
            account_id=ACCOUNT_ID, name=name, value=value, parameter_type="String",
            description=None, allowed_pattern=None, keyid=None,
            last_modified_date=utcnow(), version=version, data_type="aws:ec2:image"))

    def set_console_output(self, instance_id, text):
        """What the instance printed on its first boot (later boots print no host keys)."""
        ec2_instances.set_first_boot_console(instance_id, text)

    def set_host_keys(self, instance_id, pubkey_lines):
        """GetConsoleOutput then shows cloud-init's host key block with these keys."""
        self.set_console_output(instance_id, "Cloud-init v. 23.1 running\n"
                                + host_keys_block(pubkey_lines)
                                + "Cloud-init v. 23.1 finished\n")

    def env(self, base=None):
        """Environment for a subprocess (AWS CLI/SDK/CDK CLI) talking to this emulator."""
        env = quiet_env(base)
        for key in list(env):  # no real profile or credentials may leak in
            if key.startswith("AWS_"):
                del env[key]
        env.update(self.credentials)
        env.update({
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        })
        return env

    def boto3_client(self, service, config=None):
        import boto3

        from mxlab.lab import aws
        return boto3.client(service, endpoint_url=self.endpoint_url, region_name=self.region,
                            aws_access_key_id=self.credentials["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=self.credentials["AWS_SECRET_ACCESS_KEY"],
                            aws_session_token=self.credentials.get("AWS_SESSION_TOKEN"),
                            config=config or aws.retry_config())

    def cdk_command(self, command, context=None, outputs_file=None, stack=None,
                    extra=()):
        """(argv, env) for `npx cdk <command> ...` against this emulator."""
        return (cdk_argv(command, context=context, outputs_file=outputs_file,
                         stack=stack, extra=extra), self.env())

    def run_cdk(self, command, context=None, outputs_file=None, stack=None,
                extra=(), timeout=600):
        argv, env = self.cdk_command(command, context, outputs_file, stack, extra)
        return subprocess.run(argv, env=env, cwd=str(app_dir()), capture_output=True,
                              text=True, timeout=timeout)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m mxlab.offline.emulator",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--region", default=DEFAULT_REGION)
    args = parser.parse_args(argv)
    emulator = AwsEmulator(port=args.port or None, region=args.region).start()
    print(emulator.endpoint_url, flush=True)
    print(json.dumps({k: v for k, v in emulator.env({}).items()
                      if k.startswith("AWS_")}), file=sys.stderr, flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    emulator.stop()
    return status_codes.SUCCESS


if __name__ == "__main__":
    sys.exit(main())
