"""The SDK against the broker's OpenAPI document (broker/openapi.json): every model has exactly
its schema's properties (and the same required ones), every enum has the schema's values, every
error code has its exception class and every route the client calls exists. A broker change that
adds or removes a field fails here until the SDK follows."""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import kubeline
from kubeline import _base, _models

OPENAPI = Path(__file__).resolve().parents[3] / "broker" / "openapi.json"

# Fields the broker is adding (see README "Windowed result reads"): allowed in the model before
# the committed document has them; once the document has them they are checked like any other.
KNOWN_ADDITIONS = {"CommandResult": {"window"}}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    assert OPENAPI.is_file(), f"{OPENAPI} not found: the SDK's drift test reads the broker's committed document"
    return json.loads(OPENAPI.read_text())


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return resolve(doc, doc["components"]["schemas"][name])
    return schema


def flatten(doc: dict[str, Any], schema: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """Properties and required names of an object schema, through ``allOf``."""
    schema = resolve(doc, schema)
    props: dict[str, Any] = dict(schema.get("properties", {}))
    required = set(schema.get("required", []))
    for part in schema.get("allOf", []):
        p, r = flatten(doc, part)
        props.update(p)
        required |= r
    return props, required


def model_fields(model: type[BaseModel]) -> tuple[set[str], set[str]]:
    names = {f.alias or n for n, f in model.model_fields.items()}
    required = {f.alias or n for n, f in model.model_fields.items() if f.is_required()}
    return names, required


@pytest.mark.parametrize("schema_name", sorted(_models.SCHEMA_MODELS))
def test_model_has_exactly_the_schema_properties(doc: dict[str, Any], schema_name: str) -> None:
    model = _models.SCHEMA_MODELS[schema_name]
    assert schema_name in doc["components"]["schemas"], f"schema {schema_name} is gone from openapi.json"
    props, required = flatten(doc, doc["components"]["schemas"][schema_name])
    names, model_required = model_fields(model)
    pending = KNOWN_ADDITIONS.get(schema_name, set()) - set(props)
    missing = set(props) - names
    extra = names - set(props) - pending
    assert not missing, f"{model.__name__} lacks the schema's properties {sorted(missing)}"
    assert not extra, f"{model.__name__} has properties the schema does not: {sorted(extra)}"
    assert model_required == required, (
        f"{model.__name__}: required in the model {sorted(model_required)}, "
        f"in the schema {sorted(required)}"
    )


def test_output_window_matches_the_schema_once_documented(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    props, required = flatten(doc, schemas["CommandResult"])
    if "window" not in props:
        # A document from before windowed result reads: the model is the announced one.
        assert "OutputWindow" not in schemas
        assert set(_models.OutputWindow.model_fields) == {"offset", "length", "total_bytes", "next_offset"}
        return
    assert "window" not in required
    window = props["window"]
    options = [resolve(doc, o) for o in (window.get("oneOf") or window.get("anyOf") or [window])]
    objects = [o for o in options if o.get("type") != "null"]
    assert len(objects) == 1, f"CommandResult.window: unexpected schema {window}"
    assert objects[0] is schemas["OutputWindow"], "CommandResult.window is no longer an OutputWindow"
    wprops, wrequired = flatten(doc, objects[0])
    names, model_required = model_fields(_models.OutputWindow)
    assert names == set(wprops), f"OutputWindow: model {sorted(names)}, schema {sorted(wprops)}"
    assert model_required == wrequired


def enum_values(doc: dict[str, Any], name: str) -> set[str]:
    return set(doc["components"]["schemas"][name]["enum"])


@pytest.mark.parametrize(
    "schema_name,literal",
    [
        ("ResultStatus", _models.ResultStatus),
        ("SessionStatus", _models.SessionStatus),
        ("ClusterStatus", _models.ClusterStatus),
        ("Scope", _models.Scope),
        ("ErrorCode", _models.ErrorCode),
    ],
)
def test_enums_match(doc: dict[str, Any], schema_name: str, literal: Any) -> None:
    assert set(typing.get_args(literal)) == enum_values(doc, schema_name)


def test_command_types_match(doc: dict[str, Any]) -> None:
    schema = doc["components"]["schemas"]["ExecuteRequest"]["properties"]["command_type"]
    assert set(typing.get_args(_models.CommandType)) == set(schema["enum"])


def test_every_error_code_has_its_exception_class(doc: dict[str, Any]) -> None:
    assert set(kubeline.ERROR_CLASSES) == enum_values(doc, "ErrorCode")
    classes = list(kubeline.ERROR_CLASSES.values())
    assert len(set(classes)) == len(classes), "two codes share a class"
    assert all(issubclass(c, kubeline.KubelineError) and c is not kubeline.KubelineError for c in classes)


def test_every_route_the_client_calls_exists(doc: dict[str, Any]) -> None:
    for name, route in _base.ROUTES.items():
        assert route.path in doc["paths"], f"{name}: {route.path} is not in openapi.json"
        operations = doc["paths"][route.path]
        assert route.method.lower() in operations, f"{name}: {route.method} {route.path} is not in openapi.json"
        assert operations[route.method.lower()]["operationId"] == ("delete_session" if name == "close_session" else name)


def test_query_parameters_the_client_sends_exist(doc: dict[str, Any]) -> None:
    def query(path: str) -> set[str]:
        return {p["name"] for p in doc["paths"][path]["get"].get("parameters", []) if p["in"] == "query"}

    assert query("/debug/sessions") == {"cluster_id", "status", "limit"}
    assert query("/admin/agent-tokens") == {"cluster_id"}
    result_params = query("/debug/result/{result_id}")
    # offset/limit arrive with windowed reads; until the document has them there are none.
    assert result_params in (set(), {"offset", "limit"})


def test_answers_of_the_routes_are_the_models_the_client_parses(doc: dict[str, Any]) -> None:
    expected = {
        ("get", "/health"): "Health",
        ("post", "/debug/session"): "SessionCreated",
        ("get", "/debug/session/{session_id}"): "SessionInfo",
        ("delete", "/debug/session/{session_id}"): "SessionClosed",
        ("get", "/debug/sessions"): "SessionList",
        ("post", "/debug/execute"): "CommandResult",
        ("get", "/debug/result/{result_id}"): "CommandResult",
        ("get", "/clusters"): "ClusterList",
        ("get", "/clusters/{cluster_id}/status"): "ClusterStatusInfo",
        ("post", "/admin/api-keys"): "ApiKeyCreated",
        ("get", "/admin/api-keys"): "ApiKeyList",
        ("delete", "/admin/api-keys/{key_id}"): "ApiKeyInfo",
        ("post", "/admin/agent-tokens"): "AgentTokenCreated",
        ("get", "/admin/agent-tokens"): "AgentTokenList",
        ("delete", "/admin/agent-tokens/{token_id}"): "AgentTokenInfo",
    }
    for (method, path), schema_name in expected.items():
        responses = doc["paths"][path][method]["responses"]
        ok = responses.get("200") or responses.get("201")
        ref = ok["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/" + schema_name), f"{method.upper()} {path} answers {ref}"
        body = doc["paths"][path][method].get("requestBody")
        if body is not None:
            name = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
            assert name in _models.SCHEMA_MODELS, f"{method.upper()} {path} takes {name}, which has no model"
