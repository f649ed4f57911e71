"""A handler module that fails to import fails its job with the real cause; the worker's
slot is not lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgwerk import JobStatus, Werk
from pgwerk._execute import load_handler
from tests import worker_jobs
from tests.worker_support import running_worker

BROKEN = {
    "raises_at_import": ("raise RuntimeError('no config at import time')\n",
                         "RuntimeError: no config at import time"),
    "bad_syntax": ("def broken(:\n    pass\n", "SyntaxError"),
    "missing_dependency": ("import pgwerk_no_such_dependency  # noqa\n",
                           "No module named 'pgwerk_no_such_dependency'"),
    "import_error": ("from os import no_such_name  # noqa\n", "ImportError"),
}


@pytest.fixture
def broken_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"broken_{tmp_path.name.replace('-', '_')}"
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    for module, (source, _) in BROKEN.items():
        (package / f"{module}.py").write_text(f"{source}\ndef job():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    load_handler.cache_clear()
    return name


@pytest.mark.parametrize("module", sorted(BROKEN))
def test_worker__import_error_fails_the_job_with_its_cause(
        app: Werk, broken_package: str, module: str) -> None:
    bad = app.enqueue(f"{broken_package}.{module}.job")
    assert bad is not None

    with running_worker(app, concurrency=1):
        failed = app.wait_for(bad, timeout=10)
        later = app.enqueue(worker_jobs.double, 21)
        assert later is not None
        assert app.wait_for(later, timeout=10).result == 42

    assert failed.status is JobStatus.Failed
    assert BROKEN[module][1] in (failed.error or "")
    assert "has no attribute" not in (failed.error or "")
