"""The classify run: inputs -> decoded once -> per model, preprocessed and batched -> records.

Inputs are taken batch_size at a time, so memory stays bounded on a long list;
each input is read and decoded once and shared by all models. A failure of one
input (read, decode, preprocess) becomes its error record for every model; the
other inputs of the batch are still classified. Records come out in input order,
model by model within each batch.
"""
from __future__ import print_function, division, absolute_import

import time

from agent import decode, preprocess, reporter
from agent.errors import AgentError, InputError
from agent.results import error_record, ok_record


def run(sources, classifiers, writer, batch_size, top_k, stats=None):
    """Classify ``sources`` with every classifier, writing records; an "image" event per input.

    ``stats`` (a dict), when given, gets the seconds spent preparing (the producer thread) and
    in forward passes, for the bench, which times this very function.
    """
    from agent.pipeline import prefetch
    chunks = [sources[start:start + batch_size] for start in range(0, len(sources), batch_size)]
    done = 0
    # The next batch is read, decoded and preprocessed (for every model) in a thread
    # while this batch's forward passes run: MXNet's forward releases the GIL.
    for chunk, (prepared, prepare_s) in prefetch(chunks, lambda chunk: _timed(_prepare_chunk, chunk, classifiers)):
        if not done:
            from agent import startup
            startup.mark("first_batch_decoded")  # from here to first_result: the first forwards
        began = time.time()
        for classifier, (tensors, errors) in zip(classifiers, prepared):
            _predict_chunk(classifier, chunk, tensors, errors, top_k, writer)
        if stats is not None:
            stats["prepare_s"] = stats.get("prepare_s", 0.0) + prepare_s
            stats["forward_s"] = stats.get("forward_s", 0.0) + time.time() - began
        if not done:
            startup.report(dict((c.name, getattr(c.engine, "name", "mxnet")) for c in classifiers))
        for source in chunk:
            done += 1
            reporter.emit("image", done=done, total=len(sources), input=source.name)


def calibration_batch(sources, spec, limit=16):
    """float32 (n, 3, S, S): up to ``limit`` of the inputs, prepared as for the model (INT8 ranges)."""
    import numpy as np
    tensors = []
    for source in sources:
        if len(tensors) >= limit:
            break
        try:
            tensors.append(preprocess.prepare(decode.decode(source.read()), spec))
        except Exception:  # a bad input is reported by the run itself
            continue
    if not tensors:
        raise AgentError("--int8: no input could be decoded to calibrate the INT8 graph")
    return np.stack(tensors)


def _timed(work, *args):
    began = time.time()
    return work(*args), time.time() - began


def _prepare_chunk(chunk, classifiers):
    images = [_decoded(source) for source in chunk]
    return [_prepared(classifier, images) for classifier in classifiers]


def _decoded(source):
    """(uint8 BGR pixels, None) or (None, error message) for one input."""
    try:
        return decode.decode(source.read()), None
    except InputError as err:
        return None, str(err)


def _prepared(classifier, images):
    """(tensors, errors) of one model for decoded images; tensor None where the input failed."""
    tensors, errors = [], []
    for image, error in images:
        tensor = None
        if image is not None:
            try:
                tensor = preprocess.prepare(image, classifier.spec)
            except Exception as err:  # e.g. cv2.error on a degenerate image: that input only
                error = "cannot preprocess image: {0}".format(str(err).strip().splitlines()[-1])
        tensors.append(tensor)
        errors.append(error)
    return tensors, errors


def _predict_chunk(classifier, chunk, tensors, errors, top_k, writer):
    ready = [tensor for tensor in tensors if tensor is not None]
    probs, ms = classifier.predict(ready) if ready else ([], 0.0)
    row = 0
    for source, tensor, error in zip(chunk, tensors, errors):
        if tensor is None:
            writer.write(error_record(source.name, classifier.name, error))
        else:
            writer.write(ok_record(source.name, classifier.name, classifier.top(probs[row], top_k), ms))
            row += 1
