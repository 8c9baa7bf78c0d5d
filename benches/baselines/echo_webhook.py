"""The echo tool as the platform's Python example handler does it, shared by
fastapi_app.py and flask_app.py.

Verifies X-Webhook-Signature over the raw body (HMAC-SHA256 of
``timestamp + "." + body``, ``hmac.compare_digest``, 300 s window), parses the
envelope, answers ``{"results":[{"tool_call_id", "result": {"echo": args}}]}``.
"""

import hashlib
import hmac
import json
import os
import time

SECRET = os.environ["SWITCHBOARD_SECRET"].encode()


def verify(timestamp: str | None, signature: str | None, body: bytes) -> bool:
    if not timestamp or not signature or not timestamp.isdigit():
        return False
    if abs(time.time() - int(timestamp)) > 300:
        return False
    expected = hmac.new(SECRET, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(signature.removeprefix("sha256="), expected)


def answer(body: bytes) -> dict:
    """The answer to a verified webhook: the echo results, or {} for other events."""
    message = json.loads(body)["message"]
    if message.get("type") != "tool-calls":
        return {}
    results = []
    for call in message.get("tool_call_list", []):
        args = call["function"]["arguments"]
        if isinstance(args, str):
            args = json.loads(args)
        results.append({"tool_call_id": call["id"], "result": {"echo": args}})
    return {"results": results}
