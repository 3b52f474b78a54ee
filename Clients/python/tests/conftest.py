"""Fixtures: a real sessiond (path from $SESSIOND_BIN), clients, unique ids.

Every sessiond a test used has its log (stdout and stderr) attached to the
report of a failing test. A per-test watchdog dumps every thread's stack and
exits if a test hangs, so a run never blocks CI.
"""
from __future__ import annotations

import faulthandler
import os
import sys
import uuid
from pathlib import Path
from typing import Callable, List, Tuple

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from sessiond import Sessiond  # noqa: E402

from sessionclient import SessionClient  # noqa: E402

TEST_WATCHDOG_SECONDS = 240

_logs_key = pytest.StashKey[List[Tuple[Sessiond, int]]]()


def _sessiond_bin() -> str:
    binary = os.environ.get("SESSIOND_BIN", "")
    if not binary:
        pytest.fail("SESSIOND_BIN is not set: point it at a sessiond binary "
                    "(e.g. $(swift build --show-bin-path)/sessiond)", pytrace=False)
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        pytest.fail(f"SESSIOND_BIN={binary} is not an executable file", pytrace=False)
    return binary


def _watch_log(request: pytest.FixtureRequest, server: Sessiond) -> None:
    """Attach `server`'s log, from now on, to this test's report if it fails."""
    request.node.stash.setdefault(_logs_key, []).append((server, server.log_size()))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for server, offset in item.stash.get(_logs_key, []):
            text = server.log_text(offset)
            lines = text.splitlines()
            if len(lines) > 400:
                text = "\n".join(["[... earlier lines cut ...]"] + lines[-400:])
            report.sections.append((f"{server.name} log ({server.log_path})", text or "(empty)"))


@pytest.fixture(autouse=True)
def _watchdog():
    faulthandler.dump_traceback_later(TEST_WATCHDOG_SECONDS, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="session")
def sessiond_bin() -> str:
    return _sessiond_bin()


@pytest.fixture(scope="session")
def _shared_server(sessiond_bin: str, tmp_path_factory: pytest.TempPathFactory):
    server = Sessiond(sessiond_bin, tmp_path_factory.mktemp("shared"), "sessiond-shared", ["--test-service"])
    server.start()
    yield server
    server.stop()
    server.kill()


@pytest.fixture
def server(_shared_server: Sessiond, request: pytest.FixtureRequest) -> Sessiond:
    """The sessiond shared by the tests that do not stop or restart it."""
    if not _shared_server.running:
        pytest.fail(f"the shared sessiond died:\n{_shared_server.log_tail()}", pytrace=False)
    _watch_log(request, _shared_server)
    return _shared_server


@pytest.fixture
def make_server(sessiond_bin: str, tmp_path: Path, request: pytest.FixtureRequest):
    """A factory of sessiond processes of this test alone (killed at teardown)."""
    servers: List[Sessiond] = []

    def make(name: str = "sessiond", args=("--test-service",), start: bool = True) -> Sessiond:
        s = Sessiond(sessiond_bin, tmp_path, name, list(args))
        servers.append(s)
        _watch_log(request, s)
        if start:
            s.start()
        return s

    yield make
    for s in servers:
        s.kill()


@pytest.fixture
def make_client():
    """A factory of SessionClients, all closed at teardown."""
    clients: List[SessionClient] = []

    def make(address: str, token=None, **kw) -> SessionClient:
        c = SessionClient(address, token, **kw)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def client(server: Sessiond, make_client: Callable[..., SessionClient]) -> SessionClient:
    """An admin client of the shared server."""
    return make_client(server.address, server.admin_token)


@pytest.fixture
def uid() -> str:
    """A suffix that makes this test's ids unique on the shared server."""
    return uuid.uuid4().hex[:10]
