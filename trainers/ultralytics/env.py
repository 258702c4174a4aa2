"""Make ultralytics import and train offline, without touching the user's own ultralytics settings.

What ultralytics does on its own, and what this module does about it (ultralytics 8.4):

- ``import ultralytics`` creates ``~/.config/Ultralytics/settings.json`` and derives its weights,
  runs and datasets folders from the *current git repo or cwd* (so weights downloaded for the AMP
  check would land in our repo). ``YOLO_CONFIG_DIR`` moves the settings folder; we point it at
  ``<VTP home>/ultralytics`` and write a settings file there before the import, with the three
  folders under it and analytics (``sync``) plus every third-party logger integration turned off.
- Dataset checks and plots call ``check_font("Arial.ttf")``, which downloads the font when it is not
  in the settings folder. We copy matplotlib's DejaVuSans there under both names ultralytics asks for,
  then :func:`core.fonts.use_cjk_font` makes ``Arial.Unicode.ttf`` (used for non-ASCII,
  e.g. Korean, labels) an installed CJK font and adds it to matplotlib's fallback fonts.
- ``YOLO_OFFLINE=1`` makes ``ultralytics.utils.ONLINE`` False: no pip-update check against PyPI, no
  analytics events, no online probes. ``YOLO_AUTOINSTALL=false`` stops ``check_requirements`` from
  running pip. Both are defaults only: an operator who sets them otherwise wins.
- On CUDA with AMP on, the trainer's AMP check loads ``yolo26n.pt`` from the weights folder and
  downloads it when missing (see :func:`amp_check_guard`).
- ultralytics unpickles checkpoints with ``weights_only=False`` unless ``ULTRALYTICS_SAFE_LOAD`` is
  on: vtp turns it on, always (see :mod:`.checkpoint`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from core.contracts import TrainContext
from core.settings import get_settings
from trainers.common import atomic_path, write_text_atomic

FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")
_SETTINGS_VERSION = "0.0.8"  # ultralytics migrates other versions itself, keeping our values
_INTEGRATIONS = ("clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb")
log = logging.getLogger("vtp.ultralytics")


def prepare(home: Path | None = None) -> None:
    """Set the environment ultralytics reads at import time. Call before the first import."""
    root = (home or get_settings().home) / "ultralytics"
    os.environ.setdefault("YOLO_CONFIG_DIR", str(root))
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    os.environ["ULTRALYTICS_SAFE_LOAD"] = "1"  # not a default: a checkpoint must never run code (.checkpoint)
    if "ultralytics" in sys.modules:  # imported already: its settings folder is fixed for this process
        from ultralytics.utils import USER_CONFIG_DIR

        if _chosen(Path(USER_CONFIG_DIR)):
            _install_fonts(Path(USER_CONFIG_DIR))
        else:
            from core.fonts import use_cjk_font

            use_cjk_font()  # matplotlib's fallback only: the user's own settings folder is left alone
            if not _warned:
                _warn_late(Path(USER_CONFIG_DIR))
        return
    config_dir = Path(os.environ["YOLO_CONFIG_DIR"]).expanduser() / "Ultralytics"
    config_dir.mkdir(parents=True, exist_ok=True)
    if Path(os.environ["YOLO_CONFIG_DIR"]).expanduser().resolve() == root.resolve():
        _write_settings(config_dir / "settings.json", root)
    _install_fonts(config_dir)


def _chosen(config_dir: Path) -> bool:
    """Whether ultralytics uses a settings folder picked through YOLO_CONFIG_DIR (by vtp or the
    operator), rather than the user's own ~/.config/Ultralytics, which vtp leaves alone."""
    chosen = os.environ.get("YOLO_CONFIG_DIR")
    return bool(chosen) and config_dir.resolve().is_relative_to(Path(chosen).expanduser().resolve())


def owned_weights_dir() -> Path | None:
    """ultralytics' weights folder when its settings folder was chosen through YOLO_CONFIG_DIR, else None.

    When ultralytics was imported before :func:`prepare`, its weights folder is derived from the
    git repo or cwd the process started in; vtp then writes nothing there.
    """
    from ultralytics.utils import USER_CONFIG_DIR, WEIGHTS_DIR

    return Path(WEIGHTS_DIR) if _chosen(Path(USER_CONFIG_DIR)) else None


def download_dir() -> Path:
    """Where vtp lets ultralytics download weights: its own folder when that is ours, else vtp's."""
    return owned_weights_dir() or get_settings().home / "ultralytics" / "weights"


_warned = False


def _warn_late(config_dir: Path) -> None:
    global _warned
    _warned = True
    log.warning(
        "ultralytics was imported before vtp could configure it, so it uses %s; vtp leaves that folder "
        "alone (plots may spend a few seconds looking for Arial.ttf online). Import trainers.ultralytics.env "
        "and call prepare() before importing ultralytics to avoid this.",
        config_dir,
    )


def import_ultralytics() -> ModuleType:
    prepare()
    import ultralytics

    from trainers.ultralytics.checkpoint import restrict_loading

    restrict_loading()  # also when ultralytics was imported before prepare() could set the variable
    from trainers.ultralytics.label_cache import guard

    guard()  # label caches (pickles): only those this process wrote are loaded
    _quiet_settings()
    _no_heif_install()
    return ultralytics


def _no_heif_install() -> None:
    """Ultralytics patches ``PIL.Image.open`` so that the first file Pillow cannot identify makes it
    try to install pi-heif (a pip install at run time, offline here) and then raise ImportError instead
    of PIL's UnidentifiedImageError. vtp installs nothing at run time: an unreadable image stays an
    unreadable image (OSError), in every process that imported ultralytics."""
    try:
        from ultralytics.utils import patches
    except ImportError:
        return
    if hasattr(patches, "_pil_plugins_registered"):
        patches._pil_plugins_registered = True


def _write_settings(file: Path, root: Path) -> None:
    if file.is_file():
        return
    settings = {
        "settings_version": _SETTINGS_VERSION,
        "datasets_dir": str(root / "datasets"),
        "weights_dir": str(root / "weights"),
        "runs_dir": str(root / "runs"),
        "uuid": hashlib.sha256(str(uuid.getnode()).encode()).hexdigest(),
        "sync": False,
        "api_key": "",
        "openai_api_key": "",
        **dict.fromkeys(_INTEGRATIONS, False),
        "vscode_msg": False,
        "openvino_msg": False,
    }
    write_text_atomic(file, json.dumps(settings, indent=2))


def _quiet_settings() -> None:
    """Turn analytics and integrations off in our own settings file (never in the user's)."""
    from ultralytics.utils import SETTINGS

    ours = get_settings().home / "ultralytics"
    if not Path(SETTINGS.file).resolve().is_relative_to(ours.resolve()):
        return
    wanted = {"sync": False, **dict.fromkeys(_INTEGRATIONS, False)}
    if any(SETTINGS.get(k) != v for k, v in wanted.items()):
        SETTINGS.update(wanted)


def _install_fonts(config_dir: Path) -> None:
    _install_latin_fonts(config_dir)
    from core.fonts import use_cjk_font

    use_cjk_font(config_dir)  # Hangul labels: Arial.Unicode.ttf -> an installed CJK font, offline


def _install_latin_fonts(config_dir: Path) -> None:
    import matplotlib

    source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    if not source.is_file():
        log.warning("matplotlib's DejaVuSans.ttf is missing; ultralytics plots may try to download Arial.ttf")
        return
    for name in FONT_NAMES:
        target = config_dir / name
        if not target.is_file():
            with atomic_path(target) as tmp:
                shutil.copyfile(source, tmp)


@contextlib.contextmanager
def amp_check_guard(ctx: TrainContext, on_cuda: bool, amp: bool) -> Iterator[str | None]:
    """Keep the trainer's CUDA AMP check from downloading without a time cap.

    ``check_amp`` compares FP32 and AMP outputs of ``yolo26n.pt`` from ultralytics' weights folder and
    downloads it when missing, with no overall time cap. We put the file there first (from the
    weights folder, or a capped download), but only when that folder is ours (see
    :func:`owned_weights_dir`). When it cannot be had we replace the check for this run
    with one that keeps AMP on, which is what ultralytics itself does when the download fails.
    Yields a note when the check was skipped.
    """
    if not (on_cuda and amp):
        yield None
        return
    from ultralytics.utils import WEIGHTS_DIR

    from trainers.ultralytics.weights import find_yolo_weights

    target = Path(WEIGHTS_DIR) / "yolo26n.pt"
    if not target.is_file() and owned_weights_dir() is not None:
        path, _ = find_yolo_weights("yolo26n", ctx)
        if path is not None and path != target:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    if target.is_file():
        yield None
        return
    import ultralytics.engine.trainer as trainer_module

    note = "AMP self-check skipped (yolo26n.pt not available offline); training with AMP on."
    original = trainer_module.check_amp
    trainer_module.check_amp = lambda model: True
    try:
        yield note
    finally:
        trainer_module.check_amp = original
