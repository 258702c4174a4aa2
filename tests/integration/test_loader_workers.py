"""A successful timm or Hugging Face run with data-loader workers prints no traceback.

Each training runs in a real subprocess that, like every flow-run process, has a Prefect queue
service running (the API log and event workers are ones): its thread-exit hook, inherited by the
forked loader workers, used to make each worker exit with code 1, and torch then printed
"DataLoader worker (pid N) exited unexpectedly" from the loader's ``__del__`` after the run had
succeeded (see trainers/loader_workers.py). The worker exit codes are recorded too, since whether
torch's SIGCHLD handler or the join sees a worker's exit first is a race.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import json, multiprocessing, sys
    from pathlib import Path

    sys.path.insert(0, sys.argv[1])
    framework, base = sys.argv[2], Path(sys.argv[3])

    import torch.utils.data.dataloader as dataloader
    from prefect._internal.concurrency.services import QueueService

    from core.contracts import Callbacks, TrainContext
    from core.spec import parse_spec
    from tasks.dataset_formats import prepare_local
    from tasks.samples import make_sample
    from core.frameworks import get_trainer


    class Sink(QueueService[int]):  # as APILogWorker / EventsWorker in a flow-run process
        async def _handle(self, item: int) -> None:
            pass


    Sink.instance().send(0)

    exit_codes = []
    shutdown = dataloader._MultiProcessingDataLoaderIter._shutdown_workers

    def recording(self):
        first = not self._shutdown
        try:
            shutdown(self)
        finally:
            if first:
                exit_codes.extend(w.exitcode for w in self._workers)

    dataloader._MultiProcessingDataLoaderIter._shutdown_workers = recording

    root = make_sample("shapes-classify", base / "data", n_train=8, n_val=4, image_size=64)
    info = prepare_local(root, "classify", base / "dataset")
    ctx = TrainContext(workdir=base / "run", dataset=info, callbacks=Callbacks(), weights_dir=base / "weights",
                       download_timeout_s=5)
    spec = {"dataset": "shapes", "epochs": 2, "image_size": 64, "batch_size": 4, "workers": 2,
            "pretrained": False}
    if framework == "timm":
        spec["model"] = "resnet18"
    else:
        from transformers import ViTConfig

        ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                  image_size=64, patch_size=16).save_pretrained(base / "vit")
        spec.update(model=str(base / "vit"), task="classify")
    result = get_trainer(framework)(parse_spec(spec), ctx)
    alive = [p.pid for p in multiprocessing.active_children()]
    print("RESULT " + json.dumps({"epochs": result.epochs_completed, "exit_codes": exit_codes, "alive": alive}))
""")


@pytest.mark.parametrize("framework", ["timm", "huggingface"])
def test_run_with_loader_workers_ends_without_traceback(framework, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT), framework, str(tmp_path)], env=env,
                         capture_output=True, text=True, timeout=600)

    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "Traceback" not in out.stderr and "exited unexpectedly" not in out.stderr, out.stderr[-3000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    assert result["epochs"] == 2
    assert len(result["exit_codes"]) == 4 and set(result["exit_codes"]) == {0}, result  # 2 loaders x 2 workers
    assert result["alive"] == [], "every loader worker is stopped before train() returns"
