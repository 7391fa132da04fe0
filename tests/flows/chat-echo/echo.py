import os
import time

from promptflow.core import tool


@tool
def echo(question: str, chat_history: list):
    """Yield the answer word by word so the endpoint can stream it."""
    if question.strip() == "explode":
        raise ValueError("user asked for an explosion")
    earlier = [turn["inputs"].get("question", "") for turn in chat_history]
    text = f"Echo: {question}"
    if earlier:
        text += " (earlier: " + " | ".join(earlier) + ")"
    delay = float(os.environ.get("ECHO_DELAY", "0"))
    for word in text.split(" "):
        if delay:
            time.sleep(delay)
        yield word + " "
