"""py_faq: answers callers' common questions (opening hours, parking, prices,
cancellations...) from a small FAQ, matching the words of the question as
speech-to-text transcribed them, misspellings included.

A Switchboard component plugin in Python, built with componentize-py against
the WIT world `tool-plugin` (plugin-sdk/wit/world.wit); see
docs/plugins/python.md. The FAQ is built in, and an operator can replace it
without rebuilding: the manifest's `[config] faq` holds a JSON list of
`{"topic", "keywords", "answer"}` (read through wasi:config), or `[config]
faq_url` names where to GET that list, over outbound HTTP (wasi:http; the
host must be granted in `[http] allowed_hosts`). `http_get` below is the
whole of a GET in Python under componentize-py: copy it.
"""

import difflib
import json
import re
from urllib.parse import urlsplit

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import logging, outgoing_handler, store, streams
from wit_world.imports.wasi_http_types import Fields, Method_Get, OutgoingRequest, Scheme_Http, Scheme_Https
from wit_world.imports.switchboard_plugin_types import (
    CallContext,
    ToolDefinition,
    ToolError_Failed,
    ToolError_InvalidArguments,
    ToolError_NotFound,
)

DEFAULT_FAQ = [
    {
        "topic": "opening hours",
        "keywords": ["open", "opening", "hours", "close", "closing", "time", "weekend", "saturday", "sunday"],
        "answer": "We are open Monday to Friday from 9 am to 6 pm, and on Saturday from 10 am to 4 pm. We are closed on Sundays.",
    },
    {
        "topic": "parking",
        "keywords": ["park", "parking", "car", "garage", "drive"],
        "answer": "There is free parking behind the building; the entrance is on Keizersgracht.",
    },
    {
        "topic": "address",
        "keywords": ["address", "where", "located", "location", "find", "directions", "street"],
        "answer": "We are at Keizersgracht 123 in Amsterdam, five minutes' walk from Central Station.",
    },
    {
        "topic": "cancellation",
        "keywords": ["cancel", "cancellation", "reschedule", "move", "appointment", "refund"],
        "answer": "You can cancel or move an appointment free of charge up to 24 hours before it starts.",
    },
    {
        "topic": "prices",
        "keywords": ["price", "prices", "cost", "costs", "much", "fee", "pay", "payment", "card"],
        "answer": "A standard consultation costs 60 euros. We accept debit and credit cards, but not cash.",
    },
]

STOPWORDS = {
    "a", "an", "and", "are", "can", "do", "does", "for", "how", "i", "is", "it", "me", "my",
    "of", "on", "or", "the", "there", "to", "what", "when", "you", "your", "we", "with", "please",
}

#: Below this score a question has no good answer; the LLM is told so.
THRESHOLD = 0.5

SCHEMA = json.dumps({
    "type": "object",
    "properties": {"question": {"type": "string", "description": "The caller's question, in their words"}},
    "required": ["question"],
    "additionalProperties": False,
})


def words(text: str) -> list[str]:
    """Lower-case words of `text`, without stop words."""
    return [w for w in re.findall(r"[a-z']+", text.lower()) if w not in STOPWORDS]


def similarity(word: str, keyword: str) -> float:
    """1 for the same word, less for a near miss ("parkin", "canceled")."""
    if word == keyword:
        return 1.0
    if len(word) >= 4 and len(keyword) >= 4 and (word.startswith(keyword) or keyword.startswith(word)):
        return 0.9
    ratio = difflib.SequenceMatcher(None, word, keyword).ratio()
    return ratio if ratio >= 0.8 else 0.0


def score(question_words: list[str], entry: dict) -> float:
    """The sum, over the question's words, of their best match among the entry's keywords."""
    return sum(max((similarity(w, k) for k in entry["keywords"]), default=0.0) for w in question_words)


def http_get(url: str, headers: list[tuple[str, str]]) -> tuple[int, bytes]:
    """GETs `url` over wasi:http: the status and the body. Raises Err(ToolError_Failed)
    when the request fails (a host the manifest does not grant, a refused
    connection, the call's time running out)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise Err(ToolError_Failed(f"not an http(s) URL: {url}"))
    request = OutgoingRequest(Fields.from_list([(k, v.encode()) for k, v in headers]))
    request.set_method(Method_Get())
    request.set_scheme(Scheme_Https() if parts.scheme == "https" else Scheme_Http())
    request.set_authority(parts.netloc)
    request.set_path_with_query((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
    try:
        future = outgoing_handler.handle(request, None)
    except Err as e:
        raise Err(ToolError_Failed(f"GET {url} was refused: {e.value}"))
    with future:
        with future.subscribe() as ready:
            ready.block()
        outcome = future.get()
    # Some(Ok(Ok(response))), or the request's error code.
    if outcome is None or not isinstance(outcome, Ok) or not isinstance(outcome.value, Ok):
        error = outcome.value.value if outcome is not None and isinstance(outcome, Ok) else outcome
        raise Err(ToolError_Failed(f"GET {url} failed: {error}"))
    # Resources are dropped child first: the stream, the body, the response.
    with outcome.value.value as response:
        status = response.status()
        with response.consume() as body:
            with body.stream() as stream:
                chunks = []
                while True:
                    try:
                        chunks.append(stream.blocking_read(64 * 1024))
                    except Err as e:
                        if isinstance(e.value, streams.StreamError_Closed):
                            break
                        raise Err(ToolError_Failed(f"reading the answer to GET {url} failed: {e.value}"))
    return status, b"".join(chunks)


def config(key: str) -> str | None:
    """A `[config]` value of the manifest, or None."""
    try:
        return store.get(key)
    except Err as e:
        raise Err(ToolError_Failed(f"configuration is unavailable: {e.value}"))


def load_faq() -> list[dict]:
    """The FAQ from `[config] faq`, or from `[config] faq_url` over HTTP, else the built-in one."""
    text = config("faq")
    url = config("faq_url")
    if text is None and url is not None:
        status, body = http_get(url, [("accept", "application/json")])
        if status != 200:
            raise Err(ToolError_Failed(f"the FAQ service answered {status}"))
        logging.log(logging.Level.INFO, "py_faq", f"FAQ fetched from {url} ({len(body)} bytes)")
        text = body.decode("utf-8", errors="replace")
    if text is None:
        return DEFAULT_FAQ
    try:
        faq = json.loads(text)
        for entry in faq:
            entry["keywords"] = [k.lower() for k in entry["keywords"]]
            str(entry["topic"]), str(entry["answer"])
        return faq
    except (ValueError, TypeError, KeyError) as e:
        raise Err(ToolError_Failed(f"the FAQ in the configuration is malformed: {e!r}"))


def answer(question: str) -> dict:
    question_words = words(question)
    if not question_words:
        raise Err(ToolError_InvalidArguments('"question" has no words to look up'))
    faq = load_faq()
    ranked = sorted(((score(question_words, e), e) for e in faq), key=lambda pair: -pair[0])
    best_score, best = ranked[0]
    if best_score < THRESHOLD:
        topics = ", ".join(e["topic"] for e in faq)
        raise Err(ToolError_NotFound(f"no FAQ entry answers that; the FAQ covers: {topics}"))
    logging.log(logging.Level.INFO, "py_faq", f"matched {best['topic']!r} (score {best_score:.2f})")
    return {"topic": best["topic"], "answer": best["answer"], "score": round(best_score, 2)}


class Tools(exports.Tools):
    """The `tools` interface of the WIT world."""

    def list(self) -> list[ToolDefinition]:
        return [
            ToolDefinition(
                name="answer_faq",
                description="Answer a caller's common question (opening hours, parking, address, "
                "cancellations, prices) from the business's FAQ.",
                parameters_schema=SCHEMA,
            ),
            ToolDefinition(
                name="list_faq_topics",
                description="The topics the FAQ covers.",
                parameters_schema=json.dumps({"type": "object", "properties": {}}),
            ),
        ]

    def call(self, name: str, arguments: str, context: CallContext) -> str:
        try:
            return self.run(name, arguments)
        except Err:
            raise
        except Exception as e:
            # Any other exception would trap, and the LLM would only hear
            # "the tool crashed"; say what went wrong instead.
            logging.log(logging.Level.ERROR, "py_faq", f"unexpected error: {e!r}")
            raise Err(ToolError_Failed(f"the FAQ lookup failed unexpectedly: {e!r}"))

    def run(self, name: str, arguments: str) -> str:
        try:
            args = json.loads(arguments)
        except ValueError as e:
            raise Err(ToolError_InvalidArguments(f"arguments are not JSON: {e}"))
        if name == "answer_faq":
            question = args.get("question") if isinstance(args, dict) else None
            if not isinstance(question, str):
                raise Err(ToolError_InvalidArguments('"question" must be a string'))
            return json.dumps(answer(question))
        if name == "list_faq_topics":
            return json.dumps({"topics": [e["topic"] for e in load_faq()]})
        raise Err(ToolError_Failed(f"unknown tool: {name}"))
