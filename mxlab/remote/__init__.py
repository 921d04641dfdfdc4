"""The agent on one host: uploading it (install.py), the Python environment it runs in (python_env.py, with the
GPU build's CUDA runtime: gpu_runtime.py/.json), one run started, followed and collected (run.py), and the
agent's events turned into what the operator sees (agent_events.py).

Speaks agent/contract.py: the host side of the two contracts.
"""
MAY_IMPORT = ("lab", "hosts")
