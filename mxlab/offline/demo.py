"""`mxlab demo`: the whole lab on this machine, offline, with the real parts (no AWS account).

The lab stack is deployed with the pinned `npx cdk deploy` into the AWS API emulator on loopback,
a throwaway sshd plays the lab instance, and `mxlab run` / `mxlab compare` (the real deploy step:
outputs, SSM private key, console host keys, agent upload, conda env) classify the sample photos
on it with the real models from the local zoo (served over HTTP). Everything started is stopped at the end,
on error and on Ctrl-C/SIGTERM; only the results folder is kept.

It needs what scripts/setup makes (./scripts/demo runs both): the venv, node_modules, sshd,
build/zoo and build/photos. Installed with `pip install 'mxlab[offline]'` (no checkout): the CDK CLI on
PATH (or MXLAB_CDK_CLI), and --zoo-dir/--photos name a local zoo and the photos. Composition of the
parts: mxlab/offline/lab.py (shared with
`mxlab sandbox` and the tests).
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

from cdk import cli as cdk_cli
from mxlab.atomic import write_atomic
from mxlab.offline import REPO_ROOT, sandbox
from mxlab.results import rundir
from mxlab import status_codes

PHOTOS = ("chelsea.jpg", "coffee.jpg", "astronaut.jpg", "rocket.jpg")
RUN_MODEL = "efficientnet-lite0"
COMPARE_MODELS = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")


def _say(text):
    print("\033[1m[demo]\033[0m %s" % text if sys.stderr.isatty() else "[demo] %s" % text,
          file=sys.stderr, flush=True)


def build_parser():
    p = argparse.ArgumentParser(prog="mxlab demo", description=__doc__.splitlines()[0])
    checkout = cdk_cli.in_checkout()
    p.add_argument("--results", default=str(REPO_ROOT / "results" / "demo") if checkout else "results/demo",
                   metavar="DIR",
                   help="where each demo run keeps its results and deploy log (default %(default)s)")
    p.add_argument("--facts", metavar="FILE",
                   help="write what the demo started (PIDs, ports, folders) as JSON here, as soon as known")
    p.add_argument("--zoo-dir", metavar="DIR", default=str(REPO_ROOT / "build" / "zoo") if checkout else None,
                   help="the local model zoo (scripts/build-local-zoo DIR; default %(default)s)")
    p.add_argument("--photos", metavar="DIR", default=str(REPO_ROOT / "build" / "photos") if checkout else None,
                   help="a folder holding %s (default %%(default)s)" % ", ".join(PHOTOS))
    return p


def _new_dirs(parent, before):
    return sorted(p for p in parent.glob("*") if p.is_dir() and p not in before) if parent.is_dir() else []


def _write_facts(path, facts):
    if path:
        write_atomic(Path(path), json.dumps(facts, indent=2) + "\n")


def run_demo(results_root, facts_file=None, say=_say, zoo_dir=None, photos_dir=None):
    """The demo's flow; returns (exit status, {"run": dir, "compare": dir}) (dirs None if not reached).
    zoo_dir, photos_dir: default the checkout's build/zoo and build/photos."""
    from mxlab.offline.lab import OfflineLab

    sandbox.quiet_emulator()

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-%d" % os.getpid()
    out_dir = Path(results_root).resolve() / stamp
    out_dir.mkdir(parents=True, exist_ok=True)
    here = Path.cwd()
    shots = Path(photos_dir) if photos_dir else REPO_ROOT / "build" / "photos"
    photos = [os.path.relpath(str(shots / p)) if (shots / p).is_relative_to(here) else str(shots / p)
              for p in PHOTOS]
    done = {"run": None, "compare": None}
    facts = {"demo_pid": os.getpid(), "results": str(out_dir)}

    def on_fact(new):
        facts.update(new)
        _write_facts(facts_file, facts)

    on_fact({})
    with OfflineLab(say=say, log_dir=out_dir, on_fact=on_fact, zoo_dir=zoo_dir) as lab:
        shown = os.path.relpath(str(out_dir), str(here))  # children run here
        common = ["--stack", lab.stack, "--ssh-port", lab.ssh_port, "--zoo", lab.zoo_url,
                  "--results", out_dir if shown.startswith("..") else shown]
        stack_results = out_dir / lab.stack
        steps = (("run", ["run", "--model", RUN_MODEL, "--top-k", "3"]),
                 ("compare", ["compare", "--models", ",".join(COMPARE_MODELS)]))
        for name, args in steps:
            argv = args + common + photos
            say("$ MXLAB_HOME=%s AWS_ENDPOINT_URL=%s mxlab %s"
                % (lab.mxlab_home, lab.emulator.endpoint_url, " ".join(str(a) for a in argv)))
            before = set(stack_results.glob("*")) if stack_results.is_dir() else set()
            code = lab.mxlab(*argv, cwd=here)
            new = _new_dirs(stack_results, before)
            done[name] = new[-1] if new else None
            if code != status_codes.SUCCESS:
                say("mxlab %s failed (exit %d); stopping the lab" % (name, code))
                return status_codes.FAILED, done
        on_fact({"run_dir": str(done["run"]), "compare_dir": str(done["compare"])})
    return status_codes.SUCCESS, done


def _shown(path):
    """Relative to here when inside it (shorter), else absolute."""
    rel = os.path.relpath(str(path))
    return str(path) if rel.startswith("..") else rel


def print_epilogue(done, elapsed):
    print()
    print("Demo finished in %.0f s; everything it started is stopped." % elapsed)
    if done.get("run"):
        print("  deploy   log:        %s" % _shown(done["run"].parent.parent / "deploy.log"))
    for name in ("run", "compare"):
        if done.get(name):
            for f in rundir.host_files(done[name]).values():
                print("  %-8s JSON lines: %s" % (name, _shown(f)))
    print()
    print("The same on real AWS (your credentials; the instance costs money until `mxlab down`):")
    print("  mxlab up -c ssh_cidr=$(curl -s https://checkip.amazonaws.com)/32")
    print("  mxlab run --model resnet-50 build/photos/chelsea.jpg build/photos/coffee.jpg")
    print("  mxlab compare --models resnet-50,inception-bn,vgg16 build/photos")
    print("  mxlab down")


def main(argv=None):
    args = build_parser().parse_args(argv)
    results = os.path.abspath(args.results)  # before the chdir below
    facts = os.path.abspath(args.facts) if args.facts else None
    zoo_dir = os.path.abspath(args.zoo_dir) if args.zoo_dir else None
    photos_dir = os.path.abspath(args.photos) if args.photos else None
    if not cdk_cli.in_checkout() and not (zoo_dir and photos_dir):
        print("mxlab demo: installed without a checkout, it needs --zoo-dir DIR (a local model zoo: "
              "python -m localzoo.build DIR) and --photos DIR (holding %s)" % ", ".join(PHOTOS), file=sys.stderr)
        return status_codes.USAGE
    if cdk_cli.in_checkout():
        os.chdir(str(REPO_ROOT))  # the shown paths are the checkout's, as ./scripts/demo prints them
    if not sys.stdout.isatty():
        os.environ.setdefault("COLUMNS", "120")  # rich's 80 for a pipe cuts image and model names
    missing = sandbox.missing_prerequisites(PHOTOS, zoo_dir, photos_dir)
    if missing:
        print("mxlab demo: missing (in a checkout ./scripts/demo sets these up):\n  " + "\n  ".join(missing),
              file=sys.stderr)
        return status_codes.USAGE

    start = time.monotonic()

    def demo():
        code, done = run_demo(results, facts, zoo_dir=zoo_dir, photos_dir=photos_dir)
        if code == status_codes.SUCCESS:
            print_epilogue(done, time.monotonic() - start)
        return code

    return sandbox.run_interruptible(demo, _say, "interrupted: everything the demo started is stopped",
                                     status_codes.INTERRUPTED)


if __name__ == "__main__":
    sys.exit(main())
