"""mxlab's exit statuses, named once (pip keeps its own in one module too). They mean what the agent's
do (agent/contract.py EXIT_*), and a run's status says the same thing for the whole lab."""
from agent.contract import EXIT_FATAL, EXIT_OK, EXIT_SIGNAL_BASE, EXIT_SOME_FAILED, EXIT_USAGE

SUCCESS = EXIT_OK  # 0: every host did everything asked
FAILED = EXIT_FATAL  # 1: an error mxlab names, or a host failed / is not ready
USAGE = EXIT_USAGE  # 2: bad command-line input
SOME_INPUTS_FAILED = EXIT_SOME_FAILED  # 3: every host ran; some inputs have errors (the rest results)
INTERRUPTED = EXIT_SIGNAL_BASE + 2  # 130: Ctrl-C (SIGINT), as a shell reports it
