"""Errors a person sees: each says what was wrong and what to do instead."""

from __future__ import annotations


class VtpError(Exception):
    """Base class: the message is meant for a person, never a traceback."""


class SpecError(VtpError, ValueError):
    """A TrainSpec value is not allowed."""


class DatasetError(VtpError):
    """The dataset is missing, unreadable or invalid; ``problems`` lists each finding."""

    def __init__(self, message: str, problems: list | None = None):
        super().__init__(message)
        self.problems = problems or []


class StorageError(VtpError):
    """Storage could not be read or written."""


class TrainerError(VtpError):
    """The trainer failed for a reason the person can act on."""


class ResumeCheckpointError(TrainerError):
    """The run's resumable checkpoint (``TrainContext.resume_from``) could not be loaded. The flow
    then falls back to the previous complete checkpoint, or starts the run over, and says so."""


def gpu_out_of_memory(spec) -> TrainerError:
    """The one message every trainer gives when CUDA runs out of memory: what to lower, and to what."""
    return TrainerError(
        f"the GPU ran out of memory with batch_size={spec.batch_size} at image_size={spec.image_size}: "
        f"use a smaller batch_size (e.g. {max(1, spec.batch_size // 2)}), image_size or model"
    )
