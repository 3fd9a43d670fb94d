"""The OpenAPI document (/api/openapi.json) is the API's contract: it names every route the
``api`` blueprint serves, and schemathesis — in-process against the WSGI app, with a valid
token of a tenant that has offices and operators — sends what the document allows (and, in
negative mode, what it forbids) to every operation: no answer may be a 5xx, have an
undocumented status or content type, or differ from its documented schema."""

from __future__ import annotations

import time
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from idp.api.openapi import document
from idp.orgs.models import Organisation
from tests.conftest import table_counts
from tests.factories import make_office, make_operator

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
MAX_EXAMPLES = 15  # per operation and mode: the whole run stays well under a minute
METHODS = {"get", "post", "put", "patch", "delete"}


def test_d09_document_is_served(client: FlaskClient) -> None:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    doc = response.json
    assert doc["openapi"] == "3.0.3"
    assert doc["servers"] == [{"url": "http://localhost"}]
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer",
                                 "description": "本平台签发的不透明访问令牌"}
    flows = schemes["oauth2"]["flows"]
    assert flows["clientCredentials"]["tokenUrl"] == "http://localhost/token"
    assert set(flows["clientCredentials"]["scopes"]) == {"console.read", "console.write", "scim"}


def test_d09_document_names_exactly_the_routes(app: Flask) -> None:
    """Every route of the ``api`` blueprint is in the document with its methods, and nothing
    else is (``<name>`` in Flask is ``{name}`` in OpenAPI)."""
    routes: set[tuple[str, str]] = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("api."):
            path = rule.rule.replace("<", "{").replace(">", "}")
            routes |= {(path, m.lower()) for m in rule.methods or () if m.lower() in METHODS}
    documented = {(path, method) for path, item in document("http://localhost")["paths"].items()
                  for method in item if method in METHODS}
    assert routes == documented


def test_d09_document_parameters_match_the_views(app: Flask) -> None:
    """Each path parameter in the document is the view's argument of that name."""
    doc = document("http://localhost")
    for path, item in doc["paths"].items():
        for parameter in item.get("parameters", []):
            assert "{" + parameter["name"] + "}" in path


def _strategies(operation: Any, ids: dict[str, list[int]],
                bodies: dict[str, list[dict[str, Any]]]) -> list[Any]:
    """Random cases of the operation, plus cases aimed at rows that exist (so that success
    answers are checked too, not only 404s) and valid bodies (``bodies`` by operation)."""
    positive = schemathesis.GenerationMode.POSITIVE
    negative = schemathesis.GenerationMode.NEGATIVE
    strategies = [operation.as_strategy(generation_mode=positive)]
    if operation.path_parameters or operation.query or operation.body:
        strategies.append(operation.as_strategy(generation_mode=negative))
    for name, values in ids.items():
        if "{" + name + "}" in operation.path:
            strategies += [operation.as_strategy(generation_mode=mode,
                                                 path_parameters={name: value})
                           for value in values for mode in (positive, negative)]
    for body in bodies.get(operation.label, []):
        pinned = {name: values[0] for name, values in ids.items()
                  if "{" + name + "}" in operation.path}
        strategies.append(operation.as_strategy(generation_mode=positive, body=body,
                                                path_parameters=pinned or None))
    return strategies


def test_d09_schemathesis_whole_api(app: Flask, enterprise: Organisation,
                                    auth: dict[str, str]) -> None:
    """D09: schemathesis over /api/openapi.json — every operation, positive and negative, with
    a tenant's token: no 5xx, no undocumented status, content type, header or shape."""
    office = make_office(enterprise)
    first = make_operator(enterprise, phone="13900000001", name="张三")
    second = make_operator(enterprise, phone="13900000099", name="李四", department=office)
    spare = make_office(enterprise, name="阳光苑管理处")
    doomed = make_operator(enterprise, phone="13900000098", name="王五")
    doomed_office = make_office(enterprise, name="滨江一期管理处")
    make_operator(enterprise, phone="13900000097", name="赵六", department=doomed_office)
    ids = {"operator_id": [first.id, second.id], "office_id": [office.id, spare.id]}
    # DELETE gets rows of its own: the other operations run after it and want theirs alive.
    delete_ids = {"operator_id": [doomed.id], "office_id": [doomed_office.id]}
    bodies: dict[str, list[dict[str, Any]]] = {
        "PATCH /api/v1/operators/{operator_id}": [{"status": "disabled"}, {"status": "active"}],
        "PATCH /api/v1/offices/{office_id}": [{"address": "浦东新区某路1号"}],
        "POST /api/v1/operators": [
            {"name": "测试操作员", "department_id": enterprise.id, "phone": "13900000009"},
            {"name": "王芳", "department_id": office.id, "phone": "17589662060",
             "category": "office", "role": "office", "remark": "前台"}],
        "POST /api/v1/offices": [{"name": "滨江公寓管理处", "contact_phone": "13912345678"}],
    }
    schema = schemathesis.openapi.from_dict(client_doc(app))
    started = time.monotonic()
    statuses: dict[str, set[int]] = {}
    def fuzz(strategy: Any, label: str) -> None:
        @given(case=strategy)
        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate], derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            response = case.call(app=app, headers=auth)
            statuses.setdefault(label, set()).add(response.status_code)
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        except Unsatisfiable:  # a negative case of an operation that admits no wrong input
            pass

    for result in schema.get_all_operations():
        operation = result.ok()
        pinned = delete_ids if operation.method.lower() == "delete" else ids
        for strategy in _strategies(operation, pinned, bodies):
            fuzz(strategy, operation.label)
    elapsed = time.monotonic() - started
    assert elapsed < 60, f"schemathesis took {elapsed:.0f} s"
    # It reached the successes too, not only the refusals.
    assert 200 in statuses["GET /api/v1/operators/{operator_id}"]
    assert 201 in statuses["POST /api/v1/operators"]
    assert 201 in statuses["POST /api/v1/offices"]
    assert 204 in statuses["DELETE /api/v1/offices/{office_id}"]
    assert 200 in statuses["PATCH /api/v1/operators/{operator_id}"]


def client_doc(app: Flask) -> dict[str, Any]:
    """The document as the app serves it (not the module's dict): what a client would read."""
    response = app.test_client().get("/api/openapi.json")
    assert response.status_code == 200
    doc: dict[str, Any] = response.json
    return doc


@pytest.mark.parametrize("path", ["/api/v1/operators", "/api/v1/offices"])
def test_d09_list_queries_never_fail(client: FlaskClient, enterprise: Organisation,
                                     auth: dict[str, str], path: str) -> None:
    """Arbitrary query strings on the lists: a 200 or a 400, nothing written."""
    before = {k: v for k, v in table_counts().items() if k not in ("audit_event",
                                                                   "store_entry")}
    keys = st.sampled_from(["operator_id", "name", "status", "category", "unit_code",
                            "unit_name", "page", "size", "x"])

    @given(st.dictionaries(keys, st.text(max_size=60), max_size=4))
    @settings(max_examples=40, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def run(params: dict[str, str]) -> None:
        response = client.get(path, headers=auth, query_string=params)
        assert response.status_code in (200, 400), (params, response.text)
        assert response.is_json

    run()
    assert {k: v for k, v in table_counts().items()
            if k not in ("audit_event", "store_entry")} == before
