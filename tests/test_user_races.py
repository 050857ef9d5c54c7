"""Two creates of the same user name that both pass the name check: the database's unique index
decides, and the loser gets 409 UserExists, not a 500, with nothing of it left behind."""

from __future__ import annotations

import uuid

from galley.store.user_store import UserTransaction

from . import admin_http

USERS = "/providers/Galley.Identity/users"


def test_a_create_that_loses_the_race_for_a_name_is_a_conflict(server, monkeypatch):
    name = f"racer{uuid.uuid4().hex[:6]}"
    first = admin_http.post(f"{server.url}{USERS}", json={"name": name, "password": "Race-Passw0rd!"})
    assert first.status_code == 201, first.text
    before = admin_http.get(f"{server.url}{USERS}").json()["value"]

    # The second create sees no user of that name, as it would when both check before either writes.
    monkeypatch.setattr(UserTransaction, "user_by_name", lambda self, upn: None)
    second = admin_http.post(f"{server.url}{USERS}", json={"name": name, "password": "Other-Passw0rd!"})
    monkeypatch.undo()

    assert second.status_code == 409, second.text
    assert second.json()["error"]["code"] == "UserExists"
    after = admin_http.get(f"{server.url}{USERS}").json()["value"]
    assert sorted(u["id"] for u in after) == sorted(u["id"] for u in before)  # no half-made user or principal
