"""A tiny knowledge base over ``knowledge.md`` (the article this notebook follows).

No LLM and no network: the article is split into sections and passages, and a question is
answered with the passage that scores best under BM25 (written out below, ~40 lines).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

KNOWLEDGE = Path(__file__).with_name("knowledge.md")

STOPWORDS = frozenset(
    """a an and are as at be by can do does for from how i if in into is it its me my of on
    or should so that the their then there these this to use used using was we what when where
    which who why will with you your yours about also after before but just only want need
    like would could tell please than them they our us any all each one two more some
    """.split()
)
# A few words people ask with that the article says differently.
SYNONYMS = {
    "long": ["minute"],
    "time": ["minute"],
    "slow": ["minute"],
    "core": ["quota", "vm"],
    "cpu": ["quota", "core"],
    "cost": ["quota"],
    "key": ["authentication"],
    "auth": ["authentication"],
    "secret": ["connection"],
    "call": ["invoke"],
    "query": ["invoke"],
    "score": ["invoke"],
    "request": ["invoke"],
    "test": ["invoke"],
    "split": ["traffic"],
    "rollout": ["traffic"],
    "log": ["status"],
    "health": ["status"],
    "override": ["connection"],
}


def stem(word: str) -> str:
    """A crude suffix stripper: deployment/deploying/deployed/deploys -> deploy."""
    for suffix in ("ments", "ment", "ings", "ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def tokens(text: str) -> list[str]:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return [stem(w) for w in words if w not in STOPWORDS and len(w) > 1]


def expand(query_tokens: list[str]) -> list[str]:
    out = list(query_tokens)
    for tok in query_tokens:
        out.extend(SYNONYMS.get(tok, []))
    return out


@dataclass(frozen=True)
class Passage:
    section: str
    text: str


def _clean(block: str) -> str:
    """Markdown to plain sentences: links to their text, notes and tables flattened."""
    block = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", block)  # images
    block = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", block)  # links
    block = re.sub(r"^\s*>\s?(\[!\w+\])?", "", block, flags=re.M)  # > [!NOTE]
    block = re.sub(r"<br>", " ", block)
    block = re.sub(r"\*\*([^*]+)\*\*", r"\1", block)
    block = re.sub(r"^\s*[-|]+\s*$", "", block, flags=re.M)  # table rules
    block = re.sub(r"^\s*\|(.*)\|\s*$", lambda m: m.group(1).replace("|", ":"), block, flags=re.M)
    return re.sub(r"[ \t]+", " ", block).strip()


@lru_cache(maxsize=1)
def passages() -> tuple[Passage, ...]:
    text = KNOWLEDGE.read_text(encoding="utf-8")
    text = re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.S)  # front matter
    base = section = "Introduction"
    out: list[Passage] = []
    buf: list[str] = []
    in_code = False

    def flush() -> None:
        block = "\n".join(buf).strip()
        buf.clear()
        if not block:
            return
        if block.startswith("```"):
            out.append(Passage(section, block))
        else:
            cleaned = _clean(block)
            if len(cleaned) > 20:
                out.append(Passage(section, cleaned))

    for line in text.splitlines():
        if line.strip().startswith("```"):
            if not in_code:
                flush()
                in_code = True
                buf.append(line.strip())
                continue
            buf.append(line.strip())
            in_code = False
            flush()
            continue
        if in_code:
            buf.append(line)
            continue
        heading = re.match(r"^#{1,4}\s+(.*)", line)
        if heading:
            flush()
            tab = re.match(r"\[([^\]]+)\]\(#tab/", heading.group(1))
            if tab:  # "# [Kubernetes online endpoint](#tab/kubernetes)": a tab of the section
                section = f"{base} ({tab.group(1)})"
            else:
                base = section = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", heading.group(1)).strip()
            continue
        if line.strip() == "---":  # end of a group of tabs
            flush()
            section = base
            continue
        if not line.strip():
            flush()
            continue
        buf.append(line)
    flush()
    return tuple(out)


class BM25:
    def __init__(self, docs: list[list[str]], k1: float = 1.4, b: float = 0.75):
        self.docs, self.k1, self.b = docs, k1, b
        self.avg = sum(len(d) for d in docs) / max(len(docs), 1)
        df = Counter(t for d in docs for t in set(d))
        n = len(docs)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}
        self.tf = [Counter(d) for d in docs]

    def score(self, query: list[str], i: int) -> float:
        tf, length, s = self.tf[i], len(self.docs[i]), 0.0
        for t in query:
            if t in tf:
                f = tf[t]
                norm = self.k1 * (1 - self.b + self.b * length / self.avg)
                s += self.idf[t] * f * (self.k1 + 1) / (f + norm)
        return s


@lru_cache(maxsize=1)
def index() -> BM25:
    # A passage is found by its own words and, more weakly, by its section's title.
    return BM25([tokens(p.text) + tokens(p.section) for p in passages()])


def search(query: str, k: int = 3, focus: str = "") -> list[tuple[float, Passage]]:
    """Best passages for ``query``; words of ``focus`` (the newest question) count twice."""
    q = expand(tokens(query) + tokens(focus))
    ps, bm = passages(), index()
    scored = [(bm.score(q, i), p) for i, p in enumerate(ps) if not p.text.startswith("```")]
    scored.sort(key=lambda sp: -sp[0])
    return scored[:k]


def best_sentences(text: str, query: str, max_chars: int) -> str:
    """The sentences of a passage that match the query best, in their order, within max_chars."""
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z`(])", text)
    q = set(expand(tokens(query)))
    ranked = sorted(range(len(sentences)), key=lambda i: (-len(q & set(tokens(sentences[i]))), i))
    keep: list[int] = []
    used = 0
    for i in ranked:
        if keep and used + len(sentences[i]) > max_chars:
            continue
        keep.append(i)
        used += len(sentences[i]) + 1
    out = " ".join(sentences[i] for i in sorted(keep))
    return out if len(out) <= max_chars + 120 else out[:max_chars].rsplit(" ", 1)[0] + " ..."


def code_after(passage: Passage) -> str | None:
    """The code block after a passage that introduces it ("... run the following code:")."""
    ps = passages()
    i = ps.index(passage)
    introduces = passage.text.rstrip().endswith(":") or len(passage.text) < 80
    if introduces and i + 1 < len(ps) and ps[i + 1].text.startswith("```"):
        body = ps[i + 1].text.strip("`").split("\n", 1)
        return body[1].strip() if len(body) > 1 else None
    return None
