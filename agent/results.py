"""Result records as JSON lines, to stdout or to --out written atomically.

With --out the lines go to a temporary file beside FILE, flushed one by one, and
the file is renamed onto FILE when the run ends, also when it ends with a fatal
error or an interrupt: what finished is never lost and FILE is never half-written.
"""
from __future__ import print_function, division, absolute_import

import json
import os
from collections import OrderedDict
import sys
import tempfile

from agent.contract import results_temp_prefix


def ok_record(image, model, top, ms):
    # Ordered so that lines read the same under Python 2.7 (whose dicts are unordered).
    return OrderedDict([("image", image), ("model", model), ("top", top), ("ms", round(ms, 3))])


def error_record(image, model, message):
    return OrderedDict([("image", image), ("model", model), ("error", message)])


class ResultWriter(object):
    """Writes records (to ``out_path``, else to ``stdout`` or sys.stdout); ``tally`` (a dict), when given,
    always holds "results" and "errors" so far."""

    def __init__(self, out_path=None, tally=None, stdout=None):
        self.out_path = out_path
        self.count = 0
        self.errors = 0
        self.tally = tally if tally is not None else {}
        self._temp = None
        if out_path:
            folder = os.path.dirname(os.path.abspath(out_path))
            if not os.path.isdir(folder):
                from agent.errors import UsageError
                raise UsageError("--out {0!r}: folder {1!r} does not exist".format(out_path, folder))
            handle, self._temp = tempfile.mkstemp(dir=folder, prefix=results_temp_prefix(os.path.basename(out_path)))
            self._stream = os.fdopen(handle, "w")
        else:
            self._stream = stdout or sys.stdout  # the warm agent: its client's connection

    def write(self, record):
        self._stream.write(json.dumps(record, sort_keys=False) + "\n")
        self._stream.flush()
        self.count += 1
        if "error" in record:
            self.errors += 1
        self.tally.update(results=self.count, errors=self.errors)

    def close(self):
        """Put the results in place (rename onto --out); safe to call more than once."""
        if self._temp is None:
            return
        self._stream.close()
        # mkstemp makes the file 0600; results are an ordinary file.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self._temp, 0o666 & ~umask)
        os.rename(self._temp, self.out_path)
        self._temp = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
