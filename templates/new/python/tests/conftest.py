"""Stubs for the host interfaces, so the plugin runs under pytest without
Switchboard. The `config` fixture sets the manifest's [config] values the
plugin reads with `store.get`; `log_records` holds what it logged with
wasi:logging."""

import pytest
from wit_world.imports import logging, store


@pytest.fixture(autouse=True)
def config(monkeypatch):
    values: dict[str, str] = {}
    monkeypatch.setattr(store, "get", lambda key: values.get(key))
    monkeypatch.setattr(store, "get_all", lambda: list(values.items()))
    return values


@pytest.fixture(autouse=True)
def log_records(monkeypatch):
    records: list[tuple] = []
    monkeypatch.setattr(logging, "log", lambda level, context, message: records.append((level, context, message)))
    return records
