"""Reach and trust one host: its instance state and address (readiness.py, address_book.py), the login's home
(home_book.py), its private key (keys.py) and pinned host keys (hostkeys.py), the SSH session (session.py), the
lock one organiser holds while setting it up (host_lock.py), and the backoff its waits use (backoff.py).

Knows nothing of the agent: what runs on the host is remote/.
"""
MAY_IMPORT = ("lab",)
