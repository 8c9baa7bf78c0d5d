"""An MCP client for the integration tests (tests/it/mcp.rs), built on the
official MCP Python SDK (PyPI `mcp`, installed by ./test.sh).

    client.py http URL [--token T] [--header NAME:VALUE ...] OPS_JSON
    client.py stdio OPS_JSON -- COMMAND [ARG ...]

OPS_JSON is a list of steps, run in order on one session; each prints one
JSON line to stdout:

    {"op": "list"}                                  -> {"tools": [{"name", "description", "inputSchema"}]}
    {"op": "call", "tool": T, "args": {...}}        -> {"isError", "content": [texts], "structuredContent"}
                                                       or {"rpcError": {"code", "message"}}
    {"op": "cancel", "tool": T, "args": {...}, "after_ms": N}
                                                    -> {"cancelled": true} (sends notifications/cancelled)
    {"op": "ready"}                                 -> {"ready": true}: the test may now change plugins
    {"op": "wait_list_changed", "timeout": S}       -> {"listChanged": true|false}

The first line is always {"protocolVersion": ..., "serverInfo": ...}.
"""

import asyncio
import json
import sys

import anyio
from mcp import ClientSession, types
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.exceptions import McpError


def emit(value):
    print(json.dumps(value), flush=True)


async def run(session, ops, list_changed):
    init = await session.initialize()
    emit({"protocolVersion": init.protocolVersion, "serverInfo": init.serverInfo.model_dump()})
    for op in ops:
        kind = op["op"]
        if kind == "list":
            tools = await session.list_tools()
            emit({"tools": [t.model_dump(by_alias=True, exclude_none=True) for t in tools.tools]})
        elif kind == "call":
            try:
                result = await session.call_tool(op["tool"], op.get("args", {}))
            except McpError as e:
                emit({"rpcError": {"code": e.error.code, "message": e.error.message}})
                continue
            emit({
                "isError": bool(result.isError),
                "content": [c.text for c in result.content if c.type == "text"],
                "structuredContent": result.structuredContent,
            })
        elif kind == "cancel":
            # The id the session gives its next request.
            request_id = session._request_id
            async with anyio.create_task_group() as group:
                async def call():
                    try:
                        await session.call_tool(op["tool"], op.get("args", {}))
                    except Exception:
                        pass
                group.start_soon(call)
                await anyio.sleep(op.get("after_ms", 300) / 1000)
                await session.send_notification(types.ClientNotification(types.CancelledNotification(
                    params=types.CancelledNotificationParams(requestId=request_id, reason="the test cancels it"))))
                group.cancel_scope.cancel()
            emit({"cancelled": True, "requestId": request_id})
        elif kind == "ready":
            emit({"ready": True})
        elif kind == "wait_list_changed":
            try:
                with anyio.fail_after(op.get("timeout", 20)):
                    await list_changed.wait()
                emit({"listChanged": True})
            except TimeoutError:
                emit({"listChanged": False})
            list_changed.clear()
        else:
            raise SystemExit(f"unknown op {kind!r}")


async def main(argv):
    mode = argv[1]
    list_changed = asyncio.Event()

    async def on_message(message):
        if isinstance(message, types.ServerNotification) and isinstance(
            message.root, types.ToolListChangedNotification
        ):
            list_changed.set()

    if mode == "http":
        url, rest = argv[2], argv[3:]
        headers = {}
        while rest and rest[0] in ("--token", "--header"):
            if rest[0] == "--token":
                headers["Authorization"] = f"Bearer {rest[1]}"
            else:
                name, value = rest[1].split(":", 1)
                headers[name] = value.strip()
            rest = rest[2:]
        ops = json.loads(rest[0])
        async with streamablehttp_client(url, headers=headers) as (read, write, _):
            async with ClientSession(read, write, message_handler=on_message) as session:
                await run(session, ops, list_changed)
    elif mode == "stdio":
        ops = json.loads(argv[2])
        assert argv[3] == "--"
        server = StdioServerParameters(command=argv[4], args=argv[5:], env=None)
        async with stdio_client(server) as (read, write):
            async with ClientSession(read, write, message_handler=on_message) as session:
                await run(session, ops, list_changed)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv))
