"""The OpenAPI 3.0.3 description of the admin REST API (``GET /api/openapi.json``).

Written by hand, as data: it is a contract, read by people and by generators of clients, and
``tests/unit/api`` holds the implementation to it (schemathesis sends what the document allows
and checks every answer against the document: no 5xx, no undocumented shape). When a view
changes, this changes with it. SCIM (/scim/v2) describes itself (RFC 7644 §4: /Schemas,
/ResourceTypes, /ServiceProviderConfig) and is not repeated here.
"""

from __future__ import annotations

import copy
from typing import Any

MAX_ID = 2**31 - 1
JSON = "application/json"
# How the SMS with a new operator's initial password went (the answer to 增加, REST and SCIM).
INITIAL_PASSWORD_SMS = ("sent", "failed", "none")

_ERROR_REF = {"$ref": "#/components/schemas/Error"}


def _error(description: str, *, challenge: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description,
                                "content": {JSON: {"schema": _ERROR_REF}}}
    if challenge:
        response["headers"] = {"WWW-Authenticate": {
            "description": "RFC 6750 §3: `Bearer realm=\"idp\"`, with `error` and `scope` "
                           "when a token was presented.",
            "schema": {"type": "string"}}}
    return response


RESPONSES: dict[str, Any] = {
    "BadRequest": _error("请求无效：JSON 格式、字段类型、未知字段、字段值或查询参数不正确"
                         "（`field` 指出字段）。"),
    "Unauthorized": _error("缺少访问令牌，或令牌无效、已过期、已撤销（RFC 6750 §3.1）。",
                           challenge=True),
    "Forbidden": _error("令牌的授权范围不足（`insufficient_scope`），或令牌不代表任何物业企业"
                        "（`access_denied`）。", challenge=True),
    "NotFound": _error("本企业没有该 ID 的记录（其他企业的 ID 同样为 404）。"),
    "Conflict": _error("与现有数据冲突（`error`）：phone_bound 手机号已绑定（S14）或已被其他账号"
                       "使用、account_disabled 该手机号的账号已被平台停用、operator_deleted "
                       "操作员已删除、name_taken 管理处名称已存在、office_has_operators "
                       "管理处仍有操作员（须指定 operators）。"),
    "UnsupportedMediaType": _error("请求体不是 JSON（Content-Type 应为 application/json）。"),
    "PhoneCheckFailed": _error("手机号二要素校验（姓名 + 手机号）未通过（S13），未保存。"),
}

_ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
_TIME = {"type": "string", "format": "date-time"}
_TEXT = {"type": "string"}
_OPTIONAL_TEXT = {"type": "string", "nullable": True}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string", "description": "机器可读的错误代码"},
            "message": {"type": "string", "description": "中文说明"},
            "field": {"type": "string", "description": "出错的字段或参数"},
            "error_description": {"type": "string",
                                  "description": "在进入本接口之前被拒绝的请求（如含控制字符、"
                                                 "路径不存在）的英文说明"},
        },
        "additionalProperties": False,
    },
    "Department": {
        "type": "object",
        "description": "部门：本企业或其小区管理处",
        "required": ["id", "name", "type", "code"],
        "properties": {
            "id": _ID,
            "name": _TEXT,
            "type": {"type": "string", "enum": ["enterprise", "office"]},
            "code": {"type": "string", "description": "所属单位编码（企业为统一社会信用代码，"
                                                      "管理处为管理处编码）"},
        },
        "additionalProperties": False,
    },
    "Operator": {
        "type": "object",
        "required": ["id", "name", "department", "category", "category_label", "role",
                     "role_label", "phone", "remark", "status", "status_label", "created_at",
                     "updated_at"],
        "properties": {
            "id": {**_ID, "description": "操作员ID"},
            "name": {"type": "string", "description": "操作员姓名"},
            "department": {"$ref": "#/components/schemas/Department"},
            "category": {"type": "string", "enum": ["enterprise", "office"],
                         "description": "部门类别"},
            "category_label": {"type": "string", "example": "物业企业"},
            "role": {"type": "string", "enum": ["operator", "office"], "description": "角色"},
            "role_label": {"type": "string", "example": "物业管理企业"},
            "phone": {"type": "string", "description": "手机号码"},
            "remark": {"type": "string", "description": "备注"},
            "status": {"type": "string", "enum": ["active", "disabled", "deleted"],
                       "description": "正常使用 / 停用 / 已删除"},
            "status_label": {"type": "string", "example": "正常使用"},
            "created_at": _TIME,
            "updated_at": _TIME,
        },
        "additionalProperties": False,
    },
    "OperatorCreated": {},  # the Operator and initial_password_sms, filled in below
    "OperatorList": {
        "type": "object",
        "required": ["items", "total", "page", "size", "pages"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Operator"}},
            "total": {"type": "integer", "minimum": 0},
            "page": {"type": "integer", "minimum": 1, "maximum": 100000,
                     "description": "所请求的页；超过最后一页时 items 为空"},
            "size": {"type": "integer", "enum": [10, 20, 50]},
            "pages": {"type": "integer", "minimum": 1},
        },
        "additionalProperties": False,
    },
    "OperatorCreate": {
        "type": "object",
        "description": "增加操作员（S12）。保存前进行手机号二要素校验（S13）；"
                       "已绑定企业或管理处角色的手机号不能再绑定（S14）。"
                       "新账号的初始密码以短信发送，结果见响应的 initial_password_sms。",
        "required": ["name", "department_id", "phone"],
        "properties": {
            "name": {"type": "string", "description": "操作员姓名（身份证上的姓名，1–50个字符）"},
            "department_id": {**_ID, "description": "部门：本企业或其小区管理处的 ID"},
            "category": {**_OPTIONAL_TEXT, "enum": ["enterprise", "office", None],
                         "description": "部门类别（物业企业 / 小区管理处）；为空时随部门，"
                                        "给出时须与部门一致"},
            "phone": {"type": "string", "description": "手机号码"},
            "role": {**_OPTIONAL_TEXT, "enum": ["operator", "office", None],
                     "description": "角色 operator（物业管理企业）/ office（小区管理处）；"
                                    "为空时随部门，给出时须与部门类别一致"},
            "remark": {**_OPTIONAL_TEXT, "description": "备注，最多200个字符"},
        },
        "additionalProperties": False,
        "example": {"name": "张三", "department_id": 1, "phone": "13900000001",
                    "remark": "物业前台"},
    },
    "OperatorPatch": {
        "type": "object",
        "description": "修改操作员（S15）：只能修改手机号码和状态。与现值相同时不做修改。",
        "minProperties": 1,
        "properties": {
            "phone": {**_OPTIONAL_TEXT, "description": "新手机号码（须通过 S14 与二要素校验）"},
            "status": {**_OPTIONAL_TEXT, "enum": ["active", "disabled", None],
                       "description": "active（正常使用）或 disabled（停用）；删除用 DELETE"},
        },
        "additionalProperties": False,
    },
    "Office": {
        "type": "object",
        "required": ["id", "name", "code", "contact_name", "contact_phone", "address",
                     "remark", "operator_count", "created_at", "updated_at"],
        "properties": {
            "id": _ID,
            "name": {"type": "string", "description": "管理处名称"},
            "code": {"type": "string", "description": "管理处编码"},
            "contact_name": {"type": "string", "description": "负责人"},
            "contact_phone": {"type": "string", "description": "联系电话"},
            "address": {"type": "string", "description": "地址"},
            "remark": {"type": "string", "description": "备注"},
            "operator_count": {"type": "integer", "minimum": 0,
                               "description": "未删除的操作员数"},
            "created_at": _TIME,
            "updated_at": _TIME,
        },
        "additionalProperties": False,
    },
    "OfficeList": {
        "type": "object",
        "required": ["items", "total"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Office"}},
            "total": {"type": "integer", "minimum": 0},
        },
        "additionalProperties": False,
    },
    "OfficeCreate": {
        "type": "object",
        "description": "新建小区管理处（T03），无需审核即可使用。",
        "required": ["name"],
        "properties": {
            "name": {"type": "string",
                     "description": "管理处名称（1–100个字符，可含汉字、字母、数字和括号）"},
            "contact_name": {**_OPTIONAL_TEXT, "description": "负责人姓名"},
            "contact_phone": {**_OPTIONAL_TEXT, "description": "联系电话（手机号或区号-电话号码）"},
            "address": {**_OPTIONAL_TEXT, "description": "地址，最多200个字符"},
            "remark": {**_OPTIONAL_TEXT, "description": "备注，最多200个字符"},
        },
        "additionalProperties": False,
    },
    "OfficePatch": {
        "type": "object",
        "description": "修改小区管理处：所给字段替换现值，其余与管理处编码不变。",
        "minProperties": 1,
        "properties": {
            "name": {**_OPTIONAL_TEXT, "description": "管理处名称"},
            "contact_name": _OPTIONAL_TEXT,
            "contact_phone": _OPTIONAL_TEXT,
            "address": _OPTIONAL_TEXT,
            "remark": _OPTIONAL_TEXT,
        },
        "additionalProperties": False,
    },
}


def _created(operator: dict[str, Any]) -> dict[str, Any]:
    """The answer to 增加: the operator and how the SMS of its initial password went. A copy
    rather than ``allOf``: Operator forbids additional properties, which ``allOf`` keeps."""
    schema = copy.deepcopy(operator)
    schema["description"] = "已增加的操作员，及初始密码短信的发送结果"
    schema["required"].append("initial_password_sms")
    schema["properties"]["initial_password_sms"] = {
        "type": "string", "enum": list(INITIAL_PASSWORD_SMS),
        "description": "初始密码短信：sent 已发送；failed 发送失败（操作员已增加；可删除该操作员"
                       "后重新增加，系统将重新生成初始密码并以短信发送）；none 未生成初始密码"
                       "（该手机号已有账号，操作员使用原密码登录）。只在本响应中给出。"}
    return schema


SCHEMAS["OperatorCreated"] = _created(SCHEMAS["Operator"])


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/responses/{name}"}


def _body(schema: str) -> dict[str, Any]:
    return {"required": True,
            "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _ok(description: str, schema: str, *, location: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }
    if location:
        response["headers"] = {"Location": {"description": "新记录的 URL",
                                            "schema": {"type": "string"}}}
    return response


def _security(*scopes: str) -> list[dict[str, list[str]]]:
    """Any one of the scopes, by a bearer token from either flow."""
    return [{"oauth2": [scope]} for scope in scopes] + [{"bearer": []}]


READ = _security("console.read", "console.write")
WRITE = _security("console.write")
AUTH_ERRORS = {"400": _ref("BadRequest"), "401": _ref("Unauthorized"),
               "403": _ref("Forbidden")}


def _id_parameter(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": _ID}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}


OPERATOR_ID = _id_parameter("operator_id", "操作员ID")
OFFICE_ID = _id_parameter("office_id", "小区管理处 ID")

PATHS: dict[str, Any] = {
    "/api/openapi.json": {
        "get": {
            "operationId": "getOpenApiDocument",
            "summary": "本文档",
            "tags": ["meta"],
            "security": [],
            "responses": {"200": {"description": "OpenAPI 3.0.3 文档",
                                  "content": {JSON: {"schema": {"type": "object"}}}}},
        },
    },
    "/api/v1/operators": {
        "get": {
            "operationId": "listOperators",
            "summary": "操作员列表（S11）",
            "tags": ["operators"],
            "security": READ,
            "parameters": [
                _query("operator_id", "操作员ID（数字）",
                       {"type": "string", "pattern": "^[0-9]{1,10}$"}),
                _query("name", "操作员姓名（前缀匹配）", {"type": "string", "maxLength": 50}),
                _query("status", "操作员状态",
                       {"type": "string", "enum": ["active", "disabled", "deleted"]}),
                _query("category", "操作员类别", {"type": "string",
                                                  "enum": ["enterprise", "office"]}),
                _query("unit_code", "所属单位编码",
                       {"type": "string", "pattern": "^[0-9A-Za-z-]{1,32}$"}),
                _query("unit_name", "所属单位名称（包含）", {"type": "string", "maxLength": 50}),
                _query("page", "页码", {"type": "integer", "minimum": 1, "maximum": 100000,
                                        "default": 1}),
                _query("size", "每页条数", {"type": "integer", "enum": [10, 20, 50],
                                            "default": 20}),
            ],
            "responses": {"200": _ok("一页操作员，按操作员ID升序", "OperatorList"),
                          **AUTH_ERRORS},
        },
        "post": {
            "operationId": "createOperator",
            "summary": "增加操作员（S12–S14）",
            "tags": ["operators"],
            "security": WRITE,
            "requestBody": _body("OperatorCreate"),
            "responses": {"201": _ok("已增加；初始密码短信的发送结果见 initial_password_sms",
                                     "OperatorCreated", location=True),
                          **AUTH_ERRORS, "409": _ref("Conflict"),
                          "415": _ref("UnsupportedMediaType"), "422": _ref("PhoneCheckFailed")},
        },
    },
    "/api/v1/operators/{operator_id}": {
        "parameters": [OPERATOR_ID],
        "get": {
            "operationId": "getOperator",
            "summary": "查询操作员（S15）",
            "tags": ["operators"],
            "security": READ,
            "responses": {"200": _ok("操作员", "Operator"), **AUTH_ERRORS,
                          "404": _ref("NotFound")},
        },
        "patch": {
            "operationId": "updateOperator",
            "summary": "修改操作员的手机号码或状态（S15）",
            "tags": ["operators"],
            "security": WRITE,
            "requestBody": _body("OperatorPatch"),
            "responses": {"200": _ok("修改后的操作员", "Operator"), **AUTH_ERRORS,
                          "404": _ref("NotFound"), "409": _ref("Conflict"),
                          "415": _ref("UnsupportedMediaType"), "422": _ref("PhoneCheckFailed")},
        },
        "delete": {
            "operationId": "deleteOperator",
            "summary": "删除操作员（S15，逻辑删除：账号不可用，记录与审计日志保留）",
            "tags": ["operators"],
            "security": WRITE,
            "responses": {"204": {"description": "已删除"}, **AUTH_ERRORS,
                          "404": _ref("NotFound"), "409": _ref("Conflict")},
        },
    },
    "/api/v1/offices": {
        "get": {
            "operationId": "listOffices",
            "summary": "小区管理处列表（T03）",
            "tags": ["offices"],
            "security": READ,
            "responses": {"200": _ok("未删除的管理处，按 ID 升序", "OfficeList"),
                          **AUTH_ERRORS},
        },
        "post": {
            "operationId": "createOffice",
            "summary": "新建小区管理处（T03）",
            "tags": ["offices"],
            "security": WRITE,
            "requestBody": _body("OfficeCreate"),
            "responses": {"201": _ok("已新建", "Office", location=True), **AUTH_ERRORS,
                          "409": _ref("Conflict"), "415": _ref("UnsupportedMediaType")},
        },
    },
    "/api/v1/offices/{office_id}": {
        "parameters": [OFFICE_ID],
        "get": {
            "operationId": "getOffice",
            "summary": "查看小区管理处",
            "tags": ["offices"],
            "security": READ,
            "responses": {"200": _ok("管理处", "Office"), **AUTH_ERRORS,
                          "404": _ref("NotFound")},
        },
        "patch": {
            "operationId": "updateOffice",
            "summary": "修改小区管理处",
            "tags": ["offices"],
            "security": WRITE,
            "requestBody": _body("OfficePatch"),
            "responses": {"200": _ok("修改后的管理处", "Office"), **AUTH_ERRORS,
                          "404": _ref("NotFound"), "409": _ref("Conflict"),
                          "415": _ref("UnsupportedMediaType")},
        },
        "delete": {
            "operationId": "deleteOffice",
            "summary": "删除小区管理处",
            "description": "管理处仍有未删除的操作员时须指定 `operators`：move 转到本企业，"
                           "delete 一并删除；未指定则 409，不做任何修改。",
            "tags": ["offices"],
            "security": WRITE,
            "parameters": [_query("operators", "如何处理该管理处的操作员",
                                  {"type": "string", "enum": ["move", "delete"]})],
            "responses": {"204": {"description": "已删除"}, **AUTH_ERRORS,
                          "404": _ref("NotFound"), "409": _ref("Conflict")},
        },
    },
}

SCOPES = {
    "console.read": "读取本企业的操作员与小区管理处",
    "console.write": "增加、修改、删除本企业的操作员与小区管理处",
    "scim": "SCIM 2.0 预配（/scim/v2）",
}


def document(issuer: str) -> dict[str, Any]:
    """The document for this deployment (its issuer names the server and the token URL)."""
    base = issuer.rstrip("/")
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "统一认证登录平台 企业管理接口",
            "version": "1.0.0",
            "description": (
                "物业服务企业的操作员（S11–S15）与小区管理处（T03）管理接口，与企业管理控制台"
                "使用相同的服务与校验。\n\n"
                "认证：`Authorization: Bearer <access token>`（RFC 6750）。企业管理员的令牌"
                "（授权码流程，scope 含 console.read / console.write）作用于其管理的企业；"
                "client_credentials 令牌作用于该客户端绑定的企业（`idp clients add --tenant "
                "USCC`）。其他企业的 ID 一律为 404。SCIM 2.0 见 /scim/v2（RFC 7643/7644）。"
            ),
        },
        "servers": [{"url": base}],
        "tags": [{"name": "operators", "description": "操作员管理"},
                 {"name": "offices", "description": "小区管理处信息管理"},
                 {"name": "meta", "description": "接口描述"}],
        "paths": copy.deepcopy(PATHS),
        "components": {
            "schemas": copy.deepcopy(SCHEMAS),
            "responses": copy.deepcopy(RESPONSES),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "本平台签发的不透明访问令牌"},
                "oauth2": {
                    "type": "oauth2",
                    "flows": {
                        "clientCredentials": {"tokenUrl": f"{base}/token",
                                              "scopes": dict(SCOPES)},
                        "authorizationCode": {"authorizationUrl": f"{base}/authorize",
                                              "tokenUrl": f"{base}/token",
                                              "scopes": dict(SCOPES)},
                    },
                },
            },
        },
    }
