"""schemathesis over the REST schema: no server error and no undocumented response.

Stateless, authenticated as an operator (every endpoint reaches its service), a bounded
number of examples per operation. The ASGI app runs requests in its own thread, so the
test data is committed (`transactional_db`) for that thread to see.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mostro_site.api.root import api
from mostro_site.asgi import application
from tests.disputes.web import bearer, make_user

schema = schemathesis.openapi.from_asgi("/api/openapi.json", application)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def operator_headers(transactional_db, node, fake_ln):
    header = bearer(make_user("schemathesis", "operator"))["HTTP_AUTHORIZATION"]
    return {"Authorization": header}


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_matches_its_schema(case, operator_headers):
    case.call_and_validate(headers=operator_headers, checks=CHECKS)


def test_operation_ids_are_the_view_names():
    ids = sorted(op["operationId"] for path in api.get_openapi_schema()["paths"].values() for op in path.values())
    assert ids == [
        "ban_create",
        "ban_lift",
        "ban_list",
        "devfee_list",
        "dispute_cancel",
        "dispute_detail",
        "dispute_list",
        "dispute_settle",
        "dispute_take",
        "maintenance_set",
        "maintenance_status",
        "node_info",
        "node_stats",
        "order_cancel",
        "order_detail",
        "order_list",
        "solver_add",
        "solver_list",
        "solver_remove",
    ]
