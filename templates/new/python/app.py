"""__NAME__: a Switchboard tool plugin in Python.

componentize-py (./build.sh) bundles CPython, this module and what it imports
into a WebAssembly component of the WIT world `tool-plugin` (wit/). The class
`Tools` below implements the world's `tools` export. `pytest` runs it in
ordinary Python, with the host interfaces stubbed (tests/conftest.py).

print() lines and stderr go to Switchboard's log (and show in `switchboard
call`'s output). Host interfaces are in `wit_world.imports`, e.g.
`store.get(key)` for the manifest's [config] values; outbound HTTP is shown
in Switchboard's docs/plugins/python.md.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports.switchboard_plugin_types import (
    CallContext,
    ToolDefinition,
    ToolError_InvalidArguments,
    ToolError_NotFound,
)

#: The JSON Schema of the arguments. Switchboard checks every call against it
#: before the plugin runs, and the LLM reads its descriptions.
SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string", "description": 'Who to greet, e.g. "Ada"'}},
    "required": ["name"],
    "additionalProperties": False,
}


def greet(name: str) -> dict:
    """The tool itself: a greeting for `name`."""
    if not name.strip():
        raise Err(ToolError_InvalidArguments("`name` must not be empty"))
    return {"message": f"Hello, {name}!"}


class Tools(exports.Tools):
    """The `tools` export: what the plugin offers, and the calls to it."""

    def list(self) -> list[ToolDefinition]:
        return [
            ToolDefinition(
                name="__NAME__",
                description="Greets someone by name.",
                parameters_schema=json.dumps(SCHEMA),
            )
        ]

    def call(self, name: str, arguments: str, context: CallContext) -> str:
        # Raise Err(ToolError_...) to fail with a message the LLM reads; any
        # other exception makes the call crash.
        args = json.loads(arguments)
        if name == "__NAME__":
            print(f"greeting {args['name']} (call {context.call_id})")
            return json.dumps(greet(args["name"]))
        raise Err(ToolError_NotFound(f"unknown tool: {name}"))
