"""Tables for the operator: top-k per image, models side by side, hosts, fleet summary."""
from rich.markup import escape
from rich.table import Table


def _pct(p):
    return "%.1f%%" % (100.0 * p)


def topk_table(host, records):
    table = Table(title="%s: top-k" % host, show_lines=False)
    for col in ("image", "model", "rank", "label", "prob"):
        table.add_column(col, justify="right" if col in ("rank", "prob") else "left")
    for rec in records:
        if "error" in rec:
            table.add_row(escape(rec.get("image", "?")), escape(rec.get("model", "?")), "-",
                          escape("error: " + rec["error"]), "")
            continue
        for rank, top in enumerate(rec.get("top", []), 1):
            table.add_row(escape(rec["image"]) if rank == 1 else "", escape(rec["model"]) if rank == 1 else "",
                          str(rank), escape(top.get("label", "")), _pct(top.get("prob", 0.0)))
    return table


def compare_table(host, records, models):
    """Rows: images; columns: one per model with its top-1 label and probability."""
    table = Table(title="%s: models side by side (top-1)" % host)
    table.add_column("image")
    for m in models:
        table.add_column(m)
    cells = {}
    images = []
    for rec in records:
        img = rec.get("image", "?")
        if img not in images:
            images.append(img)
        if "error" in rec:
            cells[(img, rec.get("model"))] = "error: " + rec["error"]
        elif rec.get("top"):
            top = rec["top"][0]
            cells[(img, rec["model"])] = "%s (%s)" % (top.get("label", ""), _pct(top.get("prob", 0.0)))
    for img in images:
        table.add_row(escape(img), *[escape(cells.get((img, m), "-")) for m in models])
    return table


def hosts_table(targets, title="lab hosts"):
    table = Table(title=title)
    for col in ("attendee", "instance", "address", "user", "state"):
        table.add_column(col)
    for t in targets:
        table.add_row(str(t.attendee or "-"), t.instance_id or "-", escape(t.address), escape(t.user),
                      t.state or "-")
    return table


def results_cell(result):
    """How many records a host gave; "(partial)" when they were recovered from an unfinished run."""
    return "%d (partial)" % len(result.records) if result.partial_results else str(len(result.records))


def summary_table(results, saved_dir):
    table = Table(title=escape("summary (results in %s)" % saved_dir))
    for col in ("host", "address", "status", "results", "note"):
        table.add_column(col)
    for r in results:
        note = r.error or ("env %s" % r.environment if r.environment else "")
        if r.warm_agent:
            note += " (warm agent)"
        if r.reconnects:
            note += " (reconnected %d×)" % r.reconnects
        style = {"ok": "green", "partial": "yellow"}.get(r.status, "red")
        table.add_row(escape(r.label), escape(r.address), "[%s]%s[/]" % (style, r.status), results_cell(r),
                      escape(note))
    return table
