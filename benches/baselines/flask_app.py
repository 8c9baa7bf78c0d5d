"""Baseline: the echo tool as the platform's Python example handler does it, on Flask.

Verifies X-Webhook-Signature over the raw body (``request.get_data``,
HMAC-SHA256 of ``timestamp + "." + body``, ``hmac.compare_digest``, 300 s
window), parses the envelope, answers
``{"results":[{"tool_call_id", "result": {"echo": args}}]}``.

    SWITCHBOARD_SECRET=... gunicorn --workers $((2 * $(nproc) + 1)) flask_app:app
"""

import hashlib
import hmac
import json
import os
import time

from flask import Flask, jsonify, request

SECRET = os.environ["SWITCHBOARD_SECRET"].encode()

app = Flask(__name__)


def verify(timestamp, signature, body):
    if not timestamp or not signature or not timestamp.isdigit():
        return False
    if abs(time.time() - int(timestamp)) > 300:
        return False
    expected = hmac.new(SECRET, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(signature.removeprefix("sha256="), expected)


@app.post("/webhook")
def webhook():
    body = request.get_data()
    if not verify(
        request.headers.get("X-Webhook-Timestamp"), request.headers.get("X-Webhook-Signature"), body
    ):
        return jsonify(error="invalid signature"), 401
    message = json.loads(body)["message"]
    if message.get("type") != "tool-calls":
        return jsonify({})
    results = []
    for call in message.get("tool_call_list", []):
        args = call["function"]["arguments"]
        if isinstance(args, str):
            args = json.loads(args)
        results.append({"tool_call_id": call["id"], "result": {"echo": args}})
    return jsonify(results=results)


@app.get("/healthz")
def healthz():
    return "ok"
