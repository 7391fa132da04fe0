"""Find the passage of the article that answers the (standalone) question."""

from kb import best_sentences, code_after, search
from promptflow.core import tool

MAX_CHARS = 360


@tool
def retrieve(query: str, question: str) -> dict:
    hits = search(query, k=3, focus=question)
    if not hits or hits[0][0] <= 0:
        return {"section": "", "text": "", "code": "", "score": 0.0}
    score, best = hits[0]
    return {
        "section": best.section,
        "text": best_sentences(best.text, f"{query} {question}", MAX_CHARS),
        "code": code_after(best) or "",
        "score": round(score, 2),
    }
