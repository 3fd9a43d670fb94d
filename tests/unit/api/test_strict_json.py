"""Bodies of /api and /scim are RFC 8259 JSON: NaN and ±Infinity (which Python's json reads by
default) are refused as malformed, with nothing written (found by the bad-input matrix)."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from idp.orgs.models import Organisation
from tests.conftest import table_counts

EXEMPT = ("audit_event", "store_entry")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize(("method", "url", "content_type"), [
    ("post", "/api/v1/operators", "application/json"),
    ("post", "/scim/v2/Users", "application/scim+json"),
])
def test_s12_non_json_numbers_are_refused(client: FlaskClient, enterprise: Organisation,
                                          auth: dict[str, str], constant: str, method: str,
                                          url: str, content_type: str) -> None:
    before = {k: v for k, v in table_counts().items() if k not in EXEMPT}
    body = '{"name": "张三", "phone": "13900000001", "remark": ' + constant + '}'
    response = getattr(client, method)(url, data=body, headers={**auth,
                                                                "Content-Type": content_type})
    assert response.status_code == 400, response.text
    assert {k: v for k, v in table_counts().items() if k not in EXEMPT} == before
