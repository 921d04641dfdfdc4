"""`mxlab`: stand up the lab (up/down), list its hosts, run and compare models on them, open a shell.

Exit status: 0 success · 1 a host or command failed · 2 bad input · 3 some inputs failed.
"""
import argparse
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

# Modules only some commands need are imported in those commands: start-up time of one-photo runs. Here: what
# parsing and every command need. Importing this module imports no rich, paramiko or model catalogue, nor
# boto3, botocore, cv2 or numpy (tests/test_mxlab_startup.py).
from agent import contract
from mxlab.hosts import backoff
from mxlab.lab import aws, targets
from mxlab.errors import AwsAccessDenied, MxlabError, UsageError
from mxlab.runs import DEFAULT_PARALLEL
from mxlab import status_codes

log = logging.getLogger("mxlab")


def _positive(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a positive integer, got %r" % text)
    if value < 1:
        raise argparse.ArgumentTypeError("expected a positive integer, got %r" % text)
    return value


def _positive_hours(text):
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:  # NaN fails too
        raise argparse.ArgumentTypeError("expected a number of hours above 0 (e.g. 2 or 1.5), got %r" % text)
    return value


def _attendees(text):
    try:
        nums = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("expected attendee numbers like 1 or 1,3, got %r" % text)
    if not nums or min(nums) < 1:
        raise argparse.ArgumentTypeError("expected attendee numbers >= 1, got %r" % text)
    return nums


def build_parser():
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("target: the lab stack (default) or one SSH host")
    g.add_argument("--stack", default=os.environ.get("MXLAB_STACK", targets.DEFAULT_STACK),
                   help="CloudFormation stack name (default %(default)s)")
    g.add_argument("--outputs", metavar="FILE",
                   help="cdk outputs file (default ~/.mxlab/<stack>/outputs.json, else DescribeStacks)")
    g.add_argument("--profile", help="AWS profile (as the AWS CLI takes it)")
    g.add_argument("--region", help="AWS region")
    g.add_argument("--attendee", type=_attendees, metavar="N[,N...]", help="attendee instance(s) to use")
    g.add_argument("--all", action="store_true", help="every attendee instance")
    g.add_argument("--ssh-port", type=_positive, default=None,
                   help="SSH port of lab instances (default 22, or $MXLAB_SSH_PORT)")
    g.add_argument("--host", metavar="H[:PORT]", help="a direct SSH host instead of the lab stack")
    g.add_argument("--user", help="login user for --host")
    g.add_argument("--identity", metavar="KEYFILE", help="private key for --host")
    g.add_argument("--known-hosts", metavar="FILE", help="known_hosts for --host (default ~/.ssh/known_hosts)")
    g.add_argument("--timeout", type=_positive, default=backoff.READY_TIMEOUT,
                   help="seconds to wait for a host to be ready (default %(default)s)")
    g.add_argument("--start", action="store_true",
                   help="start lab instances that are stopped (the idle auto-stop, the deadline) and go on")
    o = common.add_argument_group("general")
    o.add_argument("--zoo", default=os.environ.get("MXLAB_ZOO"), help="model zoo URL or path, passed to the agent")
    o.add_argument("--env", help="remote environment: a conda env name (e.g. mxnet_p36) or 'venv'")
    o.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: paramiko too)")

    parser = argparse.ArgumentParser(prog="mxlab", description=__doc__.splitlines()[0],
                                     epilog="Options go after the command: mxlab run --host H ... INPUT")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    up = sub.add_parser("up", parents=[common], help="deploy the lab stack (npx cdk deploy)")
    up.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE", help="CDK context")
    up.add_argument("--skip-preflight", action="store_true",
                    help="deploy without first checking the vCPU quota and the AZ's instance type offerings")
    up.add_argument("--force", action="store_true",
                    help="deploy even when the change destroys or replaces hosts (fewer attendees, another "
                         "volume_gb, AMI or instance_type); without it such a change is refused, naming them")
    ex = sub.add_parser("extend", parents=[common], help="move the lab's deadline later, nothing else changed")
    ex.add_argument("--hours", type=_positive_hours, required=True, metavar="N",
                    help="this many hours after the current deadline (after now, if it has passed)")
    ex.add_argument("--skip-preflight", action="store_true", help="as for `mxlab up`")
    down = sub.add_parser("down", parents=[common], help="destroy the lab stack and remove local keys")
    down.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE", help="CDK context")
    sub.add_parser("hosts", parents=[common], help="list the lab's hosts")

    for name, helptext in (("run", "classify images with a model on the host(s)"),
                           ("compare", "several models over the same images, side by side")):
        p = sub.add_parser(name, parents=[common], help=helptext)
        if name == "run":
            p.add_argument("--model", required=True, help="model name (or M1,M2,...)")
        else:
            p.add_argument("--models", required=True, help="comma-separated model names")
        p.add_argument("--top-k", type=_positive, default=5, help="labels per image (default %(default)s)")
        p.add_argument("--batch-size", type=_positive, help="agent batch size")
        p.add_argument("--engine", choices=("mxnet", "onnxruntime", "auto"), default="mxnet",
                       help="the agent's engine (default mxnet); onnxruntime/auto install "
                            "agent/requirements-onnx.txt on the host first")
        p.add_argument("--results", default="results", metavar="DIR", help="where to save results (default ./results)")
        p.add_argument("--parallel", type=_positive, default=DEFAULT_PARALLEL,
                       help="hosts at once (default %(default)s)")
        p.add_argument("--input-list", metavar="FILE", help="more inputs, one a line (files, folders, URLs)")
        p.add_argument("--keep-connection", action="store_true",
                       help="keep each host's SSH connection in a holder process for the next runs (or "
                            "$MXLAB_KEEP_CONNECTION=1; it exits after $MXLAB_KEEP_IDLE s idle, default 600)")
        # Sharding (mxlab/runs/shard.py; README: Sharding).
        p.add_argument("--shard", action="store_true",
                       help="split the inputs across the hosts, each image classified once (not per host)")
        p.add_argument("--chunk-size", type=_positive, metavar="N",
                       help="with --shard: inputs per agent run (default: about 4 chunks a host, at most 64)")
        p.add_argument("--resume", metavar="RUN_ID",
                       help="go on with the saved run RUN_ID (Ctrl-C or a lost laptop): with --shard only inputs "
                            "without results; else the hosts that had not finished (following their agents)")
        p.add_argument("inputs", nargs="*", metavar="INPUT", help="image file, directory or http(s) URL")

    r = sub.add_parser("report", help="one self-contained HTML file of saved run(s): thumbnails, top-k bars")
    r.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="a run folder: results/<stack-or-host>/<run-id>")
    r.add_argument("-o", "--output", metavar="FILE", help="where to write it (default RUN_DIR/report.html)")
    r.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    r.set_defaults(profile=None, region=None)

    pr = sub.add_parser("prepare", parents=[common], help="make every host ready for a workshop: agent, "
                        "environment, models cached, a smoke classification (--workspace: ~/mxnet-lab)")
    pr.add_argument("--models", required=True, help="comma-separated model names to cache on each host")
    pr.add_argument("--workspace", action="store_true",
                    help="lay out the attendee's seed exercise in ~/mxnet-lab/ on each host")
    pr.add_argument("--no-notebook", dest="notebook", action="store_false",
                    help="no JupyterLab on the hosts (by default each serves the workspace, mxnet-lab.ipynb "
                         "included, on its 127.0.0.1, reached through the attendee's SSH tunnel)")
    pr.add_argument("--parallel", type=_positive, default=DEFAULT_PARALLEL,
                       help="hosts at once (default %(default)s)")
    pr.add_argument("--no-warm", dest="warm", action="store_false",
                    help="leave no warm agent on the hosts (by default each keeps the models bound, reachable "
                         "only by its login user, so that a one-photo `mxlab run` answers in about a second)")
    pr.add_argument("--warm-idle", type=_positive, default=contract.WARM_IDLE_S, metavar="SECONDS",
                    help="a warm agent nobody uses for this long exits (default %(default)s)")
    ho = sub.add_parser("handout", parents=[common], help="one folder per attendee: key, pinned host keys, "
                        "ssh_config, instructions; and an organiser's index.html")
    ho.add_argument("--out", required=True, metavar="DIR", help="folder to write (must be empty, or --force)")
    ho.add_argument("--force", action="store_true", help="write into a non-empty DIR (replacing what is there)")

    po = sub.add_parser("policy", help="the least-privilege IAM policy an organiser needs for every mxlab command "
                        "(see README: Permissions)")
    po.add_argument("--stack", default=os.environ.get("MXLAB_STACK", targets.DEFAULT_STACK),
                    help="the lab's stack name (default %(default)s)")
    po.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
                    help="the lab's region (default $AWS_REGION, else any region: *)")
    po.add_argument("--account", default="*", metavar="ID", help="the account id in the ARNs (default *)")
    po.add_argument("--json", action="store_true", help="the policy document(s) only, as JSON")
    po.add_argument("--cfn-role", nargs="?", const=True, metavar="ROLE",
                    help="deploying through a CloudFormation service role (-c cfn_role_arn=...): the narrower "
                         "organiser policy; ROLE: its ARN or name (default mxlab-cloudformation)")
    po.add_argument("--part", type=_positive, metavar="K",
                    help="only the K-th document, where the policy needs more than one managed policy")
    po.add_argument("--service-role", action="store_true",
                    help="the permissions policy (and trust policy) of that CloudFormation service role")
    po.add_argument("-v", "--verbose", action="count", default=0, help=argparse.SUPPRESS)
    po.set_defaults(profile=None)

    sub.add_parser("sandbox", help="the whole lab offline on this machine, for the other commands to use "
                                   "(see `mxlab sandbox --help`)")
    sub.add_parser("demo", help="the sandbox with a scripted run and compare (see `mxlab demo --help`)")
    sub.add_parser("notebook", parents=[common], help="open a tunnel to an attendee's JupyterLab (as their "
                   "handout does) and say where to open it; stays until Ctrl-C")
    st = sub.add_parser("status", parents=[common], help="the room: one row per attendee (instance, SSH, notebook, "
                        "cells run of mxnet-lab.ipynb, last activity, models, last kernel exception)")
    st.add_argument("--watch", action="store_true", help="refresh in place until Ctrl-C")
    st.add_argument("--every", type=_positive, default=5, metavar="SECONDS", help="--watch's period (default 5)")
    st.add_argument("--html", metavar="FILE", help="also write the table as a self-contained page (it reloads "
                    "itself while --watch runs)")
    s = sub.add_parser("ssh", parents=[common], help="interactive shell on a host (pinned host key)")
    s.add_argument("remote_command", nargs=argparse.REMAINDER, help="optional command (after --)")
    return parser


# ---- targets -----------------------------------------------------------------------------

def resolve_targets(args, want_many=True):
    if args.host:
        return [targets.direct_target(args.host, args.user, args.identity, args.known_hosts)]
    for flag in ("user", "identity", "known_hosts"):
        if getattr(args, flag):
            raise UsageError("--%s: only with --host (lab instances use the stack's user and key)"
                             % flag.replace("_", "-"))
    if not args.outputs:  # an outputs file given by hand may be any lab's
        targets.use_lab_region(args.stack, args.region, args.profile)
    outputs = targets.read_outputs(args.stack, args.outputs)
    count = targets.attendee_count(outputs, args.stack)
    if args.attendee:
        chosen = args.attendee
    elif args.all or count == 1:
        chosen = None
    else:
        raise UsageError("stack %r has %d attendees: choose --attendee N or --all" % (args.stack, count))
    found = targets.lab_targets(args.stack, outputs, chosen, args.ssh_port)
    if not want_many and len(found) != 1:
        raise UsageError("choose one host: --attendee N (the stack has %d)" % count)
    return found


def room_targets(args, command):
    """The lab's attendee targets for a command about the room: every attendee unless --attendee."""
    if args.host:
        raise UsageError("--host: %s is for the lab's attendee instances (--all or --attendee N)" % command)
    if not args.attendee:
        args.all = True
    return resolve_targets(args)


def check_inputs(items):
    from mxlab.remote.run import is_url
    for item in items:
        if is_url(item):
            continue
        if "://" in item:
            raise UsageError("input %r: expected an image file, a directory or an http(s) URL" % item)
        if not Path(item).exists():
            raise UsageError("input %s: no such file or directory (expected an image file, a directory or "
                             "an http(s) URL)" % item)


# ---- commands ----------------------------------------------------------------------------

def cmd_up(args, out, err):
    from mxlab.lab import deploy
    path = deploy.up(args.stack, args.context, args.profile, args.region, skip_preflight=args.skip_preflight,
                      say=lambda line: err.print(line, markup=False, highlight=False), force=args.force)
    err.print("outputs written to %s" % path, markup=False)
    # Now, not at the first prepare/run: cloud-init prints the keys on the first boot only, and the idle
    # stop or the deadline may come before anyone connects.
    from mxlab.hosts import hostkeys
    say = lambda line: err.print(line, markup=False, highlight=False)  # noqa: E731
    try:
        lab = targets.lab_targets(args.stack, targets.read_outputs(args.stack, str(path)), None, args.ssh_port)
    except UsageError as exc:  # the deploy is done: a lab without addresses yet is pinned on first use
        say("host keys not pinned now (%s); mxlab pins each host on first use" % exc)
        return status_codes.SUCCESS
    hostkeys.pin_every_instance(lab, say, timeout=args.timeout)
    return status_codes.SUCCESS


def cmd_extend(args, out, err):
    from mxlab.lab import deploy
    deploy.extend(args.stack, args.hours, args.profile, args.region, skip_preflight=args.skip_preflight,
                   say=lambda line: err.print(line, markup=False, highlight=False))
    return status_codes.SUCCESS


def cmd_down(args, out, err):
    from mxlab.hosts import keep
    from mxlab.lab import deploy
    keep.stop_all()  # kept connections to hosts that are going (only shortcuts: a later run connects directly)
    removed = deploy.down(args.stack, args.context, args.profile, args.region)
    err.print("stack %s destroyed; removed %s" % (args.stack, removed), markup=False)
    return status_codes.SUCCESS


def cmd_hosts(args, out, err):
    from mxlab.hosts import readiness
    from mxlab.results import tables
    if not args.attendee and not args.host:
        args.all = True
    found = resolve_targets(args)
    refused = None
    try:
        readiness.refresh_all([t for t in found if t.instance_id])
    except AwsAccessDenied as exc:  # the listing still helps; then the refusal, and exit 1
        refused = exc
        for t in found:
            if t.instance_id:
                t.state = "unknown (AWS refused %s)" % exc.action
    except Exception as exc:  # a listing still helps without EC2 access
        for t in found:
            if t.instance_id:
                t.state = "unknown (%s)" % type(exc).__name__
    for t in found:
        if not t.instance_id:
            try:
                readiness.read_banner(t.host, t.port, timeout=5)
                t.state = "ssh up"
            except OSError as exc:
                t.state = "down (%s)" % exc
    out.print(tables.hosts_table(found, "%s hosts" % (args.stack if not args.host else "direct")))
    if not args.host:
        from mxlab.lab import deploy
        out.print(deploy.describe_deadline(targets.read_outputs(args.stack, args.outputs)), markup=False)
    if refused is not None:
        raise refused
    return status_codes.SUCCESS


def cmd_run(args, out, err, compare=False):
    from mxlab.hosts import keep
    if not getattr(args, "keep_connection", False) or keep.wanted():
        return _cmd_run(args, out, err, compare)
    os.environ[keep.ENV] = "1"  # read where each Session connects; only for this command (in-process callers)
    try:
        return _cmd_run(args, out, err, compare)
    finally:
        os.environ.pop(keep.ENV, None)


def _cmd_run(args, out, err, compare=False):
    from mxlab.remote.run import RunSpec
    from mxlab.results import rundir
    from mxlab.results.rundir import ResultStore, new_run_id
    from mxlab.runs.fleet import run_fleet
    models = _checked_run_request(args, compare)
    found = resolve_targets(args)
    spec = RunSpec(models=models, inputs=args.inputs, top_k=args.top_k, batch_size=args.batch_size,
                   zoo=args.zoo, env=args.env, engine=args.engine)
    name = args.stack if not args.host else found[0].label
    run_dir = Path(args.results) / name / (args.resume or "-")
    if args.shard or (args.resume and (run_dir / rundir.SHARD_FILE).is_file()):
        return cmd_run_sharded(args, found, spec, name, compare, out, err)
    if args.resume and not run_dir.is_dir():
        raise UsageError("--resume %s: no run folder %s (expected a run id from an earlier run)" % (args.resume,
                                                                                                  run_dir))
    run_id = args.resume or new_run_id()
    store = ResultStore(args.results, name, run_id)
    started = time.time()
    try:
        results = run_fleet(found, spec, run_id, store, err, parallel=args.parallel, timeout=args.timeout,
                            start=args.start, resume=bool(args.resume))
    except KeyboardInterrupt:
        _say_what_the_interrupt_kept(err, found, store, run_id)
        raise
    return _show_run(spec, results, store, started, compare, out, err)


def _checked_run_request(args, compare):
    """The models asked for, once the models, the inputs (--input-list read into args.inputs) and
    --chunk-size are checked: a UsageError before any host is looked up."""
    from mxlab import catalogue
    models = [m.strip() for m in (args.models if compare else args.model).split(",") if m.strip()]
    catalogue.check_models(models, args.zoo)
    if args.input_list:
        from mxlab.runs import shard
        args.inputs = list(args.inputs) + shard.read_input_list(args.input_list)
    if not args.inputs:
        raise UsageError("no inputs: give INPUT... (image files, folders, http(s) URLs) or --input-list FILE")
    check_inputs(args.inputs)
    if args.chunk_size and not (args.shard or args.resume):
        raise UsageError("--chunk-size: only with --shard (without it every host classifies every input)")
    return models


def _say_what_the_interrupt_kept(err, found, store, run_id):
    """Ctrl-C during a run: which hosts' results are saved, which were still going, and how to resume."""
    waiting = getattr(store, "interrupted", [])
    saved = [t.label for t in found if t.label not in waiting]
    err.print("mxlab: interrupted: %s; %s. The same command with --resume %s keeps what is saved and collects "
              "the rest (their agents go on, on the hosts)" % (
                  "the results of %s are saved in %s" % (", ".join(saved), store.dir) if saved
                  else "no host had finished (%s)" % store.dir,
                  "%s had not finished" % ", ".join(waiting) if waiting else "every host had finished",
                  run_id), markup=False, highlight=False, soft_wrap=True)


def _show_run(spec, results, store, started, compare, out, err):
    """A finished run's tables, its report in the run folder, each failure, and the exit status."""
    from mxlab.results import tables
    for r in results:
        if r.records:
            out.print(tables.compare_table(r.label, r.records, spec.models) if compare
                      else tables.topk_table(r.label, r.records))
    out.print(tables.summary_table(results, store.dir))
    write_run_report(store, "compare" if compare else "run", spec, results, started, out, err)
    if any(r.status == "failed" for r in results):
        for r in results:
            if r.status == "failed":
                err.print("mxlab: %s failed: %s" % (r.label, r.error), markup=False, highlight=False, soft_wrap=True)
        return status_codes.FAILED
    return status_codes.SOME_INPUTS_FAILED if any(r.status == "partial" for r in results) else status_codes.SUCCESS


def cmd_run_sharded(args, found, spec, name, compare, out, err):
    """--shard: the inputs split across the hosts, each classified once (mxlab/runs/shard.py)."""
    from mxlab.runs import shard
    from mxlab.results.rundir import ResultStore, new_run_id
    run_id = args.resume or new_run_id()
    if args.resume and not (Path(args.results) / name / run_id).is_dir():
        raise UsageError("--resume %s: no run folder %s (expected a run id from an earlier --shard run)"
                         % (run_id, Path(args.results) / name / run_id))
    store = ResultStore(args.results, name, run_id)
    started = time.time()
    run = shard.run_sharded(found, spec, run_id, store, err, timeout=args.timeout, start=args.start,
                            size=args.chunk_size, resume=bool(args.resume))
    code = shard.show(run, store.dir, compare, out, err)
    write_run_report(store, "compare" if compare else "run", spec, run.hosts, started, out, err)
    return code


def write_run_report(store, command, spec, results, started, out, err):
    """run.json and report.html beside the results; the report shows the hosts of the summary the run just
    saved (store.hosts, in memory, not read back). A failure here costs the run nothing."""
    run_dir = store.dir
    try:
        # In the try: a report that cannot even be imported costs the run nothing.
        from mxlab.results import html_report, run_facts
        facts = run_facts.run_facts(command, spec, [r.label for r in results], started, time.time())
        run_facts.write_run_facts(run_dir, facts)
        report = html_report.write_runs([html_report.run_of(run_dir, store.hosts, facts)])
        out.print("report: %s" % report, markup=False, highlight=False, soft_wrap=True)
    except Exception as exc:  # the results are saved: say so, and how to make the report later
        log.debug("report failed", exc_info=True)
        err.print("mxlab: could not write the report (%s: %s); the results are saved: try `mxlab report %s`"
                  % (type(exc).__name__, exc, run_dir), markup=False, highlight=False, soft_wrap=True)


def cmd_report(args, out, err):
    from mxlab.results import html_report
    out.print("report: %s" % html_report.write_report(args.run_dirs, args.output), markup=False,
              highlight=False, soft_wrap=True)
    return status_codes.SUCCESS


def ssh_argv(target, remote_command):
    from mxlab.hosts import hostkeys, ssh_options
    options = ssh_options.pinned(target.identity, target.known_hosts, hostkeys.alias(target), target.port,
                                 extra=[("GlobalKnownHostsFile", "/dev/null")])
    argv = ["ssh"] + ssh_options.as_argv(options) + ["%s@%s" % (target.user, target.host)]
    if remote_command:
        argv += ["--"] + remote_command
    return argv


def cmd_ssh(args, out, err):
    from mxlab.hosts import readiness
    (target,) = resolve_targets(args, want_many=False)
    readiness.ready(target, args.timeout, start=args.start)  # the same path as `mxlab run`
    if not target.pin_from_console:
        readiness.check_pinned(target)
    command = [c for c in args.remote_command if c != "--"] if args.remote_command else []
    return subprocess.call(ssh_argv(target, command))


def cmd_notebook(args, out, err):
    from mxlab.workshop import notebook_tunnel
    if args.host:
        raise UsageError("--host: notebook is for the lab's attendee instances (--attendee N)")
    (target,) = resolve_targets(args, want_many=False)
    return notebook_tunnel.run(target, args.stack, ssh_argv, args.timeout, args.start, out, err)


def cmd_status(args, out, err):
    from pathlib import Path
    from mxlab.workshop import room_status
    found = room_targets(args, "status")
    return room_status.show(found, args.stack, out, watch=args.watch, every=args.every,
                            html_file=Path(args.html) if args.html else None, timeout=min(args.timeout, 30))


def cmd_prepare(args, out, err):
    from mxlab import catalogue
    from mxlab.workshop import prepare
    models = catalogue.check_models([m.strip() for m in args.models.split(",") if m.strip()], args.zoo)
    found = resolve_targets(args)
    name = args.stack if not args.host else found[0].label
    results = prepare.prepare_fleet(found, models, err, name, zoo=args.zoo, env=args.env, lay_out=args.workspace,
                                    timeout=args.timeout, start=args.start, parallel=args.parallel,
                                    warm_idle=args.warm_idle if args.warm else None, notebook=args.notebook)
    out.print(prepare.readiness_table(results, models, "%s readiness" % name))
    saved = prepare.save_readiness(name, results, models)
    return prepare.report(results, saved, out, err)


def cmd_handout(args, out, err):
    from mxlab.workshop import handout
    found = room_targets(args, "handout")
    return handout.make(found, args.stack, args.out, force=args.force, timeout=args.timeout,
                        start=args.start, out=out, err=err)


def cmd_policy(args, out, err):
    import json

    from mxlab.lab import iam_policy
    if args.account != "*" and not re.match(r"^\d{12}$", args.account):
        raise UsageError("--account %r: expected a 12-digit AWS account id" % args.account)
    lab = iam_policy.Lab(args.stack, args.region or "*", args.account)
    if args.service_role:
        documents = iam_policy.split(iam_policy.service_role_policy(lab))
        notes = ["the service role's trust policy: %s"
                 % json.dumps(iam_policy.service_role_trust(lab), separators=(",", ":"))]
    else:
        documents = iam_policy.split(iam_policy.organiser_policy(lab, cfn_role=args.cfn_role))
        notes = iam_policy.explain(lab, cfn_role=args.cfn_role)
    if len(documents) > 1:
        notes.append("%d documents: more than one managed policy holds (%d characters each at most); "
                     "--part 1 .. --part %d prints each" % (len(documents), iam_policy.MANAGED_POLICY_LIMIT,
                                                            len(documents)))
    if args.part:
        if args.part > len(documents):
            raise UsageError("--part %d: the policy is %d document(s)" % (args.part, len(documents)))
        documents = [documents[args.part - 1]]
    if not args.json:
        for line in notes:
            err.print("# " + line, markup=False, highlight=False, soft_wrap=True)
    text = json.dumps(documents[0] if len(documents) == 1 else documents, indent=None if args.json else 2)
    print(text)
    return status_codes.SUCCESS


def setup_logging(verbose):
    """mxlab's own logger to the current stderr (replacing an earlier call's handler)."""
    logger = logging.getLogger("mxlab")
    for handler in list(logger.handlers):
        if getattr(handler, "mxlab", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.mxlab = True
    handler.setFormatter(logging.Formatter("mxlab: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.propagate = False


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["demo"]:
        # The offline demo and sandbox have their own options (`mxlab demo --help`).
        from mxlab.offline import demo
        return demo.main(argv[1:])
    if argv[:1] == ["sandbox"]:
        from mxlab.offline import sandbox
        return sandbox.main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    # paramiko logs tracebacks for dropped connections we handle ourselves.
    logging.getLogger("paramiko").setLevel(logging.DEBUG if args.verbose > 1 else logging.CRITICAL)
    if not args.command:
        parser.print_help(sys.stderr)
        return status_codes.USAGE
    aws.configure(args.profile, args.region)
    from rich.console import Console  # here, not at the top: see the imports' comment
    out, err = Console(), Console(stderr=True)
    commands = {"up": cmd_up, "extend": cmd_extend, "down": cmd_down, "hosts": cmd_hosts, "run": cmd_run,
                "compare": lambda a, o, e: cmd_run(a, o, e, compare=True), "ssh": cmd_ssh,
                "report": cmd_report, "prepare": cmd_prepare, "handout": cmd_handout, "policy": cmd_policy,
                "notebook": cmd_notebook, "status": cmd_status}
    try:
        return commands[args.command](args, out, err)
    except MxlabError as exc:
        err.print("mxlab: error: %s" % exc, markup=False, highlight=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("mxlab: interrupted (agent runs continue on the hosts)", markup=False)
        return status_codes.INTERRUPTED
