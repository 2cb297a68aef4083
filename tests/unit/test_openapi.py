"""The OpenAPI documents say what the services answer, and their /docs page needs no CDN.

Built from each app's ``openapi()`` with no server: the fuzzing test
(``tests/integration/test_openapi_fuzz.py``) checks the same documents against the real stack.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.history.app import create_app as create_history
from services.ingest.app import create_app as create_ingest

ERROR_REF = "#/components/schemas/ErrorBody"
BEARER_SCHEME = "bearerAuth"
WRITE_METHODS = frozenset({"post", "put", "patch", "delete"})


@pytest.fixture(scope="module", params=["ingest", "history"])
def app(request: pytest.FixtureRequest) -> FastAPI:
    return create_ingest() if request.param == "ingest" else create_history()


@pytest.fixture(scope="module")
def ingest_doc() -> dict[str, Any]:
    return create_ingest().openapi()


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in doc["paths"].items():
        for method, operation in methods.items():
            yield method, path, operation


def _schema_ref(response: dict[str, Any]) -> str | None:
    ref: str | None = response.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
    return ref


def _resolve(doc: dict[str, Any], ref: str) -> dict[str, Any]:
    schema: dict[str, Any] = doc
    for part in ref.removeprefix("#/").split("/"):
        schema = schema[part]
    return schema


def test_write_routes_answer_the_item_and_its_cursor(ingest_doc: dict[str, Any]) -> None:
    writes = [(m, p, op) for m, p, op in _operations(ingest_doc) if p.startswith("/v1/feeds/{feed}/items")]
    assert len(writes) >= 5
    for method, path, operation in writes:
        success = operation["responses"]["201" if method == "post" else "200"]
        ref = _schema_ref(success)
        assert ref is not None, (method, path)
        schema = _resolve(ingest_doc, ref)
        assert set(schema["required"]) == {"item", "cursor"}, (method, path, schema)
        assert schema["properties"]["cursor"]["type"] == "string"


def test_a_retraction_answers_a_tombstone(ingest_doc: dict[str, Any]) -> None:
    """A retracted item keeps no words: its answer's item has no headline to require."""
    answer = ingest_doc["paths"]["/v1/feeds/{feed}/items/{item_id}"]["delete"]["responses"]["200"]
    item = _resolve(ingest_doc, _resolve(ingest_doc, str(_schema_ref(answer)))["properties"]["item"]["$ref"])
    assert "headline" not in item["required"]


def test_every_4xx_is_our_error_body_and_fastapis_is_gone(app: FastAPI) -> None:
    doc = app.openapi()
    assert "HTTPValidationError" not in str(doc)
    assert "ValidationError" not in doc["components"]["schemas"]
    error = doc["components"]["schemas"]["ErrorBody"]
    assert set(error["required"]) == {"error", "message", "fields"}
    for method, path, operation in _operations(doc):
        statuses = [s for s in operation["responses"] if s.startswith("4")]
        assert "429" in statuses, (method, path)
        for status in statuses:
            assert _schema_ref(operation["responses"][status]) == ERROR_REF, (method, path, status)
        if operation.get("parameters") or operation.get("requestBody"):
            assert "422" in statuses, (method, path)


def test_errors_that_say_when_to_retry_document_retry_after(app: FastAPI) -> None:
    for method, path, operation in _operations(app.openapi()):
        for status in ("409", "429", "503"):
            if status in operation["responses"]:
                assert "Retry-After" in operation["responses"][status].get("headers", {}), (method, path, status)


def test_list_answers_are_typed() -> None:
    doc = create_history().openapi()
    for path in ("/v1/feeds", "/v1/feeds/{feed}/items", "/v1/feeds/{feed}/key-events", "/v1/feeds/{feed}/pinned"):
        response = doc["paths"][path]["get"]["responses"]["200"]
        alternatives = response["content"]["application/json"]["schema"].get("anyOf", [])
        refs = [_schema_ref(response)] if not alternatives else [a.get("$ref") for a in alternatives]
        assert refs and None not in refs, path
        assert all(_resolve(doc, ref)["required"] for ref in refs if ref is not None), path
    for name in ("ItemPage", "NinjsPage"):  # the plain list and ?format=ninjs: the same paging fields
        page = doc["components"]["schemas"][name]
        assert set(page["required"]) == {"feed", "cursor", "next_before", "items"}, name


def test_bearer_scheme_is_declared_and_on_every_write(app: FastAPI, ingest_doc: dict[str, Any]) -> None:
    doc = app.openapi()
    assert doc["components"]["securitySchemes"][BEARER_SCHEME] == {
        "type": "http", "scheme": "bearer", "description": doc["components"]["securitySchemes"][BEARER_SCHEME][
            "description"],
    }
    for method, path, operation in _operations(ingest_doc):
        if method in WRITE_METHODS:
            assert {BEARER_SCHEME: []} in operation.get("security", []), (method, path)
            assert {} not in operation["security"], (method, path)
            assert "401" in operation["responses"], (method, path)


def test_examples_are_shown(ingest_doc: dict[str, Any]) -> None:
    publish = ingest_doc["paths"]["/v1/feeds/{feed}/items"]["post"]
    assert publish["requestBody"]["content"]["application/json"]["example"]["headline"]
    assert publish["responses"]["422"]["content"]["application/json"]["example"]["error"] == "validation_error"
    assert ingest_doc["components"]["schemas"]["WriteAnswer"]["examples"]


def test_docs_page_loads_nothing_from_another_origin(app: FastAPI) -> None:
    client = TestClient(app)
    page = client.get("/docs")
    assert page.status_code == 200
    assert not re.search(r"https?://", page.text), page.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert len(assets) == 3
    for asset in assets:
        assert not asset.startswith("/"), "relative, so it works under the gateway's /api/<service>/ prefix"
        served = client.get(f"/{asset}")
        assert served.status_code == 200, asset
        assert len(served.content) > 1000, asset
    assert client.get("/docs/redoc.standalone.js").status_code == 404
    assert client.get("/docs/..%2F__init__.py").status_code == 404


def test_an_edit_documents_what_the_server_refuses(ingest_doc: dict[str, Any]) -> None:
    """Only url and byline may be removed (null); an edit changes a field; urls are http(s)."""
    update = ingest_doc["components"]["schemas"]["ItemUpdate"]
    assert update["minProperties"] == 1
    nullable = {name for name, field in update["properties"].items() if {"type": "null"} in field.get("anyOf", [])}
    assert nullable == {"url", "byline"}
    create = ingest_doc["components"]["schemas"]["ItemCreate"]
    assert create["properties"]["url"]["anyOf"][0]["pattern"].startswith("^https?://[^")
    assert "pattern" in create["properties"]["headline"]
