"""Property-based fuzzing of every route (``tests/web/fuzzing.py``), signed in as each role.

A bounded number of examples here (``TIPLINE_FUZZ_EXAMPLES``, default 1500); the long campaign
is ``make fuzz`` (``python -m bench fuzz``). Every example asserts: no 5xx, nothing logged at
ERROR, and a refused request changed nothing in the database.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.twilio_support import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_FROM_NUMBER
from tests.web import fuzzing
from tipline.settings import Settings

EXAMPLES = int(os.environ.get("TIPLINE_FUZZ_EXAMPLES", "1500"))


@pytest.fixture
def fuzz_app(settings: Settings, pg_engine: Any, connection: Any, queue: Any, vault: Any) -> Any:
    from tests.conftest import BoundDatabase
    from tipline import crypto
    from tipline.app import create_app

    app = create_app(settings.with_overrides(
        twilio_account_sid=TEST_ACCOUNT_SID, twilio_auth_token=TEST_AUTH_TOKEN,
        twilio_from_number=TEST_FROM_NUMBER, trusted_proxy_hops=1),
        db=BoundDatabase(pg_engine, connection), queue=queue)
    app.config.update(TESTING=True)
    crypto.install(vault)
    return app


@pytest.fixture
def world(fuzz_app: Any, db_session: Any, vault: Any, queue: Any,
          demo_directory: Any) -> fuzzing.World:
    seeded = fuzzing.seed(db_session, vault, queue)
    return fuzzing.prepare(fuzz_app, db_session, seeded)


def test_every_route_is_fuzzed(fuzz_app: Any, world: fuzzing.World) -> None:
    """The route list comes from the URL map, and every role has a signed-in actor."""
    from tipline.accounts.models import Role

    assert {r.endpoint for r in world.routes} == {
        rule.endpoint for rule in fuzz_app.url_map.iter_rules()}
    assert {a.name for a in world.actors} >= {r.value for r in Role} | {"nobody", "reporter"}
    assert any(r.webhook for r in world.routes)
    assert world.forms, "no form was scraped from the pages"


def test_the_checks_can_fail(world: fuzzing.World, connection: Any) -> None:
    """The harness sees a write, a 5xx, an ERROR record and a refused request that wrote."""
    from sqlalchemy import text

    before = SNAPSHOT.take(connection)
    connection.execute(text("UPDATE districts SET name = name || '!'"))
    after = SNAPSHOT.take(connection)
    assert [t for t in before if before[t] != after[t]] == ["districts"]

    def outcome(endpoint: str, status: int, changed: list[str], refused: bool,
                errors: list[str] | None = None) -> fuzzing.Outcome:
        req = fuzzing.FuzzRequest("nobody", "POST", "/x", endpoint, "", {}, None, b"",
                                  "missing", "missing")
        return fuzzing.Outcome(req, status, errors or [], changed, refused)

    assert outcome("intake.report", 500, [], False).problems()
    assert outcome("intake.report", 200, [], False, ["tipline: boom"]).problems()
    assert outcome("intake.report", 400, ["tips"], True).problems()
    assert not outcome("intake.report", 303, ["tips"], False).problems()
    assert not outcome("accounts.login", 401, ["staff_users", "audit_events"], True).problems()


@settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=False,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_no_request_gets_a_5xx_or_writes_when_refused(
        fuzz_app: Any, world: fuzzing.World, connection: Any, data: st.DataObject) -> None:
    req = data.draw(fuzzing.fuzz_requests(world), label="request")
    client = fuzzing.fuzz_client(fuzz_app)
    with fuzzing.capture_errors() as errors:
        outcome = fuzzing.send(fuzz_app, client, world, req, connection, SNAPSHOT, errors)
    event(f"status {outcome.status // 100}xx")
    event(f"status {outcome.status} from {req.endpoint or 'no route'}")
    assert not outcome.problems(), f"{req.describe()}\n -> {outcome.status}: {outcome.problems()}"


SNAPSHOT = fuzzing.Snapshot()
