"""`mxlab report`: one self-contained HTML file for one or more run folders.

Per image a thumbnail made here from the operator's local original, per model its top-k labels
with probability bars (models side by side for a compare run), a section per host, failed inputs
with their error, and a header with the run's facts. Nothing is fetched when the file is opened:
CSS and script (report.css, report.js beside this module) are inline, thumbnails are data: URIs. Results
sit in the page as JSON and a small script renders one page of rows when a host's section is opened, so a
run of thousands of images opens at once and the file grows by a thumbnail per image, not by the originals.
"""
import html
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from mxlab.atomic import write_atomic
from mxlab.errors import UsageError
from mxlab.remote.run import is_url
from mxlab.results import rundir
from mxlab.results.run_facts import load_run_facts
from mxlab.results.thumbnails import ThumbnailError, data_uri, thumbnail_jpeg

PAGE_SIZE = 50  # images per page of a host's section


@dataclass
class HostRun:
    label: str
    address: str = ""
    status: str = "unknown"  # ok | partial | failed, from summary.json
    error: Optional[str] = None
    records: list = field(default_factory=list)


@dataclass
class Run:
    dir: Path
    run_id: str
    facts: dict
    hosts: List[HostRun]
    models: List[str]


# ---- reading a run folder ------------------------------------------------------------------

def load_run(run_dir):
    """A Run from results/<stack-or-host>/<run-id>/: summary.json, <host>.jsonl, run.json if there."""
    d = Path(run_dir)
    if not d.is_dir():
        raise UsageError("RUN_DIR %s: no such folder (expected a run folder like results/<stack>/<run-id>/)" % d)
    try:
        summary = rundir.load_summary(d)
    except ValueError as exc:
        raise UsageError("RUN_DIR %s: %s" % (d, exc))
    hosts = []
    if summary is not None:
        for h in summary:
            host = HostRun(label=str(h["host"]), address=str(h.get("address") or ""),
                           status=str(h.get("status") or "unknown"), error=h.get("error"))
            path = rundir.host_file(d, host.label)
            if path.is_file():
                host.records = rundir.read_jsonl(path)
            hosts.append(host)
    else:
        # A run still going, or one whose summary was lost: each host's file is all there is
        # (a merged results.jsonl beside them holds the same records again; alone, it is all there is).
        files = rundir.host_files(d) or {p.stem: p for p in [d / rundir.MERGED_FILE] if p.is_file()}
        for label, path in files.items():
            hosts.append(HostRun(label=label, records=rundir.read_jsonl(path)))
    if not hosts:
        below = sorted(p.parent.name for p in d.glob("*/" + rundir.SUMMARY_FILE))
        hint = (" It holds run folders (%s): give one of them." % ", ".join(below[-3:])) if below else ""
        raise UsageError("RUN_DIR %s: no %s and no <host>%s: not a run folder "
                         "(expected results/<stack-or-host>/<run-id>/).%s"
                         % (d, rundir.SUMMARY_FILE, rundir.HOST_SUFFIX, hint))
    return _run(d, load_run_facts(d), hosts)


def run_of(run_dir, results, facts):
    """The Run that the same command just wrote (HostResults and run.json's facts in memory): nothing read back."""
    hosts = [HostRun(label=r.label, address=r.address or "", status=r.status or "unknown", error=r.error,
                     records=list(r.records)) for r in results]
    return _run(Path(run_dir), facts, hosts)


def _run(d, facts, hosts):
    models = [str(m) for m in facts.get("models") or []]
    for host in hosts:
        for rec in host.records:
            m = rec.get("model")
            if m and m not in models:
                models.append(str(m))
    return Run(dir=d, run_id=d.name, facts=facts, hosts=hosts, models=models)


# ---- the pure pieces -------------------------------------------------------------------------

def local_original(image, cwd):
    """Where the operator's original of `image` (as named in the results) is on this machine;
    None for a URL (the host fetched it, the operator has no copy)."""
    if not image or is_url(image):
        return None
    path = Path(image)
    return path if path.is_absolute() else Path(cwd) / path


def image_rows(records, models):
    """[(image, [cell per model])] in the order images first appear; a cell is
    {"t": [[label, prob], ...]}, {"e": error} or None (no result for that model)."""
    rows, index = [], {}
    for rec in records:
        image = str(rec.get("image", "?"))
        if image not in index:
            index[image] = len(rows)
            rows.append((image, [None] * len(models)))
        model = rec.get("model")
        if model not in models:
            continue
        if "error" in rec:
            cell = {"e": str(rec["error"])}
        else:
            cell = {"t": [[str(t.get("label", "")), float(t.get("prob", 0.0))] for t in rec.get("top") or []
                          if isinstance(t, dict)]}
        rows[index[image]][1][models.index(model)] = cell
    return rows


def when_of(run):
    """'YYYY-MM-DD HH:MM:SS UTC' the run started: run.json, else the run id's timestamp."""
    started = run.facts.get("started")
    if started:
        return started.replace("T", " ").replace("Z", " UTC")
    started = rundir.run_id_time(run.run_id)
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", started) if started else "unknown"


def run_facts_rows(run):
    """[(label, text)] for a run's header: hosts, models, counts, images/s, when."""
    records = [r for h in run.hosts for r in h.records]
    ok = [r for r in records if "error" not in r]
    failed = [r for r in records if "error" in r]
    images = {(h.label, r.get("image")) for h in run.hosts for r in h.records}
    statuses = {}
    for h in run.hosts:
        statuses[h.status] = statuses.get(h.status, 0) + 1
    rows = [("run", run.run_id), ("when", when_of(run))]
    if run.facts.get("command"):
        rows.append(("command", "mxlab %s" % run.facts["command"]))
    counts = ", ".join("%d %s" % (n, s) for s, n in sorted(statuses.items()))
    rows.append(("hosts", "%d (%s)" % (len(run.hosts), counts)))
    rows.append(("models", ", ".join(run.models) or "none"))
    if run.facts.get("top_k"):
        rows.append(("top-k", str(run.facts["top_k"])))
    distinct = len({img for _, img in images})
    rows.append(("images", "%d distinct, %d classified on hosts" % (distinct, len(images))
                 if len(images) != distinct else str(distinct)))
    rows.append(("results", "%d ok, %d failed input(s)" % (len(ok), len(failed))))
    seconds = run.facts.get("seconds")
    if seconds and run.models:
        rate = len(ok) / float(len(run.models)) / seconds
        rows.append(("images/s", "%.2f (%d results over %d model(s) in %.1f s wall time, "
                                 "all hosts, connecting and uploading included)"
                     % (rate, len(ok), len(run.models), seconds)))
    else:
        rows.append(("images/s", "unknown (no run.json with the run's wall time)"))
    per_model = []
    for m in run.models:
        ms = [r["ms"] for r in ok if r.get("model") == m and isinstance(r.get("ms"), (int, float))]
        if ms:
            per_model.append("%s %.1f ms" % (m, sum(ms) / len(ms)))
    if per_model:
        rows.append(("model time / image", ", ".join(per_model) + " (mean, on the host)"))
    rows.append(("folder", str(run.dir.resolve())))
    return rows


def script_json(value):
    """JSON safe inside <script>: no '</script>' or '<!--' can end or change the element."""
    return (json.dumps(value, separators=(",", ":"))
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


# ---- thumbnails ------------------------------------------------------------------------------

def thumbnails(runs, workers=None):
    """{(run index, image): {"src": data URI} or {"why": reason}}; one thumbnail per distinct original."""
    wanted = {}
    for i, run in enumerate(runs):
        cwd = run.facts.get("cwd") or os.getcwd()
        for host in run.hosts:
            for rec in host.records:
                image = str(rec.get("image", "?"))
                wanted[(i, image)] = local_original(image, cwd)
    paths = sorted({str(p) for p in wanted.values() if p is not None})

    def make(path):
        try:
            return {"src": data_uri(thumbnail_jpeg(path))}
        except ThumbnailError as exc:
            return {"why": exc.reason}

    # Pillow decodes and resizes outside the GIL: a few threads keep a large run's report quick.
    with ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1)) as pool:
        made = dict(zip(paths, pool.map(make, paths)))
    url = {"why": "a URL: the host fetched it; there is no local copy to show"}
    return {key: (made[str(p)] if p is not None else url) for key, p in wanted.items()}


# ---- the page --------------------------------------------------------------------------------

def page_data(runs, thumbs, page_size=PAGE_SIZE):
    """What the page's script renders: per run and host the rows; images and labels by index
    (a fleet run repeats both on every host: each is stored once), probabilities to 4 digits."""
    images, index, labels, label_index = [], {}, [], {}
    out = {"page_size": page_size, "images": images, "labels": labels, "runs": []}

    def compact(cell):
        if not cell or "t" not in cell:
            return cell
        top = []
        for label, prob in cell["t"]:
            if label not in label_index:
                label_index[label] = len(labels)
                labels.append(label)
            top.append([label_index[label], round(prob, 4)])
        return {"t": top}

    for i, run in enumerate(runs):
        hosts = []
        for host in run.hosts:
            rows = []
            for image, cells in image_rows(host.records, run.models):
                thumb = thumbs.get((i, image)) or {"why": "no thumbnail"}
                key = thumb.get("src") or ("why", thumb.get("why"))
                if key not in index:
                    index[key] = len(images)
                    images.append(thumb)
                rows.append([image, index[key]] + [compact(c) for c in cells])
            hosts.append({"label": host.label, "rows": rows})
        out["runs"].append({"models": run.models, "hosts": hosts})
    return out


def _host_summary(host):
    failed = sum(1 for r in host.records if "error" in r)
    images = len({r.get("image") for r in host.records})
    parts = ["<span class='hostname'>%s</span>" % html.escape(host.label)]
    if host.address and host.address != host.label:
        parts.append("<span class='addr'>%s</span>" % html.escape(host.address))
    parts.append("<span class='status st-%s'>%s</span>" % (html.escape(host.status), html.escape(host.status)))
    parts.append("<span class='count'>%d image(s)%s</span>"
                 % (images, ", <b class='bad'>%d failed input(s)</b>" % failed if failed else ""))
    return " ".join(parts)


def render_report(runs, thumbs, generated=None, page_size=PAGE_SIZE):
    """The whole HTML document as a string."""
    generated = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(generated or time.time()))
    body = []
    for i, run in enumerate(runs):
        body.append("<section class='run'>")
        body.append("<h2>run %s</h2>" % html.escape(run.run_id))
        body.append("<dl class='facts'>%s</dl>" % "".join(
            "<dt>%s</dt><dd>%s</dd>" % (html.escape(k), html.escape(v)) for k, v in run_facts_rows(run)))
        for j, host in enumerate(run.hosts):
            body.append("<details class='host' data-run='%d' data-host='%d'%s>" % (i, j, " open" if j == 0 else ""))
            # The host's error sits in the summary line: seen with the section closed.
            error = "<span class='hosterr'>%s</span>" % html.escape(host.error) if host.error else ""
            body.append("<summary>%s%s</summary>" % (_host_summary(host), error))
            body.append("<div class='rows'></div></details>")
        body.append("</section>")
    title = "mxlab report: " + ", ".join(r.run_id for r in runs)
    return TEMPLATE % {
        "title": html.escape(title), "css": _asset("report.css"), "generated": html.escape(generated),
        "body": "\n".join(body), "data": script_json(page_data(runs, thumbs, page_size)), "script": _asset("report.js")}


def write_report(run_dirs, out_path=None, page_size=PAGE_SIZE):
    """Write the report of `run_dirs` to `out_path` (default: report.html in the one run folder)."""
    if not run_dirs:
        raise UsageError("give at least one RUN_DIR")
    return write_runs([load_run(d) for d in run_dirs], out_path, page_size)


def write_runs(runs, out_path=None, page_size=PAGE_SIZE):
    """write_report of Runs already in memory (load_run, run_of)."""
    if out_path is None:
        if len(runs) > 1:
            raise UsageError("several RUN_DIRs: choose where the report goes with -o FILE")
        out_path = runs[0].dir / rundir.REPORT_FILE
    out_path = Path(out_path)
    if not out_path.parent.is_dir():
        raise UsageError("-o %s: folder %s does not exist" % (out_path, out_path.parent))
    text = render_report(runs, thumbnails(runs), page_size=page_size)
    write_atomic(out_path, text)
    return out_path




def _asset(name):
    """The page's stylesheet or script: package data beside this module, inlined into every report."""
    return (Path(__file__).parent / name).read_text(encoding="utf-8")


TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>%(title)s</title>
<style>%(css)s</style>
</head><body>
<h1>mxlab report</h1>
<p class="gen">generated %(generated)s</p>
<noscript><p class="bad">The per-image results are drawn by the page's inline script:
allow JavaScript to see them.</p></noscript>
%(body)s
<script type="application/json" id="report-data">%(data)s</script>
<script>%(script)s</script>
</body></html>
"""
