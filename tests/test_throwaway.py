"""The throwaway services' own failures are clear errors (ServiceUnavailable), in seconds, without PostgreSQL or Dask."""
import subprocess
import sys

import pytest

from coursekit import throwaway

# Stands in for `dask scheduler`: writes a scheduler file that never holds an address, then waits.
BROKEN_SCHEDULER = """
import sys, time
path = sys.argv[sys.argv.index("--scheduler-file") + 1]
open(path, "w").write('{"not": "an address"}')
print("the stand-in scheduler is up", flush=True)
time.sleep(60)
"""


def test_a_scheduler_that_writes_no_address_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(throwaway, "_dask_command", lambda: [sys.executable, "-c", BROKEN_SCHEDULER])
    with pytest.raises(throwaway.ServiceUnavailable, match=r"wrote no address(.|\n)*stand-in scheduler is up"):
        with throwaway.dask_cluster(workers=0, timeout=2):
            pass


def test_the_callers_own_error_in_the_block_is_not_taken_for_postgresql_failing(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(throwaway, "postgres_bin", lambda: tmp_path)
    monkeypatch.setattr(throwaway.subprocess, "run", lambda *a, **k: calls.append(a[0][0]))  # initdb, pg_ctl: "work"
    monkeypatch.setattr(throwaway, "_as_unprivileged", lambda: {})
    with pytest.raises(subprocess.CalledProcessError):
        with throwaway.postgres_server():
            raise subprocess.CalledProcessError(1, ["the caller's command"])
    assert [path.name for path in calls] == ["initdb", "pg_ctl", "pg_ctl"]  # started, then stopped
