from promptflow.core import tool
from text_unidecode import unidecode


@tool
def ascii(question: str) -> str:
    return unidecode(question)
