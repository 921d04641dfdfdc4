"""The workshop itself: every host made ready before the room arrives (prepare.py), the attendee's workspace and
notebook (workspace.py, mxnet-lab.ipynb, sample_photos/), JupyterLab on each host behind its SSH tunnel
(notebook_server.py, notebook_ports.py, notebook_tunnel.py), the attendees' handouts (handout.py) and the
organiser's view of the room (room_status.py).
"""
MAY_IMPORT = ("lab", "hosts", "remote", "results", "runs")
