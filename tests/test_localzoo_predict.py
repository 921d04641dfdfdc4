"""The converted models in plain MXNet, on real photos: the weights really classify."""
import json

import mxnet as mx
import numpy as np
import pytest

from tests.fixtures_zoo import eval_preprocess as preprocess

CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


@pytest.fixture(scope="module", params=["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"])
def classify(request, local_zoo):
    model = request.param
    entry = json.loads((local_zoo / "catalogue.json").read_text())["models"][model]
    prefix = str(local_zoo / model / model)
    sym, arg_params, aux_params = mx.model.load_checkpoint(prefix, entry["epoch"])
    size = entry["input"]["size"]
    module = mx.mod.Module(sym, data_names=["data"], label_names=None, context=mx.cpu())
    module.bind(data_shapes=[("data", (1, 3, size, size))], for_training=False)
    module.set_params(arg_params, aux_params)

    def run(path):
        batch = mx.nd.from_numpy(preprocess(path, entry["input"]), zero_copy=False)
        module.forward(mx.io.DataBatch([batch]), is_train=False)
        return module.get_outputs()[0].asnumpy()[0]

    run.model = model
    return run


def test_output_is_a_distribution_over_1000_classes(classify, sample_photos):
    prob = classify(sample_photos / "astronaut.jpg")
    assert prob.shape == (1000,)
    assert (prob >= 0).all() and abs(float(prob.sum()) - 1.0) < 1e-4


def test_cat_photo_is_a_domestic_cat(classify, sample_photos):
    prob = classify(sample_photos / "chelsea.jpg")
    top3 = list(np.argsort(prob)[::-1][:3])
    assert top3[0] in CATS, (classify.model, top3)
    assert all(i in CATS for i in top3), (classify.model, top3)


def test_coffee_photo_is_espresso(classify, sample_photos):
    prob = classify(sample_photos / "coffee.jpg")
    assert int(np.argmax(prob)) == ESPRESSO, classify.model
    assert prob[ESPRESSO] > 0.3
