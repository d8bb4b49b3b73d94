"""``geobatch keys``: create prints the key once, list never shows it, revoke ends it."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from geobatch.cli import app
from geobatch.jobs.database import Database
from geobatch.jobs.keys import KeyStore, Role


def test_keys_create_list_revoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEOBATCH_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("GEOBATCH_API_KEYS", raising=False)
    runner = CliRunner()
    created = runner.invoke(app, ["keys", "create", "--tenant", "acme", "--role", "read"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    database = Database(f"sqlite:///{tmp_path / 'geobatch.db'}")
    try:
        caller = KeyStore(database, {}).resolve(key)
        assert caller is not None
        assert (caller.tenant, caller.role) == ("acme", Role.READ)
        listed = runner.invoke(app, ["keys", "list"])
        assert listed.exit_code == 0
        assert key[:10] in listed.stdout
        assert key not in listed.stdout
        revoked = runner.invoke(app, ["keys", "revoke", key[:10]])
        assert revoked.exit_code == 0, revoked.output
        assert KeyStore(database, {}).resolve(key) is None
    finally:
        database.dispose()
    wrong = runner.invoke(app, ["keys", "create", "--tenant", "acme", "--role", "owner"])
    assert wrong.exit_code == 1
    assert "unknown role" in wrong.output


def test_serve_refuses_a_public_address_without_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEOBATCH_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("GEOBATCH_API_KEYS", raising=False)
    refused = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"])
    assert refused.exit_code == 1
    assert "loopback only" in refused.output
