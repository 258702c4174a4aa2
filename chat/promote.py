"""Reading a promotion request: "이 모델 production으로 올려줘", "promote it to staging as
forklift-detector", "register the last run as model forklift with alias prod".

A message is a promotion when it says promote/승격/registry words, or names a deployment stage
(production, staging, 프로덕션, 운영, 스테이징) as where the model goes ("to production", "production으로
올려", "mark it as staging"). What it reads: the aliases (stage words, and any word written as an alias:
"alias canary", "별칭 canary"), the registered model's name ("as forklift-detector", "named forklift",
"forklift-detector라는 이름으로", "name=forklift"), and the runs it names (ids, readable run names).
Korean stage words become the English alias (프로덕션/운영 -> production, 스테이징 -> staging); the reply
says so. Whether it is a promotion and not a training request is decided in chat.assemble.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from chat.text import IC, blank
from core.registry_names import ALIAS_RE, MODEL_NAME_RE

PROMOTE_VERB = (r"\bpromot(?:e|ed|es|ing|ion)\b|\bmodel\s+registry\b|\bregistry\b|"
                r"\bregister\s+(?:it|this|that|the\s+(?:model|run|best|last|latest)|(?:this|that)\s+(?:model|run))\b|"
                r"승격|레지스트리|모델\s*(?:로|으로)?\s*등록|등록해\s*줘?|(?:배포|운영)\s*(?:용|모델)\s*(?:으로|로)")
# stage word -> the alias it means
STAGES = {"production": "production", "prod": "prod", "staging": "staging", "stage": "staging",
          "champion": "champion", "challenger": "challenger", "canary": "canary",
          "프로덕션": "production", "운영": "production", "스테이징": "staging"}
_STAGE = r"(?<![A-Za-z0-9_-])(production|prod|staging|champion|challenger|canary)(?![A-Za-z0-9_-])|(프로덕션|운영|스테이징)"
# the stage is where the model goes: "to production", "as staging", "production으로 올려", "production alias"
_STAGE_AS_TARGET = (r"(?:\bto\b|\binto\b|\bas\b|\bmark\w*|\btag\w*|\bmove\w*)\s+(?:the\s+)?(?:"
                    + _STAGE + r")|(?:" + _STAGE + r")\s*(?:으로|로|에|alias|별칭|태그|환경)")
_ALIAS_WORDS = (r"\balias(?:es)?\s*(?:=|:|\bof\b|\bto\b)?\s*(?P<a>[a-z][a-z0-9_-]{0,31})\b",
                r"(?P<a>[a-z][a-z0-9_-]{0,31})\s+alias\b",
                r"별칭\s*(?:은|을|를|으로|로|:|=)?\s*(?P<a>[a-z][a-z0-9_-]{0,31})",
                r"(?P<a>[a-z][a-z0-9_-]{0,31})\s*(?:라는\s*)?별칭")
_NAME = (r"(?:\bas\s+(?:a\s+|the\s+)?(?:model\s+)?|\bnamed\s+|\bcalled\s+|\bname\s*(?:it\s+|=|:|\bis\b)?\s*|"
         r"\bmodel\s+name\s*(?:=|:|\bis\b)?\s*|\bunder\s+(?:the\s+name\s+)?|이름\s*(?:은|을|:|=)?\s*)"
         r"(?P<n1>[A-Za-z0-9][A-Za-z0-9._-]{0,63})(?![A-Za-z0-9._-])|"
         r"(?P<n2>[A-Za-z0-9][A-Za-z0-9._-]{0,63}) ?(?:이?라는|이란|라고 ?하는)? ?이름(?:으로|에)?|"
         r"(?P<n3>[A-Za-z0-9][A-Za-z0-9._-]{0,63}) ?(?:으로|로) ?(?:등록|승격)|"
         r"(?P<n4>[A-Za-z0-9][A-Za-z0-9._-]{0,63}) ?(?:이?라는 ?)?모델(?:으로|로|이름)")
STOPWORDS = {"with", "and", "its", "an", "as", "new", "my", "our", "your", "add", "set", "give", "use", "same", "please", "pls"}
NOT_NAMES = STOPWORDS | {"model", "models", "a", "the", "this", "that", "it", "run", "best", "last", "latest", "new", "version",
             "alias", "production", "prod", "staging", "stage", "champion", "challenger", "canary", "onnx", "openvino",
             "torchscript", "ncnn", "pytorch", "registry", "well", "is", "to", "vtp"}


@dataclass
class Promotion:
    name: str | None = None
    aliases: list[str] = field(default_factory=list)
    translated: list[tuple[str, str]] = field(default_factory=list)  # (word written, alias it became)
    best: bool = False  # "promote the best run": the conversation's best finished run, not its last


def is_promotion(text: str) -> bool:
    return bool(re.search(PROMOTE_VERB, text, IC) or re.search(_STAGE_AS_TARGET, text, IC))


def take_promotion(text: str) -> tuple[Promotion, str]:
    """(what a promotion request says, ``text`` with it blanked so later passes do not read it)."""
    found = Promotion(best=bool(re.search(r"\bbest\b|가장\s*좋은|제일\s*좋은|최고|젤\s*좋은", text, IC)))
    work = text
    for pattern in _ALIAS_WORDS:
        for m in re.finditer(pattern, work, IC):
            word = m.group("a").lower()
            if word in NOT_NAMES - set(STAGES) or not re.fullmatch(ALIAS_RE, word):
                continue
            alias = STAGES.get(word, word)
            if alias not in found.aliases:
                found.aliases.append(alias)
            work = blank(work, m.start(), m.end())
    for m in re.finditer(_NAME, work, IC):  # before the stage words are blanked: "as production" is no name
        word = next(g for g in (m.group("n1"), m.group("n2"), m.group("n3"), m.group("n4")) if g)
        if word.lower() in NOT_NAMES or not re.fullmatch(MODEL_NAME_RE, word.lower()) or not re.search(r"[a-z]", word, IC):
            continue
        found.name = word.lower()
        work = blank(work, m.start(), m.end())
        break
    for m in re.finditer(_STAGE, work, IC):
        word = (m.group(1) or m.group(2)).lower()
        alias = STAGES[word]
        if alias not in found.aliases:
            found.aliases.append(alias)
        if word != alias:
            found.translated.append((m.group(0), alias))
        work = blank(work, m.start(), m.end())
    for m in re.finditer(PROMOTE_VERB, work, IC):
        work = blank(work, m.start(), m.end())
    work = re.sub(r"올려\s*(?:줘|주세요|줄래|줄\s*수)?|올리(?:자|기|고)|승격|\b(?:mark|tag|set|move|make|put|add|place)\w*\b|\bin\s+the\b|지정|달아|붙여|설정|해\s*줘|\bbest\b|가장\s*좋은|제일\s*좋은|최고",
                  lambda m: " " * len(m.group(0)), work, flags=IC)  # blanked, offsets kept
    return found, work
