"""Shared by the app's tests."""

import pytest


@pytest.fixture(autouse=True)
def _sessions_end_with_their_test():
    """An AppTest session is over when its test is, but Streamlit keeps its state (and so its kept network)
    alive in the process, and outside a server no liveness check can tell: release what the test's sessions
    kept booked, so that the next test starts from an empty budget as a fresh server would."""
    yield
    from app import live_session
    live_session.release_kept(only_gone=False)
