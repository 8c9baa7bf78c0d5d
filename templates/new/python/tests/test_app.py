"""Unit tests, run with pytest (./build.sh test), without Switchboard."""

import json

import pytest
from componentize_py_types import Err
from wit_world.imports.switchboard_plugin_types import CallContext, ToolError_InvalidArguments

import app

CONTEXT = CallContext(
    call_id="test-call",
    call_type="web_call",
    tool_call_id="test-tool-call",
    customer_number=None,
    phone_number=None,
    assistant_metadata=None,
    deadline_ms=9000,
)


def test_greets_by_name():
    answer = app.Tools().call("__NAME__", json.dumps({"name": "Ada"}), CONTEXT)
    assert json.loads(answer) == {"message": "Hello, Ada!"}


def test_refuses_an_empty_name():
    with pytest.raises(Err) as failure:
        app.Tools().call("__NAME__", json.dumps({"name": " "}), CONTEXT)
    assert isinstance(failure.value.value, ToolError_InvalidArguments)


def test_lists_its_tool_with_a_json_schema():
    [tool] = app.Tools().list()
    assert tool.name == "__NAME__"
    assert json.loads(tool.parameters_schema)["required"] == ["name"]
