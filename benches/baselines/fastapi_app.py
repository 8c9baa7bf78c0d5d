"""Baseline: the echo tool on FastAPI (the handling itself: echo_webhook.py).

    SWITCHBOARD_SECRET=... uvicorn fastapi_app:app --workers 2 ...
"""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from echo_webhook import answer, verify

app = FastAPI()


@app.post("/webhook")
async def webhook(request: Request):
    body = await request.body()
    if not verify(
        request.headers.get("x-webhook-timestamp"), request.headers.get("x-webhook-signature"), body
    ):
        return JSONResponse({"error": "invalid signature"}, status_code=401)
    return answer(body)


@app.get("/healthz")
async def healthz():
    return "ok"
