"""One module per tab of the UI; each exposes ``build(ctx) -> None`` inside a ``gr.Tab``."""
