import shutil
import tempfile
from pathlib import Path

import pytest

from tests.classroom import pgcluster


@pytest.fixture(scope="session")
def pg_url():
    """A throwaway PostgreSQL cluster for the session (in /tmp: pytest's own folders are closed to the
    `postgres` user the server runs as under root)."""
    reason = pgcluster.missing_reason()
    if reason:
        pytest.skip(reason)
    folder = Path(tempfile.mkdtemp(prefix="resnet-explorer-pg-"))
    try:
        with pgcluster.cluster(folder) as url:
            yield url
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pg_fresh(pg_url):
    """The URL of a new, empty database in the session's cluster (dropped after the test)."""
    import uuid

    from resnet_core.classroom import db
    name = "t_" + uuid.uuid4().hex[:12]
    admin = db.PostgresDatabase(pg_url)
    admin.execute(f"CREATE DATABASE {name}")
    yield pg_url.rsplit("/", 1)[0] + "/" + name
    admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()
