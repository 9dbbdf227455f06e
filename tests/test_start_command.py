"""README's first command, `make start`, opens JupyterLab on the course: the start page and the notebooks."""
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from coursekit.testing import COURSE_ROOT

pytestmark = pytest.mark.slow  # starts JupyterLab: skipped by `-m "not slow"`


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


def test_make_start_serves_the_start_page_and_the_section_notebooks():
    port, token = free_port(), "course-test-token"
    lab_args = f"--no-browser --ServerApp.ip=127.0.0.1 --IdentityProvider.token={token}"
    server = subprocess.Popen(["make", "--no-print-directory", "start", f"PORT={port}", f"LAB_ARGS={lab_args}"],
                              cwd=COURSE_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                status, _ = get(f"{base}/api/status?token={token}")
                break
            except OSError:
                assert server.poll() is None, server.stdout.read().decode()
                assert time.monotonic() < deadline, "JupyterLab did not answer within 120 s"
                time.sleep(0.5)
        status, page = get(f"{base}/lab/tree/notebooks/start.ipynb?token={token}")
        assert status == 200 and b"JupyterLab" in page
        status, body = get(f"{base}/api/contents/notebooks/start.ipynb?token={token}")
        start_page = json.loads(body)["content"]
        links = "".join("".join(c["source"]) for c in start_page["cells"])
        for section in ("01-async-database", "02-dependency-injection", "03-crud-operations", "04-capstone"):
            assert f"../release/{section}/{section}.ipynb" in links
        status, body = get(f"{base}/api/contents/release/01-async-database/01-async-database.ipynb?token={token}")
        notebook = json.loads(body)["content"]
        assert any("NotImplementedError" in "".join(c["source"]) for c in notebook["cells"])
        status, _ = get(f"{base}/api/kernelspecs?token={token}")
        assert status == 200
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
