"""Baseline: the echo tool on Flask (the handling itself: echo_webhook.py;
the body read with ``request.get_data``).

    SWITCHBOARD_SECRET=... gunicorn --workers $((2 * $(nproc) + 1)) flask_app:app
"""

from flask import Flask, jsonify, request

from echo_webhook import answer, verify

app = Flask(__name__)


@app.post("/webhook")
def webhook():
    body = request.get_data()
    if not verify(
        request.headers.get("X-Webhook-Timestamp"), request.headers.get("X-Webhook-Signature"), body
    ):
        return jsonify(error="invalid signature"), 401
    return jsonify(answer(body))


@app.get("/healthz")
def healthz():
    return "ok"
