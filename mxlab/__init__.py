"""mxlab: the operator side of an MXNet image-classification lab (deploy, run, report)."""

__version__ = "0.1.0"
