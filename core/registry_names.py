"""The model registry's naming rules, shared by the API (api.registry) and the chat (chat.promote)."""

MODEL_NAME_RE = r"[a-z0-9][a-z0-9._-]{0,63}"  # a registered model's name: forklift-detector
ALIAS_RE = r"[a-z][a-z0-9_-]{0,31}"  # an alias: production, staging, or any such word
RESERVED_ALIASES = ("latest",)  # computed: always the highest version
