"""Scoring script serving an Agent Framework workflow (the migration kit's pattern):
``{"question", "chat_history"}`` in, ``{"answer"}`` out; one workflow per request, since a
workflow instance runs one request at a time."""

import asyncio
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from workflow import create_workflow  # noqa: E402


def init():
    create_workflow()  # fail at startup, not on the first request, if it cannot be built


def run(raw_data):
    data = json.loads(raw_data)
    request = {"question": data["question"], "chat_history": data.get("chat_history") or []}
    result = asyncio.run(create_workflow().run(request))
    outputs = result.get_outputs()
    return {"answer": outputs[-1] if outputs else ""}
