"""Shared Optuna studies on PostgreSQL, the storage for workers on several machines: two
workers on one study, and a SIGKILLed worker whose trial is failed (heartbeat) and retried.

The server: `KP_TEST_POSTGRES_URL` (`.ci/run` starts one on 127.0.0.1 with `.ci/postgres`,
which prints the URL), else `.ci/postgres`'s well-known URL. Each test creates a database of
its own and drops it. Without a server the tests skip, except under CI (`CI` set): there
they fail, so a CI without PostgreSQL cannot pass them silently.
"""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy

from tests.test_study import (
    check_killed_trial_retried,
    check_shared_budget,
    kill_mid_trial_and_restart,
    run_two_workers,
)

URL = os.environ.get("KP_TEST_POSTGRES_URL", "postgresql://kp_test:kp_test@127.0.0.1:5432/kp_test")


@pytest.fixture
def postgres_url():
    """A fresh database on the test server (dropped afterwards)."""
    try:
        admin = sqlalchemy.create_engine(URL, isolation_level="AUTOCOMMIT")
        admin.connect().close()
    except Exception as err:  # no driver, no server, no role
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {URL} is needed under CI (.ci/postgres starts it): {err}")
        pytest.skip(f"no PostgreSQL at {URL} (run .ci/postgres): {str(err).splitlines()[0]}")
    name = f"kp_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    yield admin.url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f"DROP DATABASE {name} WITH (FORCE)"))
    admin.dispose()


def test_two_workers_share_a_postgres_study(postgres_url):
    check_shared_budget(run_two_workers(postgres_url))


def test_killed_worker_trial_is_failed_and_retried_on_postgres(postgres_url):
    check_killed_trial_retried(kill_mid_trial_and_restart(postgres_url))
