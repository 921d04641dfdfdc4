"""The classify run: inputs -> decoded once -> per model, preprocessed and batched -> records.

Inputs are taken batch_size at a time, so memory stays bounded on a long list;
each input is read and decoded once and shared by all models. A failure of one
input (read, decode, preprocess) becomes its error record for every model; the
other inputs of the batch are still classified. Records come out in input order,
model by model within each batch.
"""
from __future__ import print_function, division, absolute_import

from agent import decode, preprocess
from agent.errors import InputError
from agent.results import error_record, ok_record


def run(sources, classifiers, writer, batch_size, top_k, progress=None):
    done = 0
    for start in range(0, len(sources), batch_size):
        chunk = sources[start:start + batch_size]
        images = [_decoded(source) for source in chunk]
        for classifier in classifiers:
            _classify_chunk(classifier, chunk, images, top_k, writer)
        done += len(chunk)
        if progress:
            progress("classified {0}/{1} inputs".format(done, len(sources)))


def _decoded(source):
    """(uint8 BGR pixels, None) or (None, error message) for one input."""
    try:
        return decode.decode(source.read()), None
    except InputError as err:
        return None, str(err)


def _classify_chunk(classifier, chunk, images, top_k, writer):
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
    ready = [tensor for tensor in tensors if tensor is not None]
    probs, ms = classifier.predict(ready) if ready else ([], 0.0)
    row = 0
    for source, tensor, error in zip(chunk, tensors, errors):
        if tensor is None:
            writer.write(error_record(source.name, classifier.name, error))
        else:
            writer.write(ok_record(source.name, classifier.name, classifier.top(probs[row], top_k), ms))
            row += 1
