"""What a parse returns (ParseResult) and what flows between its steps (Extraction, Context)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

from chat.model_names import ModelMention

Intent = Literal["new", "edit", "retry", "confirm", "cancel", "resume", "compare", "export", "promote"]
INTENTS: tuple[str, ...] = ("new", "edit", "retry", "confirm", "cancel", "resume", "compare", "export", "promote")
SPEC_ORDER = ("task", "framework", "model", "dataset", "epochs", "image_size", "batch_size", "device", "devices", "seed",
              "patience", "learning_rate", "pretrained", "workers", "val_fraction", "max_time", "accumulate", "classes",
              "export", "overrides")


class ParseResult(BaseModel):
    """One turn of the conversation, read.

    How the API acts on it:

    - ``intent`` new / edit / resume: show ``reply``; when ``ready`` (and ``start`` or after a confirm)
      submit ``train_spec()``. resume: resume the session's last run with ``spec``.
    - ``intent`` retry: submit ``spec`` (the previous spec, unchanged) again.
    - ``intent`` confirm: submit ``spec`` (the previous spec) when ``ready``; else ask ``question``.
    - ``intent`` cancel: drop the pending spec / stop the session's run; nothing to submit.
    - ``intent`` compare: compare finished runs — those in ``runs`` (ids or readable names), else the
      conversation's last two; the pending ``spec`` is kept; nothing to submit (api.compare).
    - ``intent`` export: export a finished run — the one in ``runs``, else the conversation's last —
      to ``formats`` and check each export (tasks.export); the pending ``spec`` is kept.
    - ``intent`` promote: promote a finished run — the one in ``runs``, else the conversation's last —
      to model ``registry_name`` (default <model>-<dataset>) with ``aliases``, shipping the export in
      ``formats`` when one is named (api.registry); the pending ``spec`` is kept.
    """

    intent: Intent = "new"
    spec: dict[str, Any] | None = Field(
        default=None,
        description="Every TrainSpec field known so far: stated, inherited from the previous spec, or inferred "
                    "(task, framework, model). May hold values TrainSpec does not accept yet; see errors.")
    missing: list[str] = Field(default_factory=list, description="Fields still needed: dataset, task, model (a "
                                                                 "model name that could be several known ones).")
    question: str | None = Field(default=None, description="What to ask the person, in their language.")
    notes: list[str] = Field(default_factory=list, description="Assumptions and refusals, in their language.")
    errors: list[str] = Field(default_factory=list, description="Why spec is not submittable as it stands.")
    valid: bool = Field(default=False, description="spec passes core.spec.parse_spec.")
    ready: bool = Field(default=False, description="valid, nothing missing, dataset registered or an allowed URI.")
    start: bool = Field(default=False, description="The person asked to run it now ('학습해줘', 'train', 'go').")
    changes: list[str] = Field(default_factory=list, description="Fields that differ from the previous spec.")
    runs: list[str] = Field(default_factory=list, description="Runs a compare or export request names (id prefixes "
                                                              "or readable names), in the order written.")
    formats: list[str] = Field(default_factory=list, description="Export formats an export request names (onnx, "
                                                                 "openvino, ...), as TrainSpec.export reads them.")
    best: bool = Field(default=False, description="A promote request asks for the best finished run, not the last.")
    registry_name: str | None = Field(default=None, description="The registered model a promote request names "
                                                                   "(forklift-detector); None: the default name.")
    aliases: list[str] = Field(default_factory=list, description="Aliases a promote request names (production, ...).")
    language: Literal["ko", "en"] = "en"
    source: Literal["offline", "llm"] = "offline"
    llm_calls: int = 0
    llm_error: str | None = None
    unplaced: list[str] = Field(default_factory=list, description="Words of the request the parser could not place, "
                                                                  "as written; the reply lists them.")
    reply: str = Field(default="", description="One message for the person: what was understood, plus the question.")

    def train_spec(self) -> Any:
        """The validated TrainSpec (core.spec.parse_spec); raises core.errors.SpecError when not valid."""
        from core.errors import SpecError
        from core.spec import parse_spec

        if self.spec is None:
            raise SpecError("nothing to train yet: " + (self.question or "name a dataset and a model or task"))
        return parse_spec(self.spec)

    def summary(self) -> dict[str, Any]:
        """The four keys `vtp parse` prints."""
        return {"spec": self.spec, "missing": self.missing, "question": self.question, "notes": self.notes}


@dataclass
class Context:
    """What a parse may consult: the registry, the storage root, and the conversation so far."""

    datasets: dict[str, Any]  # name -> tasks.dataset_store.DatasetRecord
    storage_url: str
    previous: dict[str, Any] | None = None
    registry_error: str | None = None

    @property
    def awaiting(self) -> set[str]:
        """Fields the previous turn asked for."""
        if self.previous is None:
            return set()
        need = set()
        if not self.previous.get("dataset"):
            need.add("dataset")
        if not self.previous.get("task") and not self.previous.get("model"):
            need.add("task")
        return need


@dataclass
class Extraction:
    """What one message says, before it meets the previous spec and the defaults."""

    lang: str = "en"
    fields: dict[str, Any] = field(default_factory=dict)  # TrainSpec fields as stated
    model: ModelMention | None = None
    size: str | None = None  # n s m l x from words ('가장 가벼운', 'the largest')
    size_step: int = 0  # +1 bigger / -1 smaller than the previous model
    overrides: dict[str, Any] = field(default_factory=dict)  # generic names (dropout, optimizer)
    scale: dict[str, float] = field(default_factory=dict)  # epochs x2, batch_size x0.5
    add: dict[str, int] = field(default_factory=dict)  # 50 more epochs
    intent: str | None = None  # confirm / cancel / retry / resume / compare / export / promote when said
    promotion: Any = None  # chat.promote.Promotion of a promote request
    runs: list[str] = field(default_factory=list)  # runs a comparison names (ids, readable names)
    edit_marker: bool = False
    new_marker: bool = False
    start: bool = False
    dataset_strength: str | None = None  # registered | uri | strong | weak
    notes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (replies key, args)
    clipped: bool = False
    source: str = "offline"
    negated: dict[str, str] = field(default_factory=dict)  # field -> the words that negated it ('pretrained 없이')
    corrected: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # field -> (value taken back, value kept)
    unplaced: list[str] = field(default_factory=list)  # words no pass could place
    ambiguous_model: tuple[str, tuple[str, ...]] | None = None  # (as written, the known names it could be)

    def says_something(self) -> bool:
        return bool(self.fields or self.model or self.ambiguous_model or self.size or self.size_step or self.overrides or self.scale
                    or self.add)
