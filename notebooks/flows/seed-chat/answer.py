"""Write the answer from the passage found; yielded word by word so the endpoint can stream."""

from promptflow.core import tool

NOT_FOUND = (
    "I don't know: the article doesn't cover that. Try asking about quota, endpoints, "
    "deployments, connections or invoking the endpoint."
)


@tool
def answer(hit: dict):
    text = hit.get("text") or NOT_FOUND
    if hit.get("code"):
        text += " `" + " ".join(hit["code"].split()) + "`"
    for i, word in enumerate(text.split(" ")):
        yield word if i == 0 else " " + word
