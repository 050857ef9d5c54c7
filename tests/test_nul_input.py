"""NUL characters in a request (issue 10's rule: bad input is a clear 4xx and changes nothing).
SQLite stores them; PostgreSQL cannot even compare a text value holding one, so on PostgreSQL a
name with %00 in the path, or a user name with NUL in a form, reached the database and was a 500.
JSON bodies and forms holding NUL are now refused as they are read, and a value that reaches
PostgreSQL anyway is a 400. Each case runs on both engines."""

from __future__ import annotations

import httpx as plain_httpx

from galley.identity.sign_in import PORTAL_CLIENT_ID

from . import admin_http as httpx
from .sdk_helpers import GALLERY_API, make_group, resource_id

USERS = "/providers/Galley.Identity/users"


def _arm_400(response, code: str) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == code, response.text


def test_a_nul_in_a_path_or_query_is_never_a_server_error(server):
    """A name with %00 is refused by the name rules where a request creates something; where it
    only looks one up, SQLite finds nothing (404) and PostgreSQL refuses the value (400)."""
    make_group(server.url)
    gallery = f"{server.url}{resource_id('galleries/g%00x')}"
    looked_up = httpx.get(gallery, params={"api-version": GALLERY_API})
    assert looked_up.status_code in (400, 404), looked_up.text
    if looked_up.status_code == 400:
        assert looked_up.json()["error"]["code"] == "InvalidParameter"
    _arm_400(httpx.put(gallery, params={"api-version": GALLERY_API}, json={"location": "eastus"}), "InvalidGalleryName")
    listed = httpx.get(f"{server.url}{resource_id('galleries')}?api-version={GALLERY_API}&$skiptoken=%00")
    assert listed.status_code < 500, listed.text
    assert httpx.get(f"{server.url}{resource_id('galleries')}", params={"api-version": GALLERY_API}).json()["value"] == []
    blob = plain_httpx.get(f"{server.url}/someaccount/ctr/b%00lob?sv=2025-01-05&sig=x")
    assert blob.status_code < 500, blob.text


def test_a_nul_in_a_value_that_reaches_the_database_is_a_400(server):
    token = plain_httpx.post(f"{server.url}/organizations/oauth2/v2.0/token", data={
        "grant_type": "password", "client_id": PORTAL_CLIENT_ID, "username": "al\x00ice", "password": "Example-Passw0rd"})
    assert token.status_code == 400 and token.json()["error"] == "invalid_request", token.text
    made = httpx.post(f"{server.url}{USERS}", json={"name": "bob", "password": "Example-Passw0rd",
                                                    "displayName": "Bob\u0000Smith"})
    _arm_400(made, "InvalidRequestContent")
    assert httpx.get(f"{server.url}{USERS}").json()["value"] == []  # nothing was made


def test_a_nul_in_a_json_body_is_a_400_on_every_engine(server):
    make_group(server.url)
    gallery = f"{server.url}{resource_id('galleries/g1')}"
    for body in ({"location": "eastus", "tags": {"a": "x\u0000y"}}, {"location": "eastus", "tags": {"a\u0000": "y"}},
                 {"location": "eastus", "properties": {"description": ["d\u0000"]}}):
        _arm_400(httpx.put(gallery, params={"api-version": GALLERY_API}, json=body), "InvalidRequestContent")
    assert httpx.get(gallery, params={"api-version": GALLERY_API}).status_code == 404
    # A backslash followed by "u0000" is six characters, not a NUL: taken.
    made = httpx.put(gallery, params={"api-version": GALLERY_API},
                     json={"location": "eastus", "tags": {"a": "C:\\u0000"}})
    assert made.status_code in (200, 201), made.text
    assert made.json()["tags"] == {"a": "C:\\u0000"}


def test_numbers_beyond_64_bits_in_queries_are_never_a_server_error(server):
    make_group(server.url)
    big = "99999999999999999999999"
    for query in (f"$top={big}", f"$skiptoken={big}", "$top=-1", f"$skip={big}"):
        answer = httpx.get(f"{server.url}{resource_id('galleries')}?api-version={GALLERY_API}&{query}")
        assert answer.status_code < 500, (query, answer.text)
    answer = httpx.get(f"{server.url}/subscriptions/{resource_id('x').split('/')[2]}/providers/Microsoft.Compute/"
                       f"galleyUsage?api-version=2026-03-03&$top={big}")
    assert answer.status_code < 500, answer.text
