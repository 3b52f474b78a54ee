"""The README's Python example runs as pasted (against a fresh sessiond)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) == 1, "the README should have exactly one python block: the example"
    return blocks[0]


def test_readme_example_runs(make_server, tmp_path):
    server = make_server(args=[])
    script = tmp_path / "quickstart.py"
    script.write_text(readme_example())
    env = dict(os.environ, SESSIOND_ADDRESS=server.address, SESSIOND_TOKEN_FILE=str(server.data_dir / "admin-token"))
    for run in range(2):  # it can run again
        done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        out = done.stdout
        assert "whoami: ADMIN" in out
        assert re.search(r"session: \S+ ACTIVE rep: py-carol", out), out
        assert "retry replayed: True" in out
        assert "ended: ENDED_BY_ADMIN" in out
        assert "error: NOT_FOUND - session no-such-session does not exist" in out
        assert re.search(r"event \d+ SESSION_STATUS_UNSPECIFIED -> WAITING CUSTOMER_MESSAGE", out), out
        assert re.search(r"event \d+ WAITING -> ACTIVE ROUTED", out), out
        assert re.search(r"event \d+ ACTIVE -> ENDED ENDED_BY_ADMIN", out), out
        assert "resume a later watch with client.watch(" in out
