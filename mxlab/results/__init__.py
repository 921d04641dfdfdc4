"""What a run leaves on the operator's machine: the run folder (rundir.py: results/<lab>/<run id>/<host>.jsonl,
summary.json; run_facts.py: run.json), the terminal tables (tables.py), the self-contained HTML report
(html_report.py) and its thumbnails (thumbnails.py).

The operator's twin of agent/contract.py: what is written here is read back by `mxlab report` and `--resume`.
"""
MAY_IMPORT = ("lab", "hosts", "remote")
