from promptflow.core import tool
from text_unidecode import unidecode  # declared in requirements.txt, not in pfmagic


@tool
def ascii(question: str) -> str:
    return unidecode(question)
