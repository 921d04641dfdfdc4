"""The OpenSSH client options that reach one host with only its key and only its pinned host keys, once:
`mxlab ssh` passes them as arguments (as_argv), the handout writes them into ssh_config and its one-line
command. ssh_config keywords, in the order ssh_config lists them."""

PATH_OPTIONS = ("IdentityFile", "UserKnownHostsFile")  # their values are paths (ssh_config quotes them)


def pinned(identity, known_hosts, alias, port=None, extra=()):
    """[(keyword, value)]: this key only, host keys only from `known_hosts` under `alias` (an instance id: a
    restarted instance has a new address and the same keys), never learned on the way. `port`: None leaves it
    to ssh (22, or a config file's). `extra`: more pairs."""
    options = [("Port", str(port))] if port is not None else []
    options += [("IdentityFile", str(identity)), ("IdentitiesOnly", "yes"),
                ("UserKnownHostsFile", str(known_hosts)), ("StrictHostKeyChecking", "yes"),
                ("HostKeyAlias", str(alias))]
    return options + list(extra)


def as_argv(options):
    """The ssh arguments for `options` (-p and -i for Port and IdentityFile, -o KEYWORD=VALUE for the rest)."""
    argv = []
    for keyword, value in options:
        flag = {"Port": "-p", "IdentityFile": "-i"}.get(keyword)
        argv += [flag, value] if flag else ["-o", "%s=%s" % (keyword, value)]
    return argv
