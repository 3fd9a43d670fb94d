"""SCIM 2.0 (RFC 7643/7644) for an enterprise's operators: /scim/v2/Users, /Groups.

An enterprise's identity system (Azure AD / Entra ID, Okta, a home-grown HR feed) provisions the
enterprise's 操作员 here with a ``scim`` token of a client bound to the enterprise. A SCIM User
is an ``Operator`` of the tenant, made and changed through the same service as the console
(``idp.console.operators``): the carrier check of name + phone (S12/S13), one enterprise or
office role per phone (S14), only phone and status changeable and soft delete (S15):

* ``userName`` is the mobile number (the login name of a person account), ``name.formatted``
  the real name, ``phoneNumbers`` the same mobile number, ``active`` 正常使用 / 停用;
* the department, category, role and remark are in the extension
  ``urn:ietf:params:scim:schemas:extension:shfund:2.0:Operator``;
* name, department, category, role and remark are immutable (RFC 7643 §2.2): a PUT or PATCH
  that would change them is ``400 mutability``; ``userName`` / ``phoneNumbers``, ``active``
  and ``externalId`` can be replaced (and ``externalId`` removed);
* DELETE is S15's soft delete; afterwards the User is gone for SCIM (404, RFC 7644 §3.6),
  while the console keeps the row with status 已删除;
* ``externalId`` (RFC 7643 §3.1) is the provisioning client's own id for the User: readWrite,
  caseExact, 1–255 printable characters, not unique; kept in ``Operator.external_id`` and
  filtered on in SQL over the tenant's rows (index ``ix_operator_tenant_external_id``);
* the answer to POST /Users says in the extension's ``initialPasswordSms`` whether the SMS
  with the initial password went out (``sent``), did not (``failed``: the operator exists;
  deleting and adding it again sends a new one) or was not needed (``none``: an existing
  account keeps its password).

Groups are read-only: the enterprise itself and each of its live 小区管理处, with the operators
of that department as members.

Filters (RFC 7644 §3.4.2.2) are parsed into a small tree and translated into SQL over the
tenant's rows — never evaluated in Python over the whole list, never string-built SQL. What
the translation does not know is ``400 invalidFilter``, never a 500.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, request

from idp import audit
from idp.accounts.models import Account
from idp.api.auth import SCIM, BearerError, Caller, authenticate
from idp.api.openapi import INITIAL_PASSWORD_SMS
from idp.api.views import send_initial_password_sms
from idp.console.models import Operator
from idp.console.operators import (
    MSG_ACCOUNT_DISABLED,
    MSG_PHONE_BOUND,
    MSG_PHONE_OTHER_ACCOUNT,
    OperatorNotFound,
    PhoneCheckFailed,
    add_operator,
    check_new,
    delete_operator,
    get_operator,
    update_operator,
)
from idp.console.tenant import MAX_ID
from idp.errors import FieldError
from idp.extensions import db
from idp.orgs.models import Organisation
from idp.validators import normalize_phone
from idp.web import SCIM_ERROR, strict_json

bp = Blueprint("scim", __name__, url_prefix="/scim/v2")

MEDIA_TYPE = "application/scim+json"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
EXT = "urn:ietf:params:scim:schemas:extension:shfund:2.0:Operator"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = SCIM_ERROR
SPC = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RESOURCE_TYPE = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"

MAX_RESULTS = 200  # ServiceProviderConfig filter.maxResults
MAX_FILTER_CHARS = 1000
MAX_FILTER_TOKENS = 200
MAX_FILTER_DEPTH = 20
MAX_VALUE_CHARS = 256
MAX_OPERATIONS = 50
MAX_EXTERNAL_ID = 255  # Operator.external_id is String(255)

MSG_FILTER = "不支持的过滤条件：{detail}"
MSG_JSON = "请求体应为 JSON 对象"
MSG_SCHEMAS = "schemas 应包含 {schema}"
MSG_NOT_FOUND = "资源不存在"
MSG_USERNAME = "userName（手机号码）必填"
MSG_NAME = "name.formatted（操作员姓名）必填"
MSG_PHONES = "phoneNumbers 中的手机号码应与 userName 一致"
MSG_ACTIVE = "active 应为 true 或 false"
MSG_TYPE = "{attr} 的类型不正确"
MSG_IMMUTABLE = "{attr} 不可修改（只能修改手机号码、状态和 externalId）"
MSG_REQUIRED = "{attr} 不能删除"
MSG_PATH = "不支持的 path：{path}"
MSG_OP = "op 应为 add、replace 或 remove"
MSG_OPERATIONS = "Operations 应为 1–50 个操作"
MSG_INDEX = "{param} 应为整数"
MSG_READ_ONLY = "Group 为只读资源"
MSG_EXTERNAL_ID = "externalId 应为 1–255 个可打印字符"

# Which service field an error is about, named as a SCIM attribute in ``detail``.
ATTRIBUTE_OF_FIELD = {"name": "name.formatted", "phone": "userName",
                      "department_id": f"{EXT}:departmentId", "category": f"{EXT}:category",
                      "role": f"{EXT}:role", "remark": f"{EXT}:remark", "status": "active"}


class ScimError(Exception):
    """RFC 7644 §3.12: an error response."""

    def __init__(self, status: int, detail: str, scim_type: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type


def scim_response(data: Any, status: int = 200) -> Response:
    response = Response(current_app.json.dumps(data), status=status, mimetype=MEDIA_TYPE)
    response.headers["Cache-Control"] = "no-store"
    return response


def _error_body(status: int, detail: str, scim_type: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [ERROR], "status": str(status), "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    return body


@bp.errorhandler(ScimError)
def _scim_error(exc: ScimError) -> Response:
    return scim_response(_error_body(exc.status, exc.detail, exc.scim_type), exc.status)


@bp.errorhandler(BearerError)
def _bearer_error(exc: BearerError) -> Response:
    response = scim_response(_error_body(exc.status, exc.message), exc.status)
    challenge = exc.www_authenticate()
    if challenge:
        response.headers["WWW-Authenticate"] = challenge
    return response


def _base() -> str:
    issuer: str = current_app.config["IDP"].issuer
    return issuer.rstrip("/") + "/scim/v2"


def _timestamp(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


# --- filters (RFC 7644 §3.4.2.2) ----------------------------------------------------------------

class FilterError(Exception):
    pass


@dataclass(frozen=True)
class AttrPath:
    """``[URI ":"] attr ["." sub]``, names lowercased (they are case-insensitive)."""

    uri: str | None
    name: str
    sub: str | None = None

    def text(self) -> str:
        return ".".join(p for p in (self.name, self.sub) if p)


@dataclass(frozen=True)
class Compare:
    path: AttrPath
    op: str
    value: Any = None


@dataclass(frozen=True)
class Logical:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Not:
    node: Node


@dataclass(frozen=True)
class ValuePath:
    """``attr[filter]``, optionally followed by ``.sub op value`` (as PATCH paths write it)."""

    path: AttrPath
    inner: Node
    then: Compare | None = None


Node = Compare | Logical | Not | ValuePath

OPERATORS = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "lt", "ge", "le", "pr"})
_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<punct>[()\[\]])
  | (?P<number>-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?(?![A-Za-z0-9_:.$-]))
  | (?P<sub>\.[A-Za-z][A-Za-z0-9_$-]*)
  | (?P<word>[A-Za-z][A-Za-z0-9_:.$-]*)
""", re.VERBOSE | re.ASCII)
_BAD_CHARS = frozenset({"Cc", "Cs", "Co", "Cn"})


def _clean_string(value: str) -> str:
    """A filter or body string fit for a query: no control characters, no lone surrogates."""
    if len(value) > MAX_VALUE_CHARS or any(unicodedata.category(c) in _BAD_CHARS
                                           for c in value):
        raise FilterError("字符串过长或包含控制字符")
    return value


def tokenize(text: str) -> list[tuple[str, str]]:
    if len(text) > MAX_FILTER_CHARS:
        raise FilterError("过滤条件过长")
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise FilterError(f"第 {position + 1} 个字符无法识别")
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append((kind, match.group()))
        position = match.end()
    if len(tokens) > MAX_FILTER_TOKENS:
        raise FilterError("过滤条件过长")
    return tokens


def parse_path(text: str) -> AttrPath:
    """``urn:…:User:name.formatted`` → (urn, name, formatted). A URN is everything up to the
    last colon (schema URNs contain dots: ``…:core:2.0:User``)."""
    uri: str | None = None
    rest = text
    if text.lower().startswith("urn:"):
        uri, _, rest = text.rpartition(":")
        uri = uri.lower()
    parts = rest.split(".")
    if not rest or len(parts) > 2 or not all(parts):
        raise FilterError(f"属性 {text[:64]} 格式不正确")
    return AttrPath(uri, parts[0].lower(), parts[1].lower() if len(parts) == 2 else None)


class _Parser:
    """Recursive descent over RFC 7644's filter grammar; ``not`` > ``and`` > ``or``."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.position = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.position] if self.position < len(self.tokens) else ("end", "")

    def take(self) -> tuple[str, str]:
        token = self.peek()
        self.position += 1
        return token

    def expect(self, text: str) -> None:
        kind, value = self.take()
        if kind != "punct" or value != text:
            raise FilterError(f"应为 {text}")

    def keyword(self, word: str) -> bool:
        kind, value = self.peek()
        return kind == "word" and value.lower() == word

    def parse(self) -> Node:
        node = self.or_expr(0)
        if self.position != len(self.tokens):
            raise FilterError(f"多余的内容：{self.peek()[1][:32]}")
        return node

    def or_expr(self, depth: int) -> Node:
        if depth > MAX_FILTER_DEPTH:
            raise FilterError("嵌套过深")
        node = self.and_expr(depth)
        while self.keyword("or"):
            self.take()
            node = Logical("or", node, self.and_expr(depth))
        return node

    def and_expr(self, depth: int) -> Node:
        node = self.unary(depth)
        while self.keyword("and"):
            self.take()
            node = Logical("and", node, self.unary(depth))
        return node

    def unary(self, depth: int) -> Node:
        kind, value = self.peek()
        if self.keyword("not"):
            self.take()
            self.expect("(")
            node = self.or_expr(depth + 1)
            self.expect(")")
            return Not(node)
        if value == "(":
            self.take()
            node = self.or_expr(depth + 1)
            self.expect(")")
            return node
        if kind == "word":
            return self.attr_expr(depth)
        raise FilterError("应为属性名")

    def attr_expr(self, depth: int) -> Node:
        path = parse_path(self.take()[1])
        if self.peek()[1] == "[":
            self.take()
            inner = self.or_expr(depth + 1)
            self.expect("]")
            then: Compare | None = None
            kind, value = self.peek()
            if kind == "sub":
                self.take()
                sub = AttrPath(path.uri, path.name, value[1:].lower())
                then = self.comparison(sub)
            return ValuePath(path, inner, then)
        return self.comparison(path)

    def comparison(self, path: AttrPath) -> Compare:
        kind, op = self.take()
        op = op.lower()
        if kind != "word" or op not in OPERATORS:
            raise FilterError(f"{path.text()} 后应为比较运算符")
        if op == "pr":
            return Compare(path, op)
        return Compare(path, op, self.value())

    def value(self) -> Any:
        kind, text = self.take()
        if kind == "string":
            try:
                decoded = json.loads(text)
            except ValueError:
                raise FilterError("字符串格式不正确") from None
            return _clean_string(decoded)
        if kind == "number":
            number = json.loads(text)
            if isinstance(number, float) and not abs(number) < 1e300:
                raise FilterError("数值超出范围")
            return number
        if kind == "word" and text.lower() in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text.lower()]
        raise FilterError("应为比较值（字符串、数字、true、false 或 null）")


def parse_filter(text: str) -> Node:
    try:
        return _Parser(tokenize(text)).parse()
    except FilterError as exc:
        raise ScimError(400, MSG_FILTER.format(detail=exc), "invalidFilter") from None


Condition = sa.ColumnElement[bool]
Resolver = Callable[[Compare], Condition]


def translate(node: Node, resolve: Resolver, scope: AttrPath | None = None) -> Condition:
    """The filter tree as one SQL condition; ``scope`` is the attribute of an ``attr[…]``."""
    if isinstance(node, Logical):
        left, right = translate(node.left, resolve, scope), translate(node.right, resolve, scope)
        return sa.and_(left, right) if node.op == "and" else sa.or_(left, right)
    if isinstance(node, Not):
        return sa.not_(translate(node.node, resolve, scope))
    if isinstance(node, ValuePath):
        if scope is not None:
            raise FilterError("不支持嵌套的 [ ]")
        inner = translate(node.inner, resolve, node.path)
        return sa.and_(inner, resolve(node.then)) if node.then is not None else inner
    if scope is not None:
        if node.path.uri is not None or node.path.sub is not None:
            raise FilterError("[ ] 中应为子属性")
        node = Compare(AttrPath(scope.uri, scope.name, node.path.name), node.op, node.value)
    return resolve(node)


def filter_condition(text: str, resolve: Resolver) -> Condition:
    node = parse_filter(text)
    try:
        return translate(node, resolve)
    except FilterError as exc:
        raise ScimError(400, MSG_FILTER.format(detail=exc), "invalidFilter") from None


def _like(value: str, op: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return {"co": f"%{escaped}%", "sw": f"{escaped}%", "ew": f"%{escaped}"}[op]


def string_condition(column: Any, cmp: Compare, *, fold: bool = False,
                     normalize: Callable[[str], str] | None = None) -> Condition:
    """eq ne co sw ew pr on a text column (``fold``: case-insensitive, RFC 7643 caseExact
    false). gt/ge/lt/le on text are not offered: orders differ between databases."""
    if cmp.op == "pr":
        return sa.and_(column.is_not(None), column != "")
    if cmp.value is None and cmp.op in ("eq", "ne"):
        present = sa.and_(column.is_not(None), column != "")
        return sa.not_(present) if cmp.op == "eq" else present
    if not isinstance(cmp.value, str):
        raise FilterError(f"{cmp.path.text()} 应与字符串比较")
    if cmp.op not in ("eq", "ne", "co", "sw", "ew"):
        raise FilterError(f"{cmp.path.text()} 不支持 {cmp.op}")
    value = cmp.value
    if normalize is not None and cmp.op in ("eq", "ne"):
        value = normalize(value)
    target = sa.func.lower(column) if fold else column
    if fold:
        value = value.lower()
    if cmp.op == "eq":
        return sa.and_(column.is_not(None), target == value)
    if cmp.op == "ne":
        return sa.or_(column.is_(None), target != value)
    return sa.and_(column.is_not(None), target.like(_like(value, cmp.op), escape="\\"))


def bool_condition(condition: Condition, cmp: Compare) -> Condition:
    if cmp.op == "pr":
        return sa.true()
    if cmp.op not in ("eq", "ne") or not isinstance(cmp.value, bool):
        raise FilterError(f"{cmp.path.text()} 应以 eq/ne 与 true 或 false 比较")
    return condition if cmp.value == (cmp.op == "eq") else sa.not_(condition)


def constant_condition(actual: str | bool, cmp: Compare) -> Condition:
    """An attribute with one value for every resource (phoneNumbers.type is "mobile")."""
    if cmp.op == "pr":
        return sa.true()
    if isinstance(actual, bool):
        return bool_condition(sa.true() if actual else sa.false(), cmp)
    if not isinstance(cmp.value, str) or cmp.op not in ("eq", "ne", "co", "sw", "ew"):
        raise FilterError(f"{cmp.path.text()} 应与字符串比较")
    value, text = cmp.value.lower(), actual.lower()
    result = {"eq": text == value, "ne": text != value, "co": value in text,
              "sw": text.startswith(value), "ew": text.endswith(value)}[cmp.op]
    return sa.true() if result else sa.false()


def id_condition(column: Any, cmp: Compare) -> Condition:
    """``id`` (and other references) are strings of our integer ids."""
    if cmp.op == "pr":
        return sa.true()
    if cmp.op not in ("eq", "ne") or not isinstance(cmp.value, str):
        raise FilterError(f"{cmp.path.text()} 应以 eq/ne 与字符串比较")
    text = cmp.value.strip()
    matches: Condition = (column == int(text)
                          if text.isascii() and text.isdigit() and len(text) <= 10
                          and 0 < int(text) <= MAX_ID else sa.false())
    return matches if cmp.op == "eq" else sa.not_(matches)


def time_condition(column: Any, cmp: Compare) -> Condition:
    if cmp.op == "pr":
        return sa.true()
    ops = {"eq": column.__eq__, "ne": column.__ne__, "gt": column.__gt__,
           "ge": column.__ge__, "lt": column.__lt__, "le": column.__le__}
    if cmp.op not in ops or not isinstance(cmp.value, str):
        raise FilterError(f"{cmp.path.text()} 应与日期时间字符串比较")
    try:
        moment = datetime.fromisoformat(cmp.value)
    except ValueError:
        raise FilterError(f"{cmp.path.text()} 的日期时间格式不正确") from None
    if moment.tzinfo is None:
        raise FilterError(f"{cmp.path.text()} 的日期时间应带时区（如 Z）")
    result: Condition = ops[cmp.op](moment)
    return result


def _namespace(path: AttrPath, core: str) -> str:
    """"core" for the resource's own schema (with or without its URN), "ext" for ours."""
    if path.uri is None or path.uri == core.lower():
        return "core"
    if path.uri == EXT.lower():
        return "ext"
    raise FilterError(f"不支持的 schema {path.uri[:80]}")


def _phone_or_raw(value: str) -> str:
    try:
        return normalize_phone(value)
    except FieldError:
        return value


def user_condition(cmp: Compare) -> Condition:
    """Users' filterable attributes, as conditions over operator ⋈ account."""
    path = cmp.path
    where = (_namespace(path, USER), path.name, path.sub)
    if where in (("core", "username", None), ("core", "phonenumbers", "value")):
        return string_condition(Account.phone, cmp, normalize=_phone_or_raw)
    if where in (("core", "name", "formatted"), ("core", "displayname", None)):
        return string_condition(Operator.name, cmp, fold=True)
    if where == ("core", "id", None):
        return id_condition(Operator.id, cmp)
    if where == ("core", "active", None):
        return bool_condition(Operator.status == "active", cmp)
    if where == ("core", "externalid", None):
        return string_condition(Operator.external_id, cmp)  # caseExact (RFC 7643 §3.1)
    if where == ("core", "phonenumbers", "type"):
        return constant_condition("mobile", cmp)
    if where == ("core", "phonenumbers", "primary"):
        return constant_condition(True, cmp)
    if where in (("core", "phonenumbers", None), ("core", "name", None)) and cmp.op == "pr":
        return sa.true()
    if where == ("core", "groups", "value"):
        return id_condition(Operator.department_id, cmp)
    if where == ("core", "meta", "created"):
        return time_condition(Operator.created_at, cmp)
    if where == ("core", "meta", "lastmodified"):
        return time_condition(Operator.updated_at, cmp)
    if where == ("core", "meta", "resourcetype"):
        return constant_condition("User", cmp)
    if where == ("ext", "departmentid", None):
        return id_condition(Operator.department_id, cmp)
    if where in (("ext", "category", None), ("ext", "role", None), ("ext", "status", None)):
        return string_condition(getattr(Operator, path.name), cmp)
    if where == ("ext", "remark", None):
        return string_condition(Operator.remark, cmp, fold=True)
    raise FilterError(f"不支持按 {path.text()} 过滤")


def group_condition(cmp: Compare) -> Condition:
    path = cmp.path
    where = (_namespace(path, GROUP), path.name, path.sub)
    if where == ("core", "displayname", None):
        return string_condition(Organisation.name, cmp, fold=True)
    if where == ("core", "id", None):
        return id_condition(Organisation.id, cmp)
    if where == ("core", "externalid", None):
        if cmp.op == "ne":
            return sa.true()
        string_condition(Organisation.name, cmp)
        return sa.false()
    if where in (("core", "members", "value"), ("core", "members", None)):
        if cmp.op == "pr" or where[2] is None:
            if cmp.op != "pr":
                raise FilterError("members 应以 members.value 比较")
            member: Condition = sa.true()
        else:
            member = id_condition(Operator.id, cmp)
        return sa.exists(sa.select(Operator.id).where(
            Operator.department_id == Organisation.id, Operator.status != "deleted", member))
    if where == ("core", "meta", "created"):
        return time_condition(Organisation.created_at, cmp)
    if where == ("core", "meta", "lastmodified"):
        return time_condition(Organisation.updated_at, cmp)
    if where == ("core", "meta", "resourcetype"):
        return constant_condition("Group", cmp)
    raise FilterError(f"不支持按 {path.text()} 过滤")


# --- paging, projection ------------------------------------------------------------------------

def _int_param(name: str, default: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw.strip() == "":
        return default
    text = raw.strip()
    digits = text[1:] if text[:1] in "+-" else text
    if not digits.isascii() or not digits.isdigit() or len(digits) > 12:
        raise ScimError(400, MSG_INDEX.format(param=name), "invalidValue")
    return int(text)


def paging() -> tuple[int, int]:
    """RFC 7644 §3.4.2.4: startIndex < 1 is 1; a negative count is 0; at most MAX_RESULTS."""
    start = min(max(1, _int_param("startIndex", 1)), MAX_ID)
    count = min(max(0, _int_param("count", MAX_RESULTS)), MAX_RESULTS)
    return start, count


def _names(param: str) -> set[str]:
    """attributes / excludedAttributes as top-level names (lowercased; the extension by URN)."""
    names: set[str] = set()
    for item in (request.args.get(param) or "").split(","):
        text = item.strip().lower()
        if not text:
            continue
        if text == EXT.lower() or text.startswith(EXT.lower() + ":"):
            names.add(EXT.lower())
            continue
        for core in (USER.lower(), GROUP.lower()):
            if text.startswith(core + ":"):
                text = text[len(core) + 1:]
        names.add(text.split(".")[0])
    return names


def wanted(attribute: str) -> bool:
    """Whether an attribute is to be returned (RFC 7644 §3.4.2.5)."""
    key = attribute.lower()
    included, excluded = _names("attributes"), _names("excludedAttributes")
    if key in ("id", "schemas"):
        return True
    if included:
        return key in included
    return key not in excluded


def project(resource: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in resource.items() if wanted(key)}


def list_response(resources: list[dict[str, Any]], total: int, start: int) -> Response:
    return scim_response({"schemas": [LIST], "totalResults": total, "startIndex": start,
                          "itemsPerPage": len(resources), "Resources": resources})


# --- bodies ------------------------------------------------------------------------------------

def json_object() -> dict[str, Any]:
    """The request body (application/scim+json or application/json) as a JSON object."""
    try:
        data = strict_json(request.get_data(cache=False))
    except (ValueError, RecursionError):
        raise ScimError(400, MSG_JSON, "invalidSyntax") from None
    if not isinstance(data, dict):
        raise ScimError(400, MSG_JSON, "invalidSyntax")
    return data


def _require_schema(data: Mapping[str, Any], schema: str) -> None:
    schemas = _get(data, "schemas")
    if not isinstance(schemas, list) or schema.lower() not in {
            s.lower() for s in schemas if isinstance(s, str)}:
        raise ScimError(400, MSG_SCHEMAS.format(schema=schema), "invalidSyntax")


def _get(data: Mapping[str, Any], key: str) -> Any:
    """Attribute names are case-insensitive (RFC 7643 §2.1)."""
    lowered = key.lower()
    for name, value in data.items():
        if name.lower() == lowered:
            return value
    return None


def _text(value: Any, attr: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ScimError(400, MSG_TYPE.format(attr=attr), "invalidValue")
    return value


def _active(value: Any) -> bool:
    """A boolean; also "True"/"False" as strings, which Azure AD's PATCH sends."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ScimError(400, MSG_ACTIVE, "invalidValue")


def _mobile_of(phones: Any) -> str | None:
    """The mobile number of a ``phoneNumbers`` value: type mobile, else primary, else first."""
    if phones is None:
        return None
    if isinstance(phones, dict):
        phones = [phones]
    if not isinstance(phones, list) or not all(isinstance(p, dict) for p in phones):
        raise ScimError(400, MSG_TYPE.format(attr="phoneNumbers"), "invalidValue")
    if not phones:
        return None
    chosen = (next((p for p in phones if _get(p, "type") == "mobile"), None)
              or next((p for p in phones if _get(p, "primary") is True), None) or phones[0])
    return _text(_get(chosen, "value"), "phoneNumbers.value")


def _same_phone(a: str, b: str | None) -> bool:
    return b is not None and _phone_or_raw(a) == _phone_or_raw(b)


def _external_id(value: Any) -> str | None:
    """RFC 7643 §3.1: the client's own identifier, kept exactly as given (caseExact, so no
    trimming or folding); null is "unassigned" (§2.5) and clears it. Anything else than 1–255
    printable characters is refused before anything is written: control characters and lone
    surrogates have no place in an id, and the column holds 255."""
    if value is None:
        return None
    if (not isinstance(value, str) or not 0 < len(value) <= MAX_EXTERNAL_ID
            or not value.isprintable()):
        raise ScimError(400, MSG_EXTERNAL_ID, "invalidValue")
    return value


@dataclass(frozen=True)
class UserInput:
    """A User body (POST, PUT) in the service's terms; None where it said nothing."""

    user_name: str
    name: str | None
    active: bool | None
    department_id: Any
    category: str | None
    role: str | None
    remark: str | None
    external_id: str | None = None
    has_external_id: bool = False  # the body named externalId (null included: clear it)


def user_input(data: Mapping[str, Any]) -> UserInput:
    _require_schema(data, USER)
    user_name = _text(_get(data, "userName"), "userName")
    if not user_name:
        raise ScimError(400, MSG_USERNAME, "invalidValue")
    name_value = _get(data, "name")
    name: str | None = None
    if name_value is not None:
        if not isinstance(name_value, dict):
            raise ScimError(400, MSG_TYPE.format(attr="name"), "invalidValue")
        name = _text(_get(name_value, "formatted"), "name.formatted")
        if not name:
            family = _text(_get(name_value, "familyName"), "name.familyName") or ""
            given = _text(_get(name_value, "givenName"), "name.givenName") or ""
            name = (family + given) or None  # 姓 then 名, as Chinese names are written
    name = name or _text(_get(data, "displayName"), "displayName")
    mobile = _mobile_of(_get(data, "phoneNumbers"))
    if mobile is not None and not _same_phone(user_name, mobile):
        raise ScimError(400, MSG_PHONES, "invalidValue")
    active = _get(data, "active")
    has_external_id = any(key.lower() == "externalid" for key in data)
    external_id = _external_id(_get(data, "externalId"))
    extension = _get(data, EXT)
    if extension is not None and not isinstance(extension, dict):
        raise ScimError(400, MSG_TYPE.format(attr=EXT), "invalidValue")
    extension = extension or {}
    department = _get(extension, "departmentId")
    if department is not None and (isinstance(department, bool)
                                   or not isinstance(department, str | int)):
        raise ScimError(400, MSG_TYPE.format(attr=f"{EXT}:departmentId"), "invalidValue")
    return UserInput(
        user_name=user_name, name=name, active=None if active is None else _active(active),
        department_id=department,
        category=_text(_get(extension, "category"), f"{EXT}:category"),
        role=_text(_get(extension, "role"), f"{EXT}:role"),
        remark=_text(_get(extension, "remark"), f"{EXT}:remark"),
        external_id=external_id, has_external_id=has_external_id)


# --- Users -------------------------------------------------------------------------------------

def user_json(operator: Operator) -> dict[str, Any]:
    location = f"{_base()}/Users/{operator.id}"
    phone = operator.account.phone or ""
    department = operator.department
    resource: dict[str, Any] = {"schemas": [USER, EXT], "id": str(operator.id)}
    if operator.external_id:  # RFC 7643 §2.5: an unassigned attribute is left out
        resource["externalId"] = operator.external_id
    return resource | {
        "userName": phone,
        "name": {"formatted": operator.name},
        "displayName": operator.name,
        "active": operator.status == "active",
        "phoneNumbers": [{"value": phone, "type": "mobile", "primary": True}],
        "groups": [{"value": str(department.id), "display": department.name,
                    "$ref": f"{_base()}/Groups/{department.id}", "type": "direct"}],
        EXT: {"departmentId": str(department.id), "category": operator.category,
              "role": operator.role, "remark": operator.remark or "",
              "status": operator.status},
        "meta": {"resourceType": "User", "created": _timestamp(operator.created_at),
                 "lastModified": _timestamp(operator.updated_at), "location": location},
    }


def _user(caller: Caller, user_id: str) -> Operator:
    """The tenant's operator, deleted ones excepted (RFC 7644 §3.6: a deleted resource is 404)."""
    try:
        operator = get_operator(caller.tenant, user_id)
    except OperatorNotFound:
        raise ScimError(404, MSG_NOT_FOUND) from None
    if operator.status == "deleted":
        raise ScimError(404, MSG_NOT_FOUND)
    return operator


def _service_error(exc: FieldError) -> NoReturn:
    attr = ATTRIBUTE_OF_FIELD.get(exc.field, exc.field)
    if exc.message in (MSG_PHONE_BOUND, MSG_PHONE_OTHER_ACCOUNT, MSG_ACCOUNT_DISABLED):
        raise ScimError(409, exc.message, "uniqueness")
    raise ScimError(400, f"{attr}: {exc.message}", "invalidValue")


def _phone_check_failed(caller: Caller, exc: PhoneCheckFailed, event: str) -> NoReturn:
    caller.audit(event, audit.FAILURE, reason="phone_check",
                 outcome=str(exc.verification.outcome))
    db.session.commit()  # the carrier check's audit events; nothing else was written
    raise ScimError(400, f"userName: {exc.message}", "invalidValue")


def _users_query(caller: Caller) -> sa.Select[Operator]:
    return (sa.select(Operator).join(Account, Account.id == Operator.account_id)
            .where(Operator.enterprise_id == caller.tenant.id, Operator.status != "deleted"))


@bp.get("/Users")
def users_list() -> Response:
    """RFC 7644 §3.4.2: filter, startIndex/count, attributes/excludedAttributes."""
    caller = authenticate(SCIM)
    query = _users_query(caller)
    raw = request.args.get("filter")
    if raw is not None and raw.strip():
        query = query.where(filter_condition(raw, user_condition))
    start, count = paging()
    total = db.session.scalar(sa.select(sa.func.count()).select_from(query.subquery())) or 0
    rows = list(db.session.scalars(
        query.order_by(Operator.id).offset(start - 1).limit(count))) if count else []
    return list_response([project(user_json(o)) for o in rows], total, start)


@bp.get("/Users/<user_id>")
def users_get(user_id: str) -> Response:
    caller = authenticate(SCIM)
    return scim_response(project(user_json(_user(caller, user_id))))


@bp.post("/Users")
def users_create() -> Response:
    """RFC 7644 §3.3: S12's 增加 — carrier check (S13), S14, initial password by SMS. The
    externalId is written in the same transaction as the operator; whether the SMS went out
    is said in the answer (``initialPasswordSms``): a 201 with ``failed`` tells the client
    that the person has an account but no way yet to learn its password."""
    caller = authenticate(SCIM)
    given = user_input(json_object())
    if not given.name:
        raise ScimError(400, MSG_NAME, "invalidValue")
    department = given.department_id if given.department_id is not None else caller.tenant.id
    after: Callable[[], None] | None = None
    try:
        new = check_new(caller.tenant, name=given.name, department_id=department,
                        category=given.category, phone=given.user_name, role=given.role,
                        remark=given.remark)
        operator, initial = add_operator(caller.tenant, new)
        operator.external_id = given.external_id
        if given.active is False:
            after = update_operator(caller.tenant, operator, status="disabled")
    except PhoneCheckFailed as exc:
        _phone_check_failed(caller, exc, "scim.user.create")
    except FieldError as exc:
        if exc.message == MSG_PHONE_BOUND:
            caller.audit("scim.user.create", audit.FAILURE, reason="phone_bound")
            db.session.commit()
        _service_error(exc)
    caller.audit("scim.user.create", operator_id=operator.id,
                 department_id=operator.department_id,
                 external_id=operator.external_id is not None)  # whether, never the value
    db.session.commit()
    if after is not None:
        after()
    sms = send_initial_password_sms(caller, operator, initial)
    db.session.refresh(operator)
    resource = user_json(operator)
    resource[EXT]["initialPasswordSms"] = sms
    response = scim_response(project(resource), 201)
    response.headers["Location"] = resource["meta"]["location"]
    return response


def _immutable(attr: str) -> NoReturn:
    raise ScimError(400, MSG_IMMUTABLE.format(attr=attr), "mutability")


def _apply_change(caller: Caller, operator: Operator, *, phone: str | None,
                  active: bool | None, event: str, external_id: str | None = None,
                  set_external_id: bool = False) -> Response:
    """Phone and status through S15's 修改, and the externalId (``set_external_id``: the
    request named it; None clears it). Nothing to change answers the resource as is. The
    externalId is set only once the service has accepted the rest: a refused phone commits
    its audit events, and must not commit a half-applied request with them."""
    new_phone = phone if phone is not None and not _same_phone(
        phone, operator.account.phone) else None
    new_status = None
    if active is not None and active != (operator.status == "active"):
        new_status = "active" if active else "disabled"
    new_external_id = set_external_id and external_id != operator.external_id
    if new_phone is None and new_status is None and not new_external_id:
        return scim_response(project(user_json(operator)))
    after: Callable[[], None] | None = None
    if new_phone is not None or new_status is not None:
        try:
            after = update_operator(caller.tenant, operator, phone=new_phone,
                                    status=new_status)
        except PhoneCheckFailed as exc:
            _phone_check_failed(caller, exc, event)
        except FieldError as exc:
            _service_error(exc)
    if new_external_id:
        operator.external_id = external_id
    changed = [k for k, v in (("phone", new_phone), ("status", new_status),
                              ("external_id", new_external_id)) if v]
    caller.audit(event, operator_id=operator.id, changed=changed)  # names, never values
    db.session.commit()
    if after is not None:
        after()
    db.session.refresh(operator)
    return scim_response(project(user_json(operator)))


@bp.put("/Users/<user_id>")
def users_replace(user_id: str) -> Response:
    """RFC 7644 §3.5.1. Only userName/phoneNumbers, active and externalId may differ from
    what is kept. An externalId left out is kept (§3.5.1 lets the provider choose: clearing it
    would lose it for a client that never sends it back); ``"externalId": null`` clears it."""
    caller = authenticate(SCIM)
    operator = _user(caller, user_id)
    given = user_input(json_object())
    if given.name is not None and given.name.strip() != operator.name:
        _immutable("name.formatted")
    if given.department_id is not None and str(given.department_id).strip() != str(
            operator.department_id):
        _immutable(f"{EXT}:departmentId")
    for attr, kept in (("category", operator.category), ("role", operator.role),
                       ("remark", operator.remark or "")):
        value = getattr(given, attr)
        if value is not None and value.strip() != kept:
            _immutable(f"{EXT}:{attr}")
    return _apply_change(caller, operator, phone=given.user_name, active=given.active,
                         event="scim.user.replace", external_id=given.external_id,
                         set_external_id=given.has_external_id)


_PHONE_VALUE = re.compile(
    r'phonenumbers\[\s*type\s+eq\s+"mobile"\s*\](?:\.value)?', re.IGNORECASE | re.ASCII)


@dataclass
class _Changes:
    phone: str | None = None
    active: bool | None = None
    external_id: str | None = None
    set_external_id: bool = False


def _patch_value(operator: Operator, changes: _Changes, attr: str, value: Any) -> None:
    """``replace``/``add`` of one attribute (a lowercased path without the core URN)."""
    if attr == "active":
        changes.active = _active(value)
    elif attr in ("username", "phonenumbers.value", "phonenumbers"):
        phone = (_text(value, "userName") if attr != "phonenumbers" else _mobile_of(value))
        if not phone:
            raise ScimError(400, MSG_USERNAME, "invalidValue")
        changes.phone = phone
    elif attr in ("name.formatted", "displayname"):
        if _text(value, attr) != operator.name:
            _immutable("name.formatted")
    elif attr == "name":
        if not isinstance(value, dict):
            raise ScimError(400, MSG_TYPE.format(attr="name"), "invalidValue")
        formatted = _get(value, "formatted")
        if formatted is not None and formatted != operator.name:
            _immutable("name.formatted")
    elif attr == "externalid":
        changes.external_id = _external_id(value)  # null: unassigned (RFC 7643 §2.5)
        changes.set_external_id = True
    elif attr.startswith(EXT.lower()):
        kept = {"departmentid": str(operator.department_id), "category": operator.category,
                "role": operator.role, "remark": operator.remark or ""}
        rest = attr[len(EXT):].lstrip(":")
        values = value if not rest else {rest: value}
        if not isinstance(values, dict):
            raise ScimError(400, MSG_TYPE.format(attr=EXT), "invalidValue")
        for key, item in values.items():
            name = str(key).lower()
            if name == "initialpasswordsms":  # readOnly: the answer to POST says it
                _immutable(f"{EXT}:{key}")
            if name not in kept:
                raise ScimError(400, MSG_PATH.format(path=f"{EXT}:{str(key)[:40]}"),
                                "invalidPath")
            if item is not None and str(item).strip() != kept[name]:
                _immutable(f"{EXT}:{key}")
    else:
        raise ScimError(400, MSG_PATH.format(path=attr[:80]), "invalidPath")


def _patch_path(raw: Any) -> str | None:
    """The target of an operation, lowercased, the core URN removed; the mobile value path
    (``phoneNumbers[type eq "mobile"].value``) as ``phonenumbers.value``."""
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.strip() or len(raw) > 200:
        raise ScimError(400, MSG_PATH.format(path=str(raw)[:80]), "invalidPath")
    text = raw.strip()
    if text.lower().startswith(USER.lower() + ":"):
        text = text[len(USER) + 1:]
    if _PHONE_VALUE.fullmatch(text):
        return "phonenumbers.value"
    if "[" in text or not text.isprintable():
        raise ScimError(400, MSG_PATH.format(path=text[:80] if text.isprintable() else ""),
                        "invalidPath")
    return text.lower()


@bp.patch("/Users/<user_id>")
def users_patch(user_id: str) -> Response:
    """RFC 7644 §3.5.2: Operations of add/replace (active, userName, phoneNumbers, externalId)
    and remove (externalId only; the others are required). Immutable attributes may be
    "changed" to the same value. The operations apply in order, all or nothing."""
    caller = authenticate(SCIM)
    operator = _user(caller, user_id)
    data = json_object()
    _require_schema(data, PATCH_OP)
    operations = _get(data, "Operations")
    if not isinstance(operations, list) or not 0 < len(operations) <= MAX_OPERATIONS:
        raise ScimError(400, MSG_OPERATIONS, "invalidSyntax")
    changes = _Changes()
    for operation in operations:
        if not isinstance(operation, dict):
            raise ScimError(400, MSG_OPERATIONS, "invalidSyntax")
        op = _get(operation, "op")
        op = op.lower() if isinstance(op, str) else None
        if op not in ("add", "replace", "remove"):
            raise ScimError(400, MSG_OP, "invalidSyntax")
        path = _patch_path(_get(operation, "path"))
        value = _get(operation, "value")
        if op == "remove":
            if path is None:
                raise ScimError(400, MSG_PATH.format(path=""), "noTarget")
            if path == "externalid":  # readWrite and optional: removing clears it
                changes.external_id, changes.set_external_id = None, True
                continue
            _immutable_or_required(path)
        if path is None:
            if not isinstance(value, dict):
                raise ScimError(400, MSG_TYPE.format(attr="value"), "invalidValue")
            for key, item in value.items():
                attr = str(key)
                if attr.lower().startswith(USER.lower() + ":"):
                    attr = attr[len(USER) + 1:]
                if attr.lower() == "schemas":
                    continue
                _patch_value(operator, changes, attr.lower(), item)
        else:
            _patch_value(operator, changes, path, value)
    return _apply_change(caller, operator, phone=changes.phone, active=changes.active,
                         event="scim.user.patch", external_id=changes.external_id,
                         set_external_id=changes.set_external_id)


def _immutable_or_required(path: str) -> NoReturn:
    if path in ("active", "username", "phonenumbers", "phonenumbers.value"):
        raise ScimError(400, MSG_REQUIRED.format(attr=path), "mutability")
    if path.split(".")[0] in ("name", "displayname") or path.startswith(EXT.lower()):
        _immutable(path)
    raise ScimError(400, MSG_PATH.format(path=path[:80]), "invalidPath")


@bp.delete("/Users/<user_id>")
def users_delete(user_id: str) -> Response:
    """RFC 7644 §3.6 as S15's 删除: the account is unusable, the rows and the trail stay."""
    caller = authenticate(SCIM)
    operator = _user(caller, user_id)
    try:
        after = delete_operator(caller.tenant, operator)
    except FieldError as exc:
        _service_error(exc)
    caller.audit("scim.user.delete", operator_id=operator.id)
    db.session.commit()
    after()
    response = Response(status=204)
    response.headers["Cache-Control"] = "no-store"
    return response


# --- Groups ------------------------------------------------------------------------------------

def group_json(org: Organisation, members: list[Operator] | None) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "schemas": [GROUP],
        "id": str(org.id),
        "displayName": org.name,
    }
    if members is not None:
        resource["members"] = [{"value": str(o.id), "display": o.name, "type": "User",
                                "$ref": f"{_base()}/Users/{o.id}"} for o in members]
    resource["meta"] = {"resourceType": "Group", "created": _timestamp(org.created_at),
                        "lastModified": _timestamp(org.updated_at),
                        "location": f"{_base()}/Groups/{org.id}"}
    return resource


def _members(caller: Caller, groups: Iterable[Organisation]) -> dict[int, list[Operator]]:
    ids = [g.id for g in groups]
    found: dict[int, list[Operator]] = {i: [] for i in ids}
    if not ids or not wanted("members"):
        return found
    for operator in db.session.scalars(
            sa.select(Operator).where(Operator.enterprise_id == caller.tenant.id,
                                      Operator.department_id.in_(ids),
                                      Operator.status != "deleted").order_by(Operator.id)):
        found[operator.department_id].append(operator)
    return found


def _groups(caller: Caller, groups: list[Organisation]) -> list[dict[str, Any]]:
    members = _members(caller, groups)
    show = wanted("members")
    return [project(group_json(g, members[g.id] if show else None)) for g in groups]


@bp.get("/Groups")
def groups_list() -> Response:
    caller = authenticate(SCIM)
    query = caller.tenant.departments_query()
    raw = request.args.get("filter")
    if raw is not None and raw.strip():
        query = query.where(filter_condition(raw, group_condition))
    start, count = paging()
    total = db.session.scalar(sa.select(sa.func.count()).select_from(
        query.order_by(None).subquery())) or 0
    rows = list(db.session.scalars(query.offset(start - 1).limit(count))) if count else []
    return list_response(_groups(caller, rows), total, start)


@bp.get("/Groups/<group_id>")
def groups_get(group_id: str) -> Response:
    caller = authenticate(SCIM)
    group = caller.tenant.department(group_id)
    if group is None:
        raise ScimError(404, MSG_NOT_FOUND)
    return scim_response(_groups(caller, [group])[0])


@bp.route("/Groups", methods=["POST", "PUT", "PATCH", "DELETE"])
@bp.route("/Groups/<group_id>", methods=["POST", "PUT", "PATCH", "DELETE"])
def groups_read_only(group_id: str | None = None) -> Response:
    """Departments are managed in the console (offices: /api/v1/offices), not by SCIM."""
    authenticate(SCIM)
    response = scim_response(_error_body(405, MSG_READ_ONLY), 405)
    response.headers["Allow"] = "GET, HEAD"
    return response


# --- discovery (RFC 7644 §4) ---------------------------------------------------------------------

def _attribute(name: str, type_: str = "string", *, description: str,
               mutability: str = "readWrite", required: bool = False,
               returned: str = "default", uniqueness: str = "none", multi: bool = False,
               case_exact: bool = False, sub: list[dict[str, Any]] | None = None,
               canonical: list[str] | None = None) -> dict[str, Any]:
    attribute: dict[str, Any] = {
        "name": name, "type": type_, "multiValued": multi, "description": description,
        "required": required, "mutability": mutability, "returned": returned,
    }
    if type_ in ("string", "reference"):
        attribute["caseExact"] = case_exact
        attribute["uniqueness"] = uniqueness
    if canonical:
        attribute["canonicalValues"] = canonical
    if sub is not None:
        attribute["subAttributes"] = sub
    return attribute


def _schemas() -> list[dict[str, Any]]:
    user = {
        "id": USER, "name": "User", "description": "操作员（一个企业或小区管理处的人员账号）",
        "attributes": [
            # A common attribute (RFC 7643 §3.1), listed so that a client reading /Schemas
            # learns that it is kept, case-exact and writable (§7 allows listing it).
            _attribute("externalId", description="预配客户端自己的标识（1–255个字符，区分大小写）",
                       case_exact=True),
            _attribute("userName", description="手机号码（登录名）", required=True,
                       uniqueness="server"),
            _attribute("name", "complex", description="姓名", mutability="immutable",
                       sub=[_attribute("formatted", description="操作员姓名（身份证上的姓名）",
                                       mutability="immutable")]),
            _attribute("displayName", description="操作员姓名", mutability="readOnly"),
            _attribute("active", "boolean", description="正常使用（true）/ 停用（false）"),
            _attribute("phoneNumbers", "complex", multi=True,
                       description="手机号码，与 userName 相同",
                       sub=[_attribute("value", description="手机号码"),
                            _attribute("type", description="类型", canonical=["mobile"]),
                            _attribute("primary", "boolean", description="主号码")]),
            _attribute("groups", "complex", multi=True, mutability="readOnly",
                       description="所属部门（本企业或小区管理处）",
                       sub=[_attribute("value", description="部门 ID", mutability="readOnly"),
                            _attribute("display", description="部门名称",
                                       mutability="readOnly"),
                            _attribute("$ref", "reference", description="部门 URI",
                                       mutability="readOnly")]),
        ],
        "meta": {"resourceType": "Schema", "location": f"{_base()}/Schemas/{USER}"},
    }
    group = {
        "id": GROUP, "name": "Group", "description": "部门：本企业或其小区管理处（只读）",
        "attributes": [
            _attribute("displayName", description="部门名称", mutability="readOnly",
                       required=True),
            _attribute("members", "complex", multi=True, mutability="readOnly",
                       description="该部门的操作员",
                       sub=[_attribute("value", description="操作员 ID", mutability="readOnly"),
                            _attribute("display", description="操作员姓名",
                                       mutability="readOnly"),
                            _attribute("$ref", "reference", description="操作员 URI",
                                       mutability="readOnly")]),
        ],
        "meta": {"resourceType": "Schema", "location": f"{_base()}/Schemas/{GROUP}"},
    }
    extension = {
        "id": EXT, "name": "Operator",
        "description": "维修资金系统操作员的部门、类别、角色与备注，及创建时初始密码短信的结果",
        "attributes": [
            _attribute("departmentId", description="部门 ID（本企业或其小区管理处；默认本企业）",
                       mutability="immutable"),
            _attribute("category", description="部门类别", mutability="immutable",
                       canonical=["enterprise", "office"]),
            _attribute("role", description="角色", mutability="immutable",
                       canonical=["operator", "office"]),
            _attribute("remark", description="备注（最多200个字符）", mutability="immutable"),
            _attribute("status", description="操作员状态", mutability="readOnly",
                       canonical=["active", "disabled"]),
            _attribute("initialPasswordSms", mutability="readOnly",
                       description="仅在创建（POST /Users）的响应中：初始密码短信 sent 已发送、"
                                   "failed 发送失败（操作员已增加；可删除后重新增加以重新发送）、"
                                   "none 未生成初始密码（已有账号，使用原密码登录）",
                       canonical=list(INITIAL_PASSWORD_SMS)),
        ],
        "meta": {"resourceType": "Schema", "location": f"{_base()}/Schemas/{EXT}"},
    }
    return [{"schemas": [SCHEMA], **s} for s in (user, group, extension)]


def _resource_types() -> list[dict[str, Any]]:
    return [
        {"schemas": [RESOURCE_TYPE], "id": "User", "name": "User", "endpoint": "/Users",
         "description": "操作员", "schema": USER,
         "schemaExtensions": [{"schema": EXT, "required": False}],
         "meta": {"resourceType": "ResourceType", "location": f"{_base()}/ResourceTypes/User"}},
        {"schemas": [RESOURCE_TYPE], "id": "Group", "name": "Group", "endpoint": "/Groups",
         "description": "部门（本企业及其小区管理处）", "schema": GROUP,
         "meta": {"resourceType": "ResourceType",
                  "location": f"{_base()}/ResourceTypes/Group"}},
    ]


@bp.get("/ServiceProviderConfig")
def service_provider_config() -> Response:
    return scim_response({
        "schemas": [SPC],
        "documentationUri": current_app.config["IDP"].issuer.rstrip("/") + "/api/openapi.json",
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": False},
        "authenticationSchemes": [{
            "type": "oauthbearertoken", "name": "OAuth Bearer Token",
            "description": "client_credentials 令牌（scope scim），客户端须绑定物业企业",
            "specUri": "https://www.rfc-editor.org/info/rfc6750", "primary": True}],
        "meta": {"resourceType": "ServiceProviderConfig",
                 "location": f"{_base()}/ServiceProviderConfig"},
    })


@bp.get("/ResourceTypes")
def resource_types() -> Response:
    items = _resource_types()
    return list_response(items, len(items), 1)


@bp.get("/ResourceTypes/<name>")
def resource_type(name: str) -> Response:
    for item in _resource_types():
        if item["id"] == name:
            return scim_response(item)
    raise ScimError(404, MSG_NOT_FOUND)


@bp.get("/Schemas")
def schemas() -> Response:
    items = _schemas()
    return list_response(items, len(items), 1)


@bp.get("/Schemas/<urn>")
def schema(urn: str) -> Response:
    for item in _schemas():
        if item["id"] == urn:
            return scim_response(item)
    raise ScimError(404, MSG_NOT_FOUND)
