"""EC2 on-demand vCPU quotas in the emulator (moto 5.2.5's Service Quotas knows only VPC).

GetServiceQuota(ServiceCode=ec2, QuotaCode=L-...) answers with the vCPU quotas
mxlab's pre-flight reads (mxlab/lab/preflight.py VCPU_QUOTAS): generous defaults, so
a sandbox lab deploys, and set_quota() for a test that needs an account whose
quota is too small. The values live on moto's per-region backend, so resetting
the backends (AwsEmulator.stop) resets them.
"""
from mxlab.offline.account import ACCOUNT_ID, DEFAULT_REGION

DEFAULT_VCPUS = 1152.0  # a seasoned account's standard quota; new ones get far less


def install():
    """Patch moto; emulator.install_extensions() calls it, once per process."""
    from moto.servicequotas.models import ServiceQuotasBackend

    original = ServiceQuotasBackend.get_service_quota

    def get_service_quota(self, service_code, quota_code):
        if service_code == "ec2":
            quota = _ec2_quota(self, quota_code)
            if quota is not None:
                return quota
        return original(self, service_code, quota_code)
    ServiceQuotasBackend.get_service_quota = get_service_quota


def set_quota(quota_code, value, region=DEFAULT_REGION, account_id=ACCOUNT_ID):
    """Make GetServiceQuota(ec2, quota_code) answer `value` vCPUs in this region."""
    from moto.servicequotas.models import servicequotas_backends
    backend = servicequotas_backends[account_id][region]
    backend.__dict__.setdefault("mxlab_ec2_vcpus", {})[quota_code] = float(value)


def _ec2_quota(backend, quota_code):
    from mxlab.lab.preflight import VCPU_QUOTAS
    names = {code: name for code, name, _ in VCPU_QUOTAS}
    if quota_code not in names:
        return None
    value = backend.__dict__.get("mxlab_ec2_vcpus", {}).get(quota_code, DEFAULT_VCPUS)
    return {
        "ServiceCode": "ec2", "ServiceName": "Amazon Elastic Compute Cloud (Amazon EC2)",
        "QuotaArn": "arn:aws:servicequotas:%s:%s:ec2/%s" % (backend.region_name,
                                                           backend.account_id, quota_code),
        "QuotaCode": quota_code, "QuotaName": names[quota_code], "Value": value,
        "Unit": "None", "Adjustable": True, "GlobalQuota": False,
    }
