"""What is left of a request once every pass took its words: the words the parser could not place.

Filler is not 'unplaced': English function words and politeness, Korean particles, endings and
request verbs ('해줘', '좀', '모델', '학습'), punctuation. What remains is said in the reply, so nothing
the person wrote is dropped without a word.
"""

from __future__ import annotations

import re

from chat.lexicon import NOT_DATASETS

_EN_FILLER = frozenset(re.split(r"\s+", """
hi hey hello thanks thank thx pls plz kindly could would can will you i we me my want wanna need like let lets let's
model models train trained training trains fine fine-tune fine-tuning finetune finetuning tune tuning tuned
for with on in of to the a an and or but please using use via by at as is are be it this that then also too
some quick quickly small little bit maybe want something thing build create make made get do run running
ok okay sure yes yeah cool great good nice hmm um uh well so just really very much more less times epochs
up down set setting settings value values option options parameter parameters config configuration
classifier detector segmenter network net job run experiment experiments one after then when done finished
finish training's spend than more no wait hmm maybe instead rather actually sorry let's go with it them
within under most least budget limit time don't dont do not max min maximum minimum i'd i'm i'll u ur real
""".strip())) | NOT_DATASETS
# Korean words (after their particles and endings are cut) that carry no field.
_KO_FILLER = re.compile(
    r"^(?:모델|학습|훈련|트레이닝|파인\s*튜닝|파인튜닝|튜닝|만들|만들어|돌려|돌리|해|하|해줘|해주세요|해줄래|해봐|해볼래|"
    r"부탁|좀|그냥|한번|한\s*번|같이|혹시|제발|진짜|정말|일단|우선|먼저|그리고|그럼|그러면|근데|그래서|또|및|이랑|"
    r"사용|써서|써|쓰고|써줘|이용|가지고|갖고|로|으로|에서|에|을|를|은|는|이|가|도|만|요|용|걸로|거로|것|거|게|"
    r"주세요|줘|줄래|시켜|시켜줘|진행|설정|세팅|값|정도|쯤|까지|부터|하고|싶어|싶어요|싶습니다|싶은데|원해|필요|"
    r"되나|될까|할까|될까요|할까요|가능|가능해|어때|어떄|괜찮|하는데|하는|할|한|하게|되게|으로요|로요|이요|입니다|"
    r"이미지|사진|데이터|버전|사이즈|기본|디폴트|최대|최소|안에|이내|내로|동안|까지만|빠르게|천천히|많이|조금|다|더|"
    r"대신|말고|없이|빼고|쓰지|말고요|쓰지말고|안|않고|하지|마|주라|ㅎㅎ|ㅋㅋ|ㅠㅠ|^^|네|예|응|음|아|어|오|저|제|나|내|우리|"
    r"너무|많나|많아|적나|적어|아니|아니야|아냐|아니요|그거|이거|저거|그걸|이걸|뭐|뭘|어떻게|왜|언제|어디|누가|"
    r"확인|보고|보여|결과|성능|정확도|빠른|좋은|잘|해서|하면|되면|할게|할게요|합니다|해요|했어|했으면|있어|있나|"
    r"내보내기|변환|포함|까지도|추가|같은|똑같이|다음|이번|이번엔|이번에는|다시|지금|바로|클래스|객체|물체|"
    r"안녕|안녕하세요|감사|감사합니다|고마워|하나|한개|시간|분|제한|이내|추정|예측|끝나면|끝나고|끝내|후에|다음에|뒤에|하다가|했다가|하자|해보자|써볼래|써봐|해볼까)$")
_PARTICLE_TAIL = re.compile(r"(?:으로요|으로는|으로|로는|로요|로|에서|에게|까지|부터|이랑|랑|하고|와|과|은|는|을|를|이|가|도|만|요|의|에)$")
_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9_.'+-]*[A-Za-z0-9]|[A-Za-z]|[가-힣]+|\d+(?:\.\d+)?[A-Za-z가-힣%]*")


def unplaced_words(work: str, limit: int = 8) -> list[str]:
    """The words left in ``work`` (the request with everything read blanked out) that are not filler,
    as written, in order, at most ``limit``."""
    out: list[str] = []
    for m in _TOKEN.finditer(work):
        word = m.group(0).strip(".'-")
        if not word or word in out or is_filler(word):
            continue
        out.append(word)  # a bare number no field took is worth saying too
        if len(out) >= limit:
            break
    return out


def is_filler(word: str) -> bool:
    """Whether ``word`` carries no field: an English function word, a Korean particle, ending or request verb."""
    if re.fullmatch(r"[A-Za-z].*", word):
        return word.lower() in _EN_FILLER or len(word) == 1
    if re.fullmatch(r"[가-힣]+", word):
        stem = word
        while len(stem) > 1 and _PARTICLE_TAIL.search(stem):
            shorter = _PARTICLE_TAIL.sub("", stem)
            if shorter == stem:
                break
            stem = shorter
        return len(stem) <= 1 or bool(_KO_FILLER.match(stem) or _KO_FILLER.match(word)) or _ko_verb(stem)
    return False


def _ko_verb(word: str) -> bool:
    """Request verbs and their endings: 만들어줘, 돌려주세요, 학습시켜줘, 해주실래요, 학습해봐."""
    return re.search(r"(?:해|하|시켜|돌려|만들어|줘|주세요|주실|줄래|봐|볼래|보자|하자|할래|합시다|드려|싶|요|다|까|죠|네|게|고|서|면|데)"
                     r"(?:요|줘|주세요|봐|보자|다|까|죠)?$", word) is not None
