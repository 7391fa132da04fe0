from promptflow.core import tool


@tool
def shout(question: str) -> str:
    """Lives outside the flow folder: reaches the flow only through additional_includes."""
    return question.upper() + "!"
