"""Fixtures of the Python compatibility suite.

- `server`: one `$ENSEMBLE_BIN local --members 1 --client-port 0` per test module.
- `fresh_server`: one per test, where a test needs a tree nobody else has touched.
- `every_word_server`: one per test, answering every four-letter word
  (`--set 4lw.commands.whitelist=*`).
- `reconfigurable_server`: one per test module, serving `reconfig` (`reconfigEnabled=true`) to
  the super user `SUPER` of compat_helpers.
- `clients`: a factory of started kazoo clients (on `server` unless told otherwise), all
  stopped at the end of the test.
- `zk`: one started kazoo client on `server`.
- `path`: a node path unique to the test (not created), so tests sharing a server stay apart.

When a test fails, the tail of the log of every server it used is added to the report.
"""

import os
import re

import pytest

from compat_helpers import SUPER_DIGEST, Server, TcpProxy, make_client

_active_servers = []


def _binary():
    binary = os.environ.get("ENSEMBLE_BIN")
    if not binary:
        pytest.exit("ENSEMBLE_BIN is not set: run scripts/compat-python.sh", returncode=2)
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        pytest.exit("ENSEMBLE_BIN=%s is not an executable file" % binary, returncode=2)
    return binary


def _start(tmp_path_factory, name, settings=()):
    log_dir = tmp_path_factory.mktemp("server-logs")
    server = Server(_binary(), str(log_dir / (re.sub(r"[^\w.-]", "_", name) + ".log")), settings)
    server.start()
    _active_servers.append(server)
    return server


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    s = _start(tmp_path_factory, request.module.__name__)
    yield s
    _active_servers.remove(s)
    s.stop()


@pytest.fixture
def fresh_server(request, tmp_path_factory):
    s = _start(tmp_path_factory, request.node.name)
    yield s
    _active_servers.remove(s)
    s.stop()


@pytest.fixture
def every_word_server(request, tmp_path_factory):
    s = _start(tmp_path_factory, request.node.name, ["4lw.commands.whitelist=*"])
    yield s
    _active_servers.remove(s)
    s.stop()


@pytest.fixture(scope="module")
def reconfigurable_server(request, tmp_path_factory):
    settings = ["reconfigEnabled=true", "DigestAuthenticationProvider.superDigest=" + SUPER_DIGEST]
    s = _start(tmp_path_factory, request.module.__name__ + "-reconfigurable", settings)
    yield s
    _active_servers.remove(s)
    s.stop()


@pytest.fixture
def clients(request, server):
    started = []

    def factory(hosts=None, start=True, **kwargs):
        client = make_client(hosts or server.address, **kwargs)
        started.append(client)
        if start:
            client.start(timeout=15)
        return client

    yield factory
    for client in started:
        try:
            client.stop()
            client.close()
        except Exception:
            pass


@pytest.fixture
def zk(clients):
    return clients()


@pytest.fixture
def path(request):
    return "/" + re.sub(r"[^\w-]", "_", request.node.name)


@pytest.fixture
def proxy(server):
    p = TcpProxy(server.host, server.port)
    yield p
    p.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    # Where each server's log stood when the test body started: a failure shows what the
    # servers logged during the test (a module's server serves many tests).
    item._server_log_offsets = {id(s): s.log_size() for s in _active_servers}
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and _active_servers:
        offsets = getattr(item, "_server_log_offsets", {})
        for s in _active_servers:
            text = s.log_since(offsets.get(id(s), 0), limit=8000)
            report.sections.append(
                ("server log during the test, %s (%s)" % (s.address, s.log_path), text or "(nothing logged)")
            )
