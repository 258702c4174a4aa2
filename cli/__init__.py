"""The composition root: the ``vtp`` command line and the local stack (Prefect server, workers,
zygote, API, UI, pools, schedules). It may import every other vtp package; none imports it."""
