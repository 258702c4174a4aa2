"""The words the offline parser knows, in Korean and English. Data only: the matching lives in offline.py.

Patterns are regular-expression fragments matched with re.IGNORECASE | re.ASCII against the request
after model names, dataset names and URIs have been blanked out of it. re.ASCII makes ``\\b`` a
boundary between a Latin word and Hangul too ('cpu로'); patterns that start with Hangul say so
with explicit look-arounds instead.
"""

from __future__ import annotations

import re

# Task words, strongest first: when a request names two tasks, the more specific one wins
# ('rotated box detection' is obb, 'keypoint detection' is pose, 'a classifier that detects' is classify).
TASK_WORDS: tuple[tuple[str, str], ...] = (
    ("obb", r"\bobb\b|oriented|rotated\s*(?:bounding\s*)?box|rotated\s*(?:bbox|object|rectangle)|회전\s*(?:된\s*)?(?:바운딩\s*)?박스|"
            r"회전\s*바운딩|기울어진\s*(?:바운딩\s*)?박스|방향성?\s*박스|회전\s*(?:된\s*)?(?:객체|물체|탐지|검출)"),
    ("pose", r"\bpose\b|poses\b|keypoints?|key\s+points?|skeletons?|landmarks?|자세|포즈|키\s*포인트|관절|골격|스켈레톤"),
    ("segment", r"\bsegment(?:ation|er|ing|s)?\b|\bseg\b|instance\s+mask|\bmasks?\b|분할|세그|마스크"),
    ("classify", r"\bclassif(?:y|ication|ier|iers|ying|ied)\b|\bcategori[sz](?:e|ation|ing)\b|\bcls\b|"
                 r"image\s+recognition|분류|클래시피케이션|클래스\s*판별|카테고리\s*구분"),
    ("detect", r"\bdetect(?:ion|or|ors|ing|s)?\b|bounding\s*box(?:es)?|\bbbox(?:es)?\b|object\s+localization|"
               r"탐지|검출|감지|디텍션|디텍터|(?:객체|물체|사물)\s*인식|바운딩\s*박스|박스\s*(?:치기|쳐)"),
)
# Phrases in which a task word means something else ('데이터 분할' is a train/val split).
TASK_FALSE_FRIENDS = r"(?:데이터(?:셋)?|검증|학습|train|val)\s*(?:셋\s*)?분할|split|분할\s*비율|mask\s*ratio|overlap\s*mask"

TASK_NAMES_KO = {"detect": "탐지", "segment": "분할", "classify": "분류", "pose": "자세 추정", "obb": "회전 박스 탐지"}



def framework_words() -> tuple[tuple[str, str], ...]:
    """(framework, how people name it) for each installed framework: its capabilities' ``words``."""
    from core.frameworks import all_capabilities

    return tuple((c.framework, c.words or re.escape(c.framework)) for c in all_capabilities())

# YOLO sizes as words; 'small'/'large' count only next to a model word (see offline.SIZE_CONTEXT).
SIZE_WORDS: dict[str, str] = {
    "nano": "n", "나노": "n", "small": "s", "스몰": "s", "medium": "m", "미디엄": "m", "미디움": "m",
    "large": "l", "라지": "l", "xlarge": "x", "x-large": "x", "extra-large": "x", "extra large": "x",
    "extralarge": "x", "엑스라지": "x", "엑스트라 라지": "x", "huge": "x",
}
# Superlatives and comparatives, in either language.
SIZE_PHRASES: tuple[tuple[str, str], ...] = (
    ("n", r"(?:가장|제일|젤|최대한|최고로)\s*(?:가벼운|작은|빠른|가볍게|작게|빠르게)|초경량|경량|"
          r"\b(?:smallest|lightest|fastest|tiniest)\b|\bas\s+(?:small|light|fast)\s+as\s+possible\b|"
          r"\blight(?:weight)?\s+model\b"),
    ("x", r"(?:가장|제일|젤|최대한|최고로)\s*(?:정확한|정확하게|큰|무거운|성능\s*좋은|좋은)|정확도\s*(?:가\s*)?(?:제일|가장|최고)|"
          r"\b(?:largest|biggest|most\s+accurate|best\s+accuracy|highest\s+accuracy|heaviest)\b"),
    ("s", r"작은\s*(?:모델|버전|사이즈|걸로|거로|것으로)|\bsmall\s+(?:model|version|variant|one)\b"),
    ("m", r"중간\s*(?:크기|사이즈)?\s*(?:모델|버전|걸로|거로|것으로)|중간\s*(?:크기|사이즈)|\bmedium(?:-sized)?\s+(?:model|version|one)\b|\bmid-?size"),
    ("l", r"큰\s*(?:모델|버전|사이즈|걸로|거로|것으로)|\b(?:large|big)\s+(?:model|version|variant|one)\b"),
)
# One size up or down from the previous model (an edit).
SIZE_STEP_UP = r"더\s*큰|한\s*단계\s*(?:큰|위)|\b(?:bigger|larger)\b|size\s+up|one\s+size\s+up|키워서\s*모델|모델\s*키워"
SIZE_STEP_DOWN = r"더\s*(?:작은|가벼운)|한\s*단계\s*(?:작은|아래)|\b(?:smaller|lighter)\b|size\s+down|모델\s*줄여"

# Intent phrases. Confirm and cancel count only when the message sets no field.
CONFIRM = (r"^(?:응|웅|어|네|넵|넹|예|yes|yep|yeah|yup|sure|ok|okay|okey|오케이|ㅇㅇ|ㅇㅋ|ㅇㅋㅇㅋ|좋아요?|좋습니다|그래|그래요|"
           r"콜|고고|ㄱㄱ|가자|go|lgtm|confirm(?:ed)?|proceed|start|시작|진행|실행|출발|y|👍|확인)(?![A-Za-z0-9가-힣])|"
           r"go\s+ahead|let'?s\s+go|do\s+it|run\s+it|start\s+(?:it|training|the\s+run|now)|kick\s+it\s+off|sounds\s+good|"
           r"looks\s+good|ship\s+it|launch|그대로\s*(?:진행|시작|실행|돌려)|시작\s*(?:해|하자|할게|합시다|해줘|해주세요)|"
           r"진행\s*(?:해|하자|해줘|해주세요|시켜)|돌려\s*(?:줘|주세요|봐)?$|학습\s*(?:시작|진행)|맞아|맞습니다|그걸로|좋네|"
           r"그렇게\s*(?:해|하자|진행)|부탁(?:해|드려|합니다)?$")
CANCEL = (r"^(?:아니|아니요|아뇨|아니오|노|no|nope|nah|cancel|abort|stop|취소|중지|중단|그만|됐어|됐습니다|멈춰|ㄴㄴ|n)(?![A-Za-z0-9가-힣])|"
          r"never\s*mind|forget\s+(?:it|that)|don'?t\s+(?:start|run|train)|취소\s*(?:해|할게|합니다|해줘)|"
          r"하지\s*마|안\s*할래|안\s*해|그만\s*(?:둬|해)|멈춰|중지\s*(?:해|시켜)|스톱|cancel\s+(?:it|that|the\s+run)")
RETRY = (r"\bretry\b|re-?run|run\s+(?:it|that)\s+again|try\s+(?:it\s+|that\s+)?again|\bagain\b|one\s+more\s+time|"
         r"same\s+(?:run|thing)\s+again|다시|재시도|재실행|재학습|한\s*번\s*더|한번\s*더|또\s*(?:돌려|해)|똑같이")
RESUME = (r"\bresume\b|continue\s+(?:the\s+)?(?:training|run|from)|continue(?:\s+(?:with|for))?(?:\s+another)?(?:\s+(?:please|pls))?[\s.!]*$|continue\s+(?:with\s+|for\s+)?(?:another\s+)?(?:\S+\s+)?more\b|"
          r"keep\s+(?:training|going)|pick\s+up\s+where|from\s+(?:the\s+)?(?:last\s+)?checkpoint|"
          r"이어서|이어\s*(?:학습|하기|서)|재개|계속\s*(?:학습|훈련|이어)|중단된\s*(?:학습|곳)|멈춘\s*(?:곳|데)")
# Comparing finished runs ("compare the last two", "어느 게 더 나아?"). Checked before retry/resume.
# asking to export (a finished run, when nothing else is said): "onnx랑 openvino로 export해줘", "export it to ncnn"
EXPORT_VERB = r"\bexport(?:s|ed|ing)?\b|내보내|익스포트|엑스포트|변환해|변환\s*해"
COMPARE = (r"\bcompar(?:e|ed|ing|ison)\b|\bvs\.?(?![A-Za-z])|\bversus\b|side\s+by\s+side|"
           r"which\s+(?:one\s+|run\s+|model\s+)?(?:is|was|did|does|performed|works?)\s+(?:better|best|worse)|"
           r"which\s+(?:one\s+|run\s+|model\s+)?(?:won|wins)|(?:difference|diff)\s+between|how\s+do\s+they\s+compare|"
           r"비교|(?:어느|어떤|무슨)\s*(?:게|것이|거|쪽이?|모델이?|실행이?|결과가?)\s*(?:더\s*)?(?:나아|낫|좋|우수|잘)|"
           r"뭐가\s*(?:더\s*)?(?:나아|낫|좋)|차이(?:가|는|점)?\s*(?:뭐|어때|있|알려|보여)|어느\s*쪽")
# A run named in a message: an 8+ hex id prefix or a readable run name (model-dataset-n).
RUN_REF = r"(?<![A-Za-z0-9_-])(?:[0-9a-f]{8}(?:-[0-9a-f]{4}){0,3}(?:-[0-9a-f]{12})?|[a-z0-9][a-z0-9.]*(?:-[a-z0-9.]+)+-\d+)(?![A-Za-z0-9_-])"
# Words that mark a message as a change to the previous spec rather than a new request.
EDIT_MARKERS = (r"같은\s*(?:설정|조건|걸로|데이터|모델|스펙)|동일한?\s*(?:설정|조건)|그대로|만\s*(?:바꿔|변경|늘려|줄여)|"
                r"바꿔|바꾸|변경|대신|이번엔|이번에는|이번엔|말고|늘려|줄여|올려|낮춰|높여|"
                r"\bsame\b|\binstead\b|\bnow\b|\bchange\b|\bswitch\b|\bmake\s+it\b|\bbump\b|\bincrease\b|\bdecrease\b|"
                r"\breduce\b|\blower\b|\braise\b|\bbut\s+with\b|\bonly\b|\bjust\b|\bwhat\s+about\b|\bhow\s+about\b|"
                r"\btry\b|\buse\b|\bset\b|\bwith\s+(?:a\s+)?(?:bigger|smaller)")
NEW_MARKERS = r"\bnew\b|\banother\b|\bfrom\s+now\b|새로운?|새\s*(?:모델|학습|작업|실험)|다른\s*(?:작업|실험)"
# Words asking to run right away (so the API may skip a confirmation).
START_WORDS = (r"학습\s*(?:해|시켜|돌려|시작)|훈련\s*(?:해|시켜|시작)|돌려|실행|시작|만들어|해\s*줘|해\s*주세요|해\s*봐|하자|"
               r"시켜|\btrain\b|\bfine-?tune\b|"
               r"\brun\b|\bstart\b|\blaunch\b|\bkick\s+off\b|\bgo\b")

# Relative changes: field word + factor.
DOUBLE = r"두\s*배(?!치)|2\s*배(?!치)|\bdouble\b|\btwice\b|x\s*2\b|×\s*2"
HALVE = r"절반|반으로|반만|\bhalf\b|\bhalve\b|/\s*2\b"

# Words that are never a dataset name even in a dataset-shaped phrase.
NOT_DATASETS = frozenset(re.split(r"\s+", """
a an the my our your this that these those it its his her their some any all new same other another
data dataset datasets set images image photos pictures files folder model models network weights checkpoint
gpu gpus cpu cuda mps cuda0 cuda1 gpu0 gpu1 device epoch epochs batch batches size imgsz lr seed workers
patience yolo yolo11 yolov8 yolo26 timm ultralytics huggingface hf pytorch torch sgd adam adamw rmsprop amp
fp16 bf16 detection detect segmentation segment classification classify pose obb train training test val
validation scratch default defaults please pls now then again instead only just same top bottom each every
one two three four five ten hundred me us you them him here there what which where when how why who
with without from for on in into at to of by and or but not no yes ok okay go start run stop cancel
local remote cloud disk storage bucket s3 file http https url link web internet
objects object things stuff items classes labels annotations coco-format yolo-format imagefolder
custom labeled labelled annotated own sample samples toy small large big tiny public private internal
synthetic real raw binary multiclass multi-class multilabel multi-label laptop machine server cluster
computer mac macbook colab notebook production prod dev staging top best fast slow quick quickly
should would could can will do does did is are was were be been i we they he she let lets let's please
need want like use using used make made get got give set run runs ran try tried see show tell ask
about above after before over under between through during than also very more most less least
so if else as such any each few many much own same both either neither only just again still yet
nano medium xlarge mosaic mixup cutmix dropout warmup momentum optimizer cosine cos fp32 lr0 default
fine-tuning finetuning fine-tune finetune fine-tuned pretrained pre-trained pretrain scratch augmentation augment
export exports exported onnx torchscript tflite openvino coreml engine tensorrt ncnn accumulate accumulation
gradient split ratio fraction hour hours minutes budget time class
""".strip()))
# Words that introduce or follow a dataset name.
DATASET_KO_ONLY = r"데이터\s*셋|데이터셋|데이터\s*세트|데이타셋|데이타|데이터|셋"
DATASET_KO = DATASET_KO_ONLY + r"|dataset|data\s*set"
DATASET_EN = r"dataset|data\s*set|data|images|photos|pictures|set|split|collection|folder|bucket"

# Field words for numbers (prefix-then-number and number-then-unit).
EPOCH_WORDS = r"에폭|에포크|이포크|epochs?|학습\s*횟수|훈련\s*횟수|반복\s*횟수|num_epochs|n_epochs|ep\b"
EPOCH_UNITS = r"에폭|에포크|이포크|epochs?|ep(?:s)?\b|번(?!째|\s*(?:gpu|지피유|그래픽))|회(?!차|전)|바퀴|rounds?|passes|times\b|cycles?"
IMAGE_SIZE_WORDS = (r"imgsz|img_size|image_size|image-size|img\s*size|image\s*size|input\s*size|input\s*resolution|"
                    r"(?:image|img|이미지)\s*(?:크기|사이즈|size)|\bimg\b|"
                    r"이미지(?=\s*(?:는|은|를|을)?\s*\d+(?!\s*(?:장|개|images)))|"
                    r"resolution|이미지\s*(?:크기|사이즈|해상도)|입력\s*(?:크기|사이즈|해상도)|인풋\s*(?:크기|사이즈)|"
                    r"해상도|이미지\s*크기|크기|사이즈|\bsize\b")
IMAGE_SIZE_UNITS = r"px|pixels?|픽셀|해상도|resolution|사이즈\s*이미지|size\s+images|(?:image|img|input)[\s_-]*(?:size|resolution)|imgsz"
BATCH_WORDS = r"batch[\s_-]*size|batchsize|batch\s*(?:크기|사이즈)|\bbatch\b|\bbs\b|미니\s*배치|배치\s*(?:사이즈|크기)|배치"
BATCH_UNITS = r"배치\s*(?:사이즈|크기)?|batch[\s_-]*size\b|batch(?:es)?\b|장\s*씩|개\s*씩|images?\s+per\s+(?:batch|step)|per\s+batch"
LR_WORDS = r"learning[\s_-]*rate|\blr0?\b|학습\s*률|학습률|러닝\s*레이트|lr\s*rate"
SEED_WORDS = r"\bseed\b|random\s+seed|시드|랜덤\s*시드"
PATIENCE_WORDS = r"\bpatience\b|early[\s_-]*stop(?:ping)?(?:\s+patience)?|조기\s*종료|얼리\s*스탑(?:핑)?|인내심?"
WORKER_WORDS = r"\b(?:num_)?workers?\b|data\s*loader\s+workers?|dataloader\s+workers?|워커|로더\s*워커"
PATIENCE_OFF = (r"(?:no|without|disable|turn\s+off)\s+early[\s_-]*stop(?:ping)?|early[\s_-]*stop(?:ping)?\s+(?:off|disabled)|"
                r"조기\s*종료\s*(?:끄|없이|안|off|하지|빼)|얼리\s*스탑\w*\s*(?:끄|없이|빼)")
SCRATCH = (r"from\s+scratch|no\s+pre-?train(?:ed|ing)?|without\s+pre-?train(?:ed|ing)?|random(?:ly)?\s+init\w*|"
           r"not\s+pre-?trained|pretrained\s*=?\s*(?:false|no|off)|처음부터|스크래치|사전\s*학습\s*(?:없이|안|하지|x|빼|끄|된\s*가중치\s*없이)|"
           r"사전\s*학습된?\s*(?:가중치|모델|weights?)\s*(?:없이|안|쓰지|사용하지|빼)|랜덤\s*초기화|초기\s*가중치\s*없이")
PRETRAINED = (r"\bpre-?trained\b(?!\s*=?\s*(?:false|no|off))|사전\s*학습\s*(?:된|한)?\s*(?:가중치|모델|weights?)|"
              r"imagenet\s+weights|이미지넷\s*가중치")
DEVICE_CPU = r"\bcpu\b|씨피유|시피유|cpu\s*only|gpu\s*없이|without\s+(?:a\s+)?gpu|no\s+gpu"
DEVICE_GPU = r"\bgpus?\b|\bcuda\b|지피유|그래픽\s*카드|그래픽카드"
DEVICE_MPS = r"\bmps\b|apple\s+silicon|맥북|\bm[1-4]\s+(?:mac|chip)"

# Natural names of framework overrides: (pattern, generic key). Generic keys are mapped to the
# framework's own key in assemble.py (dropout -> timm drop_rate).
OVERRIDE_WORDS: tuple[tuple[str, str], ...] = (
    (r"weight[\s_-]*decay|가중치\s*감쇠|웨이트\s*디케이", "weight_decay"),
    (r"\bmomentum\b|모멘텀", "momentum"),
    (r"warm[\s_-]*up(?:\s*epochs?)?|워밍\s*업|웜업", "warmup_epochs"),
    (r"label[\s_-]*smoothing|라벨\s*스무딩|레이블\s*스무딩", "label_smoothing"),
    (r"drop[\s_-]*out|드롭\s*아웃", "dropout"),
    (r"drop[\s_-]*path(?:[\s_-]*rate)?", "drop_path_rate"),
    (r"\bmosaic\b|모자이크", "mosaic"),
    (r"\bmix[\s_-]*up\b|믹스\s*업", "mixup"),
    (r"\bcut[\s_-]*mix\b|컷\s*믹스", "cutmix"),
    (r"copy[\s_-]*paste", "copy_paste"),
    (r"close[\s_-]*mosaic", "close_mosaic"),
    (r"\bfreeze\b|동결|프리즈", "freeze"),
    (r"fliplr|horizontal\s+flip|좌우\s*반전|hflip", "fliplr"),
    (r"flipud|vertical\s+flip|상하\s*반전", "flipud"),
    (r"\bdegrees\b|회전\s*각도", "degrees"),
)
OVERRIDE_OFF = r"(?:끄고|끄기|꺼|끈|없이|빼고|빼|off|disabled?|false|없는|no)"
OPTIMIZERS = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "nadam": "NAdam", "radam": "RAdam",
              "rmsprop": "RMSProp", "adamax": "Adamax", "lamb": "lamb", "lion": "lion"}
AMP_OFF = r"\bamp\s*(?:off|끄|false|없이)|mixed\s+precision\s+off|no\s+amp|혼합\s*정밀도\s*(?:끄|없이)|fp32\s*(?:only|로만)"
COS_LR = r"\bcos(?:ine)?[\s_-]*(?:lr|learning\s+rate|schedule|annealing)|코사인\s*(?:스케줄|lr|학습률)"


def _known_words() -> re.Pattern[str]:
    """Every word pattern above, as one regex: what is left after it (and the fillers) is unplaced."""
    parts = [p for _, p in TASK_WORDS] + [TASK_FALSE_FRIENDS, CONFIRM.replace("^", ""), CANCEL.replace("^", ""), RETRY, RESUME,
             COMPARE, EDIT_MARKERS, NEW_MARKERS, START_WORDS, DOUBLE, HALVE, EPOCH_WORDS, EPOCH_UNITS, IMAGE_SIZE_WORDS,
             IMAGE_SIZE_UNITS, BATCH_WORDS, BATCH_UNITS, LR_WORDS, SEED_WORDS, PATIENCE_WORDS, WORKER_WORDS, PATIENCE_OFF,
             SCRATCH, PRETRAINED, DEVICE_CPU, DEVICE_GPU, DEVICE_MPS, OVERRIDE_OFF, AMP_OFF, COS_LR, DATASET_KO, DATASET_EN]
    parts += [p for p, _ in OVERRIDE_WORDS] + [p for _, p in SIZE_PHRASES] + [SIZE_STEP_UP, SIZE_STEP_DOWN]
    parts += [re.escape(w) for w in (*SIZE_WORDS, *OPTIMIZERS)]
    from chat.negation import CORRECTION, NEG_AFTER

    parts += [CORRECTION.pattern, NEG_AFTER.pattern.split("(?P<neg>", 1)[1][:-1], r"\bmaybe|\bhmm+|\bwait|\bperhaps|아마|글쎄|흠+"]
    body = "|".join(f"(?:{p})" for p in sorted(parts, key=len, reverse=True))
    # whole words only on the Latin side ('no' is not in 'ignore'); on the Hangul side a word's particles and
    # endings go with it ('세그멘테이션', '에폭은')
    return re.compile(r"(?<![A-Za-z0-9])(?:" + body + r")(?![A-Za-z0-9])[가-힣]*", re.IGNORECASE | re.ASCII)


KNOWN_WORDS_RE = _known_words()
