"""A small deterministic rule-based sentence splitter for plain paragraphs.

Good enough for pretraining data (a wrong split only moves where a segment may end); it has no model,
no locale and no state, so the same text always splits the same way on every machine.
"""

import re

# End punctuation, optional closing quotes/brackets, whitespace, then something that can start a sentence.
_BOUNDARY = re.compile(r"[.!?][\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_ABBREVIATIONS = frozenset(
    "e.g. i.e. etc. vs. cf. al. mr. mrs. ms. dr. prof. sr. jr. st. no. fig. eq. vol. approx. "
    "jan. feb. mar. apr. jun. jul. aug. sep. sept. oct. nov. dec. inc. ltd. co. corp. dept.".split())
_INITIALS = re.compile(r"(?:[A-Za-z]\.)+")


def split_sentences(text: str) -> list[str]:
    """Splits running text into sentences; never returns empty strings."""
    sentences, start = [], 0
    for match in _BOUNDARY.finditer(text):
        words = text[start:match.start() + 1].split()
        last = words[-1] if words else ""
        if last.lower() in _ABBREVIATIONS or _INITIALS.fullmatch(last):
            continue
        sentences.append(text[start:match.end()].strip())
        start = match.end()
    sentences.append(text[start:].strip())
    return [s for s in sentences if s]
