"""Whether a Dask worker can grade for this driver: the same packages and coursekit code, and a working sandbox.

A grade depends on the versions of nbgrader, its Jupyter stack and the packages students' kernels import: a worker
with other versions could grade differently, so the driver (coursekit.cluster) compares every worker with itself
before it sends a submission, and each task (coursekit.cluster_task) compares again, for workers that join later.
"""
import hashlib
import re
import sys
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent  # the repository, when coursekit runs from a checkout


class ClusterError(RuntimeError):
    """The class cannot be graded on this cluster (the message says why and what to do)."""


class EnvironmentMismatch(ClusterError):
    """A worker's packages differ from the driver's."""


# Packages whose versions decide a grade or whether the worker can run the task at all. requirements.txt's
# packages (what students' kernels import) are added to these.
CHECKED_PACKAGES = ["nbgrader", "nbconvert", "nbclient", "nbformat", "ipykernel", "ipython", "jupyter_client",
                    "traitlets", "sqlalchemy", "alembic", "psycopg", "dask", "distributed", "cloudpickle", "msgpack",
                    "tornado"]


def checked_packages() -> list[str]:
    names = list(CHECKED_PACKAGES)
    requirements = _CHECKOUT / "requirements.txt"
    if requirements.exists():
        for line in requirements.read_text().splitlines():
            match = re.match(r"\s*([A-Za-z0-9_.-]+)", line)
            if match and not line.lstrip().startswith(("#", "-")):
                names.append(match.group(1))
    return sorted(set(names), key=str.lower)


def environment(packages: list[str]) -> dict[str, str]:
    """Name -> version (or "not installed") of `packages`, plus Python's version and a hash of coursekit's code."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": "%d.%d.%d" % sys.version_info[:3]}
    for name in packages:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    code = hashlib.sha256()
    for path in sorted(Path(__file__).resolve().parent.glob("*.py")):
        code.update(path.name.encode() + b"\0" + path.read_bytes())
    found["coursekit (code)"] = code.hexdigest()[:12]
    return found


def differences(expected: dict[str, str], found: dict[str, str]) -> list[str]:
    return [f"{name} {found.get(name, 'not installed')} (driver: {version})"
            for name, version in expected.items() if found.get(name) != version]


def _sandbox_unavailable() -> str | None:
    from . import sandbox

    return sandbox.unavailable_reason()


def check_workers(client, expected: dict[str, str], packages: list[str], check_sandbox: bool = True) -> int:
    """Raise EnvironmentMismatch unless every worker's environment equals `expected` (and, with check_sandbox, every
    worker can run the kernel sandbox); returns the worker count."""
    try:
        found = client.run(environment, packages)
    except Exception as error:  # typically: coursekit is not importable on a worker
        raise EnvironmentMismatch(f"the Dask workers could not run coursekit's environment check ({type(error).__name__}: "
                                  f"{error}); nothing was graded. Is coursekit installed on every worker?") from None
    wrong = {worker: differences(expected, env) for worker, env in found.items()}
    wrong = {worker: diff for worker, diff in wrong.items() if diff}
    if wrong:
        lines = [f"  {worker}: {'; '.join(diff)}" for worker, diff in sorted(wrong.items())]
        raise EnvironmentMismatch(
            f"{len(wrong)} of {len(found)} Dask worker(s) have another environment than this machine; nothing was "
            "graded. Install the same versions on the workers (requirements.txt, requirements-dev.txt's grading "
            "extras and this coursekit):\n" + "\n".join(lines))
    if check_sandbox:
        unsandboxed = {worker: reason for worker, reason in client.run(_sandbox_unavailable).items() if reason}
        if unsandboxed:
            raise EnvironmentMismatch(
                f"{len(unsandboxed)} of {len(found)} Dask worker(s) cannot run the students' kernels in the sandbox "
                "(coursekit.sandbox); nothing was graded:\n"
                + "\n".join(f"  {worker}: {reason}" for worker, reason in sorted(unsandboxed.items())))
    return len(found)
