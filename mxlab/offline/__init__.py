"""The offline lab as a product: the whole lab on one machine (`mxlab sandbox`, `mxlab demo`, the tests).

- emulator.py: the AWS API emulator (moto on 127.0.0.1) with the AWS behaviours it models;
- lab_host.py: a real OpenSSH server playing one lab instance;
- zoo_server.py: the local model zoo over HTTP;
- lab.py: their composition (the lab stack deployed with `npx cdk deploy` into the emulator);
- sandbox.py: `mxlab sandbox`; demo.py: `mxlab demo`.

The top layer but for cli.py: it drives the lab as an organiser would, so it may import every other package.
"""
from pathlib import Path

# The checkout: the CDK app (cdk/, cdk.json, node_modules) and build/ (zoo, photos, wheelhouse) live there.
REPO_ROOT = Path(__file__).resolve().parent.parent.parent

MAY_IMPORT = ("lab", "hosts", "remote", "results", "runs", "workshop")
