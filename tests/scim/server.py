"""scim2-server for the SCIM connector's tests, with its resources kept across a restart.

Runs the `scim2-server` command (scim2_server.testserver.cli) unchanged, with two additions: at
start it loads the resources a previous run of it wrote to STATE (when that file exists), and
on SIGTERM it writes its resources to STATE and exits at once (the tests stop a server in the
middle of an export and start it again on the same port with the same resources); with
IDFLOW_TEST_TLS=CERT:KEY it serves HTTPS.

Usage: python server.py STATE [scim2-server options...]
"""

import itertools
import json
import os
import signal
import sys

from scim2_models import ScimProvider
from scim2_server.memory import InMemoryStorage
from scim2_server.testserver import cli

state = sys.argv[1]
providers = []
original_from_discovery = ScimProvider.from_discovery.__func__


def from_discovery(cls, *args, **kwargs):
    provider = original_from_discovery(cls, *args, **kwargs)
    providers.append(provider)
    return provider


ScimProvider.from_discovery = classmethod(from_discovery)


storages = []


class KeptStorage(InMemoryStorage):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        storages.append(self)
        if os.path.exists(state):
            with open(state) as f:
                dumped = json.load(f)
            provider = providers[-1]
            self.resources = [
                provider.model_for(d["meta"]["resourceType"]).model_validate(d)
                for d in dumped
            ]
            # Versions go on from the highest one kept.
            highest = 0
            for d in dumped:
                digits = "".join(ch for ch in d["meta"].get("version") or "" if ch.isdigit())
                if digits:
                    highest = max(highest, int(digits))
            self.versions = itertools.count(highest + 1)


cli.InMemoryStorage = KeptStorage


def stop(signum, frame):
    """Writes the resources and exits at once, holding the storage's lock: a request being
    served either was applied before (and is kept) or is never applied (and never answered)."""
    storage = storages[-1] if storages else None
    if storage is not None:
        storage.lock.acquire()
        with open(state + ".new", "w") as f:
            json.dump(cli.dump_resources(storage), f)
        os.replace(state + ".new", state)
    os._exit(0)


# HTTPS with the certificate and key named by IDFLOW_TEST_TLS (CERT:KEY), for the TLS tests.
if os.environ.get("IDFLOW_TEST_TLS"):
    import ssl

    cert, key = os.environ["IDFLOW_TEST_TLS"].split(":")
    plain_make_server = cli.make_server

    def make_server(*args, **kwargs):
        server = plain_make_server(*args, **kwargs)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        return server

    cli.make_server = make_server

signal.signal(signal.SIGTERM, stop)
sys.argv = ["scim2-server", *sys.argv[2:]]
cli.main()
