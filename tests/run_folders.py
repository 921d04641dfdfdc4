"""Run folders as mxlab writes them (the real ResultStore and run facts), what a test reads back of one, and
its HTML report opened in Chromium (every host's section, every page)."""
import json
from pathlib import Path

from mxlab.remote.run import HostResult, RunSpec
from mxlab.results.rundir import ResultStore
from mxlab.results.run_facts import save_run_facts

MODELS = ["efficientnet-lite0", "efficientnet-lite1"]  # make_run's


def ok(image, model, *labels):
    """A result record: `labels` as its top 3."""
    top = [{"label": l, "prob": p} for l, p in zip(labels, (0.7, 0.2, 0.05))]
    return {"image": str(image), "model": model, "top": top, "ms": 10.0}


def failed(image, model, message):
    """An error record."""
    return {"image": str(image), "model": model, "error": message}


def make_run(root, hosts, models=MODELS, seconds=20.0, cwd=None, run_id="20261201T120000Z-a1b2c3"):
    """A run folder written by the real ResultStore: hosts = [(label, status, error, records)]."""
    store = ResultStore(root, "lab", run_id)
    results = []
    for label, status, error, records in hosts:
        res = HostResult(label=label, address="10.0.0.%d" % (len(results) + 1), status=status, error=error,
                         records=records)
        store.save_host(res)
        results.append(res)
    store.save_summary(results)
    spec = RunSpec(models=list(models), inputs=["photos/"], top_k=3)
    save_run_facts(store.dir, "compare" if len(models) > 1 else "run", spec, [h[0] for h in hosts],
                   1000.0, 1000.0 + seconds, cwd=cwd)
    return store.dir


def records(run_dir):
    """The records of the run folder's one host (its .jsonl)."""
    (path,) = Path(run_dir).glob("*.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# Opens every host's section, walks every page, and reports what rendered.
CHECK_EVERY_PAGE = r"""
(async () => {
  const tick = () => new Promise(r => setTimeout(r, 20));
  const out = {hosts: [], broken: [], images: 0, labels: [], placeholders: [], errors: []};
  for (const d of document.querySelectorAll("details.host")) {
    if (!d.open) d.open = true;
    for (let i = 0; i < 200 && !d.querySelector("table.results"); i++) await tick();
    const host = {summary: d.querySelector("summary").innerText, pages: 0, rows: 0};
    while (true) {
      const imgs = Array.from(d.querySelectorAll("table.results img"));
      await Promise.all(imgs.map(i => i.decode().catch(() => null)));
      for (const img of imgs) {
        out.images++;
        if (!img.complete || img.naturalWidth === 0) out.broken.push(img.alt);
      }
      for (const s of d.querySelectorAll(".lab .name"))
        if (s.offsetParent !== null && s.getBoundingClientRect().width > 0) out.labels.push(s.textContent);
      for (const p of d.querySelectorAll(".noimg")) out.placeholders.push(p.title);
      for (const e of d.querySelectorAll("td .err")) out.errors.push(e.textContent);
      host.pages++; host.rows += d.querySelectorAll("table.results tbody tr").length;
      const next = d.querySelector("button.next");
      if (next.disabled) break;
      next.click();
    }
    out.hosts.push(host);
  }
  return out;
})()
"""


def open_report(page, path, screenshot):
    """Open the report at `path` in `page`: what CHECK_EVERY_PAGE saw; no errors, no request outside the file."""
    page.goto(path.resolve().as_uri())
    seen = page.evaluate(CHECK_EVERY_PAGE)
    page.screenshot(screenshot)
    assert page.errors == [], page.errors
    outside = [u for u in page.requests if not u.startswith(("file:", "data:"))]
    assert outside == [], "the report made requests outside the file: %s" % outside
    return seen
