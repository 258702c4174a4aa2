"""chat/: natural language (Korean or English) -> a TrainSpec, one conversation turn at a time.

    from chat import parse
    result = parse("coco8 데이터셋으로 YOLO11n 50에폭 학습해줘")
    result.spec, result.missing, result.question, result.notes, result.intent
    spec = result.train_spec()   # core.spec.parse_spec: the final validation

The offline parser answers unless an LLM is configured (VTP_LLM_BASE_URL / VTP_LLM_MODEL).
"""

from chat.llm_settings import LLMSettings
from chat.parser import parse
from chat.result import INTENTS, ParseResult

__all__ = ["INTENTS", "LLMSettings", "ParseResult", "parse"]
