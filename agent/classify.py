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
    from agent.pipeline import prefetch
    chunks = [sources[start:start + batch_size] for start in range(0, len(sources), batch_size)]
    done = 0
    # The next batch is read, decoded and preprocessed (for every model) in a thread
    # while this batch's forward passes run: MXNet's forward releases the GIL.
    for chunk, prepared in prefetch(chunks, lambda chunk: _prepare_chunk(chunk, classifiers)):
        for classifier, (tensors, errors) in zip(classifiers, prepared):
            _predict_chunk(classifier, chunk, tensors, errors, top_k, writer)
        done += len(chunk)
        if progress:
            progress("classified {0}/{1} inputs".format(done, len(sources)))


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
