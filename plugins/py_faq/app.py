"""py_faq: answers callers' common questions (opening hours, parking, prices,
cancellations...) from a small FAQ, matching the words of the question as
speech-to-text transcribed them, misspellings included.

A Switchboard component plugin in Python, built with componentize-py against
the WIT world `tool-plugin` (plugin-sdk/wit/world.wit); see
docs/plugins/python.md. The FAQ is built in, and an operator can replace it
without rebuilding: the manifest's `[config] faq` holds a JSON list of
`{"topic", "keywords", "answer"}` (read through wasi:config).
"""

import difflib
import json
import re

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import logging, store
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


def load_faq() -> list[dict]:
    """The FAQ from `[config] faq` when the manifest sets it, else the built-in one."""
    try:
        text = store.get("faq")
    except Err as e:
        raise Err(ToolError_Failed(f"configuration is unavailable: {e.value}"))
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
    ranked = sorted(((score(question_words, e), e) for e in load_faq()), key=lambda pair: -pair[0])
    best_score, best = ranked[0]
    if best_score < THRESHOLD:
        topics = ", ".join(e["topic"] for e in load_faq())
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
