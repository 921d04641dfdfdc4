"""Lab private keys: read once from the SSM SecureString the key pair created, kept 0600 locally.

The key's text is never logged or printed; errors name the parameter, not its value.
"""
import logging
import os

from mxlab.atomic import write_atomic
from mxlab.lab import aws
from mxlab.errors import MxlabError

log = logging.getLogger(__name__)


def write_private(path, text):
    """Write `text` to `path` readable by the owner only, replacing any earlier file atomically."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(path, text if text.endswith("\n") else text + "\n", mode=0o600)


def ensure_key(target):
    """Make sure target.identity holds the attendee's private key; fetch it from SSM if missing."""
    path = target.identity
    if path.is_file():
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
        return path
    if not target.key_parameter:
        raise MxlabError("%s: no private key at %s and no PrivateKeyParameter output to fetch it from"
                         % (target.label, path))
    import botocore.exceptions  # here, not at the top: start-up time of one-photo runs (botocore costs ~0.2 s)

    ssm = aws.client("ssm")
    try:
        value = ssm.get_parameter(Name=target.key_parameter, WithDecryption=True)["Parameter"]["Value"]
    except botocore.exceptions.ClientError as exc:
        raise MxlabError("%s: cannot read the private key from SSM parameter %s: %s"
                         % (target.label, target.key_parameter, exc.response.get("Error", {}).get("Code", exc)))
    write_private(path, value)
    log.info("%s: private key from %s saved to %s (0600)", target.label, target.key_parameter, path)
    return path
