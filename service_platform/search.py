"""Catalogue search that works for Chinese: substrings, pinyin initials ("gjj" → 公积金) and full pinyin ("hukou").

Pinyin keys are computed once when a service is seeded (:func:`build_keys`) and stored on the row; a query is
scored against a :class:`SearchDoc` by :func:`score`. Ranks, best first:

=====  =============================================================
100    exact name
 90    name starts with the query
 80    name contains the query
 70    full pinyin or initials of the name start with the query
 65    pinyin/initials of a keyword start with the query
 60    name pinyin matches from a later syllable, or name initials contain the query
 55    keyword pinyin/initials contain the query
 50    a keyword equals / contains the query
 45    English name contains the query
 40    department contains the query
=====  =============================================================

A query with several words (``公积金 提取``) must match every word; its score is the weakest word's. Several
Latin-letter words (``gong ji jin``) are taken as one pinyin phrase.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from pypinyin import Style, lazy_pinyin

SEGMENT_SEP = "|"
_ALNUM = re.compile(r"[0-9a-z]+")
_LATIN_QUERY = re.compile(r"^[a-z]+$")


def _syllables(text: str) -> list[str]:
    """Pinyin syllables of the Han characters, lower-case alphanumeric runs of anything else."""
    out: list[str] = []
    for piece in lazy_pinyin(text, style=Style.NORMAL, errors="default"):
        out.extend(_ALNUM.findall(unicodedata.normalize("NFKC", piece).lower()))
    return out


def _initials(syllables: list[str]) -> str:
    return "".join(s if s.isdigit() else s[0] for s in syllables)


def build_keys(name: str, keywords: list[str] | tuple[str, ...] = ()) -> tuple[str, str]:
    """(initials key, full pinyin key) for the name and each keyword, segments joined by ``|``.

    >>> build_keys("住房公积金提取", ["公积金"])
    ('zfgjjtq|gjj', 'zhu fang gong ji jin ti qu|gong ji jin')
    """
    initials, full = [], []
    for text in (name, *keywords):
        syl = _syllables(text)
        initials.append(_initials(syl))
        full.append(" ".join(syl))
    return SEGMENT_SEP.join(initials), SEGMENT_SEP.join(full)


def normalize_query(q: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", q).lower().split())


@dataclass(frozen=True)
class SearchDoc:
    name: str
    name_en: str = ""
    department: str = ""
    keywords: tuple[str, ...] = ()
    initials_key: str = ""
    pinyin_key: str = ""

    @classmethod
    def build(cls, name: str, name_en: str = "", department: str = "",
              keywords: list[str] | tuple[str, ...] = ()) -> SearchDoc:
        initials, full = build_keys(name, keywords)
        return cls(name, name_en, department, tuple(keywords), initials, full)


def _pinyin_match(q: str, syllable_text: str) -> int:
    """2: matches from the first syllable, 1: from a later syllable boundary, 0: no match."""
    syl = syllable_text.split()
    joined = "".join(syl)
    if joined.startswith(q):
        return 2
    pos = 0
    for s in syl[:-1]:
        pos += len(s)
        if joined.startswith(q, pos):
            return 1
    return 0


def _score_term(q: str, doc: SearchDoc) -> int:
    name = doc.name.lower()
    if q == name:
        return 100
    if name.startswith(q):
        return 90
    if q in name:
        return 80
    best = 0
    if _LATIN_QUERY.match(q) and len(q) >= 2:
        init_segs = doc.initials_key.split(SEGMENT_SEP) if doc.initials_key else [""]
        full_segs = doc.pinyin_key.split(SEGMENT_SEP) if doc.pinyin_key else [""]
        name_init, kw_inits = init_segs[0], init_segs[1:]
        name_full, kw_fulls = full_segs[0], full_segs[1:]
        name_py = _pinyin_match(q, name_full)
        if name_init.startswith(q) or name_py == 2:
            return 70
        if any(k.startswith(q) for k in kw_inits) or any(_pinyin_match(q, k) == 2 for k in kw_fulls):
            best = 65
        elif name_py == 1 or q in name_init:
            best = 60
        elif any(q in k for k in kw_inits) or any(_pinyin_match(q, k) for k in kw_fulls):
            best = 55
    if best:
        return best
    if any(q in k.lower() for k in doc.keywords):
        return 50
    if q in doc.name_en.lower():
        return 45
    if q in doc.department.lower():
        return 40
    return 0


def score(query: str, doc: SearchDoc) -> int:
    """How well ``doc`` matches ``query`` (0: not at all). See the module docstring for the ranks."""
    q = normalize_query(query)
    if not q:
        return 1
    whole = _score_term(q, doc)
    if whole:
        return whole
    terms = q.split(" ")
    if len(terms) == 1:
        return 0
    compact = _score_term("".join(terms), doc)  # "gong ji jin": pinyin typed with spaces is one phrase
    if all(_LATIN_QUERY.match(t) for t in terms):
        return compact
    return max(min(_score_term(t, doc) for t in terms), compact)


def rank(query: str, docs: list[tuple[SearchDoc, object]]) -> list[tuple[int, object]]:
    """Score every (doc, payload) pair, drop misses, best first (stable, so catalogue order breaks ties)."""
    scored = [(score(query, doc), payload) for doc, payload in docs]
    hits = [(s, p) for s, p in scored if s > 0]
    hits.sort(key=lambda sp: -sp[0])
    return hits
