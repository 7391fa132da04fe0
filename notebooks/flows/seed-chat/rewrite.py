"""Turn a follow-up question into a standalone one, using the previous turn of the chat.

"And how long does it take?" after "How do I create the deployment?" becomes
"How do I create the deployment? And how long does it take?", so the retriever sees both.
"""

import re

from promptflow.core import tool

FOLLOW_UP = re.compile(
    r"^(and|also|so|then|what about|how about|but)\b|\b(it|that|this|they|those|them|there)\b",
    re.IGNORECASE,
)


@tool
def rewrite(question: str, chat_history: list) -> str:
    question = question.strip()
    if not chat_history or not FOLLOW_UP.search(question):
        return question
    previous = chat_history[-1].get("inputs", {}).get("question", "")
    return f"{previous} {question}".strip()
