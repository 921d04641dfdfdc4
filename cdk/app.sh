#!/bin/sh
# cdk.json's "app": run the CDK app with the project venv when there is one,
# so `npx cdk synth` from the repo root needs no activated environment.
# jsii prints a Node end-of-life banner unless told the major version it may
# stay quiet about (a bare "1" does not silence it).
JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="$(node --version 2>/dev/null | sed 's/^v//; s/\..*//')"
# Without this, every synth warning is printed with a jsii-internal stack line.
CDK_DISABLE_STACK_TRACE="${CDK_DISABLE_STACK_TRACE:-1}"
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION CDK_DISABLE_STACK_TRACE
# `mxlab up/down` name their own interpreter (it has aws-cdk-lib), whatever its venv is called.
if [ -n "${MXLAB_CDK_PYTHON:-}" ]; then exec "$MXLAB_CDK_PYTHON" -m cdk.app; fi
if [ -x .venv/bin/python ]; then exec .venv/bin/python -m cdk.app; fi
exec python3 -m cdk.app
