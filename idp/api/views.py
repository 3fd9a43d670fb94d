"""The admin REST API under /api/ (OpenAPI 3 at /api/openapi.json).

An enterprise's operators and offices for programs: the same services as the console
(``idp.console.operators``, ``idp.console.offices``), the same tenant isolation (another
enterprise's id is 404 like an unknown one), the same messages. Views stay thin: parse the JSON
strictly (types, unknown fields), call the service, render; every write is audited with the
client and the enterprise, and what must follow a commit (SMS of an initial password, ending
sessions) runs after it. An SMS that fails after the commit cannot undo it: the answer says
so (``initial_password_sms``), for the client to tell the person another way.

Errors are ``{"error": code, "message": 中文, "field": name?}``: 400 bad input, 401/403 the
token (RFC 6750), 404 not found, 409 a conflict with the state (S14, a deleted operator, an
office that still has operators), 415 a body that is not JSON, 422 the carrier check (S13).
``idp.api.openapi`` describes exactly this.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.datastructures import MultiDict

from idp import audit
from idp.accounts.service import send_initial_passwords
from idp.api import openapi
from idp.api.auth import READ, WRITE, BearerError, Caller, authenticate
from idp.console import offices
from idp.console.models import OPERATOR_ROLES, Operator
from idp.console.operators import (
    MSG_ACCOUNT_DISABLED,
    MSG_DELETED,
    MSG_NO_CHANGE,
    MSG_PHONE_BOUND,
    MSG_PHONE_OTHER_ACCOUNT,
    OperatorFilter,
    OperatorNotFound,
    PhoneCheckFailed,
    add_operator,
    check_new,
    delete_operator,
    get_operator,
    list_operators,
    update_operator,
)
from idp.console.tenant import MAX_ID
from idp.errors import FieldError
from idp.extensions import db
from idp.orgs.models import Organisation
from idp.validators import normalize_mobile
from idp.web import strict_json

bp = Blueprint("api", __name__, url_prefix="/api")

MSG_JSON = "请求体应为 JSON 对象"
MSG_MEDIA_TYPE = "请求体应为 JSON（Content-Type: application/json）"
MSG_UNKNOWN_FIELD = "不支持的字段"
MSG_STRING = "应为字符串"
MSG_INTEGER = "应为正整数"
MSG_PAGE = "页码应为 1–100000 的整数"
MSG_SIZE = "每页条数应为 10、20 或 50"
MSG_OFFICE_CHOICE = "operators 应为 move（移至本企业）或 delete（一并删除）"
MAX_PAGE = 100_000
PAGE_SIZES = (10, 20, 50)
OPERATOR_FIELDS = ("name", "department_id", "category", "phone", "role", "remark")
OPERATOR_PATCH_FIELDS = ("phone", "status")
OFFICE_FIELDS = ("name", "contact_name", "contact_phone", "address", "remark")


class ApiError(Exception):
    """An answer other than success, in this API's error format."""

    def __init__(self, status: int, error: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.field = field


def _error_response(status: int, error: str, message: str,
                    field: str | None = None) -> Response:
    body: dict[str, Any] = {"error": error, "message": message}
    if field is not None:
        body["field"] = field
    response = jsonify(body)
    response.status_code = status
    return response


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError) -> Response:
    return _error_response(exc.status, exc.error, exc.message, exc.field)


@bp.errorhandler(BearerError)
def _bearer_error(exc: BearerError) -> Response:
    response = _error_response(exc.status, exc.code, exc.message)
    challenge = exc.www_authenticate()
    if challenge:
        response.headers["WWW-Authenticate"] = challenge
    return response


@bp.after_request
def _no_store(response: Response) -> Response:
    """Answers about people and tokens are never cached (RFC 6750 §5.3)."""
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def _field_error(exc: FieldError) -> NoReturn:
    """A service's FieldError as this API's answer: S14 and the like are conflicts (409)."""
    if exc.message in (MSG_PHONE_BOUND, MSG_PHONE_OTHER_ACCOUNT):
        raise ApiError(409, "phone_bound", exc.message, exc.field)
    if exc.message == MSG_DELETED:
        raise ApiError(409, "operator_deleted", exc.message, exc.field)
    if exc.message == MSG_ACCOUNT_DISABLED:
        raise ApiError(409, "account_disabled", exc.message, exc.field)
    raise ApiError(400, "invalid_field", exc.message, exc.field)


def _phone_check_failed(caller: Caller, exc: PhoneCheckFailed, action: str) -> NoReturn:
    """S13 and the carrier's other answers: 422, nothing saved but the audit events."""
    caller.audit(action, audit.FAILURE, reason="phone_check",
                 outcome=str(exc.verification.outcome))
    db.session.commit()  # the check's own audit event and ours; nothing else was written
    raise ApiError(422, "phone_check_failed", exc.message, "phone")


# --- parsing -----------------------------------------------------------------------------------

def _shown(name: str) -> str | None:
    """A field name fit to echo back (never a lone surrogate or a control character)."""
    return name if 0 < len(name) <= 64 and name.isprintable() else None


def json_body(allowed: tuple[str, ...]) -> dict[str, Any]:
    """The request's JSON object with only ``allowed`` keys; anything else is a 400/415."""
    if request.mimetype != "application/json" and not request.mimetype.endswith("+json"):
        raise ApiError(415, "unsupported_media_type", MSG_MEDIA_TYPE)
    try:
        data = strict_json(request.get_data(cache=False))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise ApiError(400, "invalid_request", MSG_JSON) from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_request", MSG_JSON)
    for key in data:
        if key not in allowed:
            raise ApiError(400, "invalid_request", MSG_UNKNOWN_FIELD, _shown(key))
    return data


def _string(data: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            return ""  # the service's own message for an empty field
        return None
    if not isinstance(value, str):
        raise ApiError(400, "invalid_field", MSG_STRING, key)
    return value


def _positive_int(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise ApiError(400, "invalid_field", MSG_INTEGER, key)
    return value


def _query_int(args: MultiDict[str, str], key: str, default: int, message: str,
               allowed: Callable[[int], bool]) -> int:
    raw = args.get(key)
    if raw is None or raw == "":
        return default
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 9 or not allowed(int(text)):
        raise ApiError(400, "invalid_query", message, key)
    return int(text)


def _page_args() -> tuple[int, int]:
    page = _query_int(request.args, "page", 1, MSG_PAGE, lambda n: 0 < n <= MAX_PAGE)
    size = _query_int(request.args, "size", 20, MSG_SIZE, lambda n: n in PAGE_SIZES)
    return page, size


# --- rendering ---------------------------------------------------------------------------------

def _timestamp(value: Any) -> str:
    text: str = value.isoformat().replace("+00:00", "Z")
    return text


def department_json(org: Organisation) -> dict[str, Any]:
    return {"id": org.id, "name": org.name, "type": org.type, "code": org.unit_code}


def operator_json(operator: Operator) -> dict[str, Any]:
    return {
        "id": operator.id,
        "name": operator.name,
        "department": department_json(operator.department),
        "category": operator.category,
        "category_label": operator.category_label,
        "role": operator.role,
        "role_label": operator.role_label,
        "phone": operator.account.phone or "",
        "remark": operator.remark or "",
        "status": operator.status,
        "status_label": operator.status_label,
        "created_at": _timestamp(operator.created_at),
        "updated_at": _timestamp(operator.updated_at),
    }


def send_initial_password_sms(caller: Caller, operator: Operator, initial: str | None) -> str:
    """SMS the initial password of a new operator's account (after the commit that made it)
    and say how it went, one of ``openapi.INITIAL_PASSWORD_SMS``: ``none`` when no password
    was made (the person already had an account), ``failed`` when the gateway refused
    (``send_initial_passwords`` audits it and returns the accounts it could not reach)."""
    if initial is None:
        return "none"
    failed = send_initial_passwords(
        [(operator.account, initial)], OPERATOR_ROLES[operator.role], by=caller.tenant.actor,
        client_id=caller.client_id, organisation_id=caller.tenant.id)
    return "failed" if failed else "sent"


def _json(data: Any, status: int = 200) -> Response:
    response = jsonify(data)
    response.status_code = status
    return response


# --- the document ------------------------------------------------------------------------------

@bp.get("/openapi.json")
def openapi_document() -> Response:
    """The OpenAPI 3 description of this API (public, like discovery)."""
    response = jsonify(openapi.document(current_app.config["IDP"].issuer))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


# --- operators (S11–S15) -----------------------------------------------------------------------

def _operator(caller: Caller, operator_id: str) -> Operator:
    try:
        return get_operator(caller.tenant, operator_id)
    except OperatorNotFound as exc:
        raise ApiError(404, "not_found", exc.message) from None


@bp.get("/v1/operators")
def operators_list() -> Response:
    """S11: the list, with the console's filters and paging."""
    caller = authenticate(READ, WRITE)
    filters, errors = OperatorFilter.parse(request.args)
    if errors:
        key = next(iter(errors))
        raise ApiError(400, "invalid_query", errors[key], key)
    page, size = _page_args()
    result = list_operators(caller.tenant, filters, page, size)
    items = result.items if result.page == page else []  # past the last page: nothing
    return _json({"items": [operator_json(o) for o in items], "total": result.total,
                  "page": page, "size": result.size, "pages": result.pages})


@bp.post("/v1/operators")
def operators_create() -> Response:
    """S12–S14: add an operator; the carrier check first, the initial password by SMS after,
    and the answer says whether that SMS went out (``initial_password_sms``)."""
    caller = authenticate(WRITE)
    data = json_body(OPERATOR_FIELDS)
    department_id = _positive_int(data, "department_id")
    fields = {key: _string(data, key, required=key in ("name", "phone"))
              for key in ("name", "category", "phone", "role", "remark")}
    try:
        new = check_new(caller.tenant, name=fields["name"] or "",
                        department_id=department_id or "", category=fields["category"],
                        phone=fields["phone"] or "", role=fields["role"],
                        remark=fields["remark"])
        operator, initial = add_operator(caller.tenant, new)
    except PhoneCheckFailed as exc:
        _phone_check_failed(caller, exc, "api.operator.create")
    except FieldError as exc:
        if exc.message == MSG_PHONE_BOUND:
            caller.audit("api.operator.create", audit.FAILURE, reason="phone_bound")
            db.session.commit()
        _field_error(exc)
    caller.audit("api.operator.create", operator_id=operator.id,
                 department_id=operator.department_id)
    db.session.commit()
    sms = send_initial_password_sms(caller, operator, initial)
    response = _json(operator_json(operator) | {"initial_password_sms": sms}, 201)
    response.headers["Location"] = f"{request.path}/{operator.id}"
    return response


@bp.get("/v1/operators/<operator_id>")
def operators_get(operator_id: str) -> Response:
    """S15 查询."""
    caller = authenticate(READ, WRITE)
    return _json(operator_json(_operator(caller, operator_id)))


@bp.patch("/v1/operators/<operator_id>")
def operators_update(operator_id: str) -> Response:
    """S15 修改: the phone number and the status only. Sending the values it already has
    changes nothing and answers 200 (PATCH stays idempotent)."""
    caller = authenticate(WRITE)
    operator = _operator(caller, operator_id)
    data = json_body(OPERATOR_PATCH_FIELDS)
    phone = _string(data, "phone")
    status = _string(data, "status")
    if phone is None and status is None:
        raise ApiError(400, "invalid_request", MSG_NO_CHANGE)
    try:
        if operator.status == "deleted":
            raise FieldError("status", MSG_DELETED)
        same_phone = phone is None or normalize_mobile(phone, "phone") == operator.account.phone
        if same_phone and (status is None or status == operator.status):
            return _json(operator_json(operator))
        after = update_operator(caller.tenant, operator, phone=phone, status=status)
    except PhoneCheckFailed as exc:
        _phone_check_failed(caller, exc, "api.operator.update")
    except FieldError as exc:
        _field_error(exc)
    caller.audit("api.operator.update", operator_id=operator.id,
                 changed=sorted(k for k in ("phone", "status") if data.get(k) is not None))
    db.session.commit()
    after()
    db.session.refresh(operator)
    return _json(operator_json(operator))


@bp.delete("/v1/operators/<operator_id>")
def operators_delete(operator_id: str) -> Response:
    """S15 删除: a status; the row, its identity and the audit trail stay."""
    caller = authenticate(WRITE)
    operator = _operator(caller, operator_id)
    try:
        after = delete_operator(caller.tenant, operator)
    except FieldError as exc:
        _field_error(exc)
    caller.audit("api.operator.delete", operator_id=operator.id)
    db.session.commit()
    after()
    return Response(status=204)


# --- offices (T03) -----------------------------------------------------------------------------

def office_json(office: Organisation, operator_count: int) -> dict[str, Any]:
    form = offices.office_form_of(office)
    return {
        "id": office.id,
        "name": office.name,
        "code": office.code or "",
        "contact_name": form.contact_name,
        "contact_phone": form.contact_phone,
        "address": form.address,
        "remark": form.remark,
        "operator_count": operator_count,
        "created_at": _timestamp(office.created_at),
        "updated_at": _timestamp(office.updated_at),
    }


def _office(caller: Caller, office_id: str) -> Organisation:
    try:
        return offices.get_office(caller.tenant, office_id)
    except offices.OfficeNotFound as exc:
        raise ApiError(404, "not_found", exc.message) from None


def _office_field_error(exc: FieldError) -> NoReturn:
    if exc.message == offices.MSG_NAME_TAKEN:
        raise ApiError(409, "name_taken", exc.message, exc.field)
    raise ApiError(400, "invalid_field", exc.message, exc.field)


@bp.get("/v1/offices")
def offices_list() -> Response:
    """The enterprise's live offices, oldest first, with their operator counts."""
    caller = authenticate(READ, WRITE)
    rows = offices.list_offices(caller.tenant)
    counts = offices.live_operator_counts(caller.tenant, rows)
    return _json({"items": [office_json(o, counts.get(o.id, 0)) for o in rows],
                  "total": len(rows)})


@bp.post("/v1/offices")
def offices_create() -> Response:
    """新建: usable at once, no review; the 管理处编码 is given by the service."""
    caller = authenticate(WRITE)
    data = json_body(OFFICE_FIELDS)
    try:
        form = offices.check_office(**{k: data.get(k) for k in OFFICE_FIELDS})
        office = offices.create_office(caller.tenant, form)
    except FieldError as exc:
        _office_field_error(exc)
    caller.audit("api.office.create", office_id=office.id)
    db.session.commit()
    response = _json(office_json(office, 0), 201)
    response.headers["Location"] = f"{request.path}/{office.id}"
    return response


@bp.get("/v1/offices/<office_id>")
def offices_get(office_id: str) -> Response:
    caller = authenticate(READ, WRITE)
    office = _office(caller, office_id)
    return _json(office_json(office, offices.live_operator_count(caller.tenant, office)))


@bp.patch("/v1/offices/<office_id>")
def offices_update(office_id: str) -> Response:
    """修改: the fields sent replace those of the office; the others and the code stay."""
    caller = authenticate(WRITE)
    office = _office(caller, office_id)
    data = json_body(OFFICE_FIELDS)
    if not data:
        raise ApiError(400, "invalid_request", MSG_NO_CHANGE)
    current = offices.office_form_of(office)
    merged = {k: data[k] if k in data else getattr(current, k) for k in OFFICE_FIELDS}
    try:
        form = offices.check_office(**merged)
        offices.update_office(caller.tenant, office, form)
    except offices.OfficeNotFound as exc:
        raise ApiError(404, "not_found", exc.message) from None
    except FieldError as exc:
        _office_field_error(exc)
    caller.audit("api.office.update", office_id=office.id, changed=sorted(data))
    db.session.commit()
    db.session.refresh(office)
    return _json(office_json(office, offices.live_operator_count(caller.tenant, office)))


@bp.delete("/v1/offices/<office_id>")
def offices_delete(office_id: str) -> Response:
    """删除: with live operators, ``?operators=move`` (to the enterprise) or ``delete``;
    without a choice 409 and nothing changes."""
    caller = authenticate(WRITE)
    office = _office(caller, office_id)
    choice = request.args.get("operators", "")
    if choice not in ("", *offices.OPERATOR_CHOICES):
        raise ApiError(400, "invalid_query", MSG_OFFICE_CHOICE, "operators")
    try:
        after = offices.delete_office(caller.tenant, office, operators=choice)
    except offices.OfficeNotFound as exc:
        raise ApiError(404, "not_found", exc.message) from None
    except offices.OfficeHasOperators as exc:
        raise ApiError(409, "office_has_operators", exc.message, "operators") from None
    except FieldError as exc:
        _office_field_error(exc)
    caller.audit("api.office.delete", office_id=office.id, operators=choice or "none")
    db.session.commit()
    after()
    return Response(status=204)
