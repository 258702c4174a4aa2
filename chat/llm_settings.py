"""Settings of the LLM path, read from the environment (and .env) like vtp's own settings.

The LLM is used only when ``VTP_LLM_BASE_URL`` or ``VTP_LLM_MODEL`` is set: an OPENAI_API_KEY that
happens to be in the shell never sends requests anywhere by itself.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class LLMSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VTP_LLM_", env_file=".env", extra="ignore", populate_by_name=True)

    base_url: str | None = Field(default=None, description="OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp); "
                                                            "OpenAI's own when only the model is set.")
    model: str | None = Field(default=None, description="Model name the endpoint serves.")
    api_key: SecretStr | None = Field(default=None, validation_alias=AliasChoices("VTP_LLM_API_KEY", "OPENAI_API_KEY",
                                                                                  "api_key"))
    timeout_s: float = Field(default=20.0, gt=0, le=600, description="Cap on one request to the LLM.")
    max_retries: int = Field(default=2, ge=0, le=5, description="Re-asks after an answer that does not validate.")
    mode: Literal["tools", "json"] = Field(default="tools", description="instructor mode: tool calls or JSON mode.")

    @property
    def configured(self) -> bool:
        return bool(self.base_url or self.model)
