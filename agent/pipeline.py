"""Decode and preprocessing overlapped with inference, on a graph bound once.

MXNet's forward is asynchronous: the Python thread only waits when it reads the
output. A producer thread decodes and preprocesses the next batch while the
oneDNN threads run the current one, so on a CPU the photo work hides behind the
forward pass instead of adding to it. The queue holds one batch ahead: memory
stays bounded on a long input list.

Parts: tune_environment (threading, before mxnet is imported), Engine (a graph
bound once, fed in place) and prefetch (the overlap).
"""
from __future__ import print_function, division, absolute_import

import os
import threading

try:
    import queue  # novermin
except ImportError:  # Python 2
    import Queue as queue  # novermin


def cpu_cores():
    """Physical-ish cores usable by this process (affinity when the OS exposes it)."""
    try:
        return len(os.sched_getaffinity(0))  # novermin (guarded: AttributeError below)
    except AttributeError:
        import multiprocessing
        return multiprocessing.cpu_count()


def tune_environment(environ=None):
    """Set oneDNN/OpenMP threading for this machine unless the user already did.

    Must run before mxnet is imported: its OpenMP pool reads these once. One OpenMP
    thread per core, and idle OpenMP threads sleep instead of spinning (PASSIVE): the
    decode thread and the MXNet engine's own threads need those cores between
    layers (measured on 2 cores: EfficientNet-Lite0 batch-1 forward 64 -> 14 ms).
    MKLDNN subgraph fusion on for every bound graph.
    """
    environ = os.environ if environ is None else environ
    environ.setdefault("OMP_NUM_THREADS", str(cpu_cores()))
    environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    environ.setdefault("MXNET_SUBGRAPH_BACKEND", "MKLDNN")
    environ.setdefault("MXNET_SUBGRAPH_VERBOSE", "0")
    return environ


class Engine(object):
    """A probability symbol bound once at ``batch_size`` for inference, fed in place."""

    def __init__(self, symbol, arg_params, aux_params, batch_size, size, input_name="data", context=None):
        import mxnet as mx
        self.batch_size = batch_size
        shape = (batch_size, 3, size, size)
        self.executor = symbol.simple_bind(context or mx.cpu(), grad_req="null", **{input_name: shape})
        self.executor.copy_params_from(arg_params, aux_params, allow_extra_params=True)
        self._input_name = input_name
        self._short = {}  # count -> executor for a short batch (sharing the weights), the latest few

    def forward(self, batch):
        """Probabilities (n, classes) for a float32 array (n <= batch_size, 3, size, size)."""
        count = len(batch)
        executor = self.executor if count == self.batch_size else self._short_executor(count, batch.shape[1:])
        executor.arg_dict[self._input_name][:] = batch
        executor.forward(is_train=False)
        return executor.outputs[0].asnumpy()

    def _short_executor(self, count, item_shape):
        """An executor for ``count`` < batch_size inputs: the bound one reshaped, sharing its weights.
        Padding to the full batch instead costs the full batch: a one-photo run at batch 8 (EfficientNet-Lite0,
        2 cores) took 70 ms a forward, reshaped 12 ms, with the same probabilities."""
        executor = self._short.get(count)
        if executor is None:
            if len(self._short) >= 4:  # a long-lived warm agent sees many short counts: keep a few
                self._short.pop(next(iter(self._short)))
            executor = self.executor.reshape(allow_up_sizing=False,
                                             **{self._input_name: (count,) + tuple(item_shape)})
            self._short[count] = executor
        return executor


def _get(out):
    """queue.get that a signal handler can interrupt (timed waits poll, on Python 2 too)."""
    while True:
        try:
            return out.get(timeout=0.5)
        except queue.Empty:
            continue


def prefetch(items, work, depth=1):
    """Yield (item, work(item)) in order, computing up to ``depth`` items ahead in a thread.

    The one pipeline of `agent classify` (agent.classify.run; the bench times that too):
    work = read + decode + preprocess of the next batch of inputs (for every model)
    while the current batch's forward passes run. An exception from work() is raised
    here, in the consumer, at that item.
    """
    items = list(items)
    out = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def produce():
        try:
            import cv2
            cv2.setNumThreads(1)  # the cores belong to the forward pass; OpenCV's pool would only contend
        except ImportError:
            pass
        for item in items:
            try:
                result = (item, work(item), None)
            except BaseException as err:
                result = (item, None, err)
            while not stop.is_set():
                try:
                    out.put(result, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if stop.is_set() or result[2] is not None:
                return

    producer = threading.Thread(target=produce)
    producer.daemon = True
    producer.start()
    finished = False
    try:
        for _ in items:
            item, value, err = _get(out)
            if err is not None:
                raise err
            yield item, value
        finished = True
    finally:
        stop.set()
        if finished:  # on an error or a signal (SIGTERM -> SystemExit), do not wait for a
            producer.join()  # producer stuck reading a stalled URL: it is a daemon thread
