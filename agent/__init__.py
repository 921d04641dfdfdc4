"""mxlab agent: runs on the lab instance and classifies images with MXNet.

Valid Python 2.7 and 3.6+ (the Deep Learning AMI's mxnet_p27 / mxnet_p36 envs);
imports only the standard library, numpy, cv2 and mxnet.
Run from the folder that holds agent/: ``python -m agent --help``.
"""
from __future__ import print_function, division, absolute_import

__version__ = "0.1.0"
