"""What the equal-compute benchmarks share: the seconds an optimizer step of a configuration takes, and the protocol
line that says where it was measured."""
import dataclasses, platform, shutil, time
import torch

from flowers_fm.config import TrainConfig
from flowers_fm.core import synchronize
from flowers_fm.train import train

SKIP = 6  # the first steps are slow (allocator, thread pool, first batches): not timed


def seconds_per_step(cfg:TrainConfig, batches=None) -> float:
    "Seconds per optimizer step of `cfg`, trained for its `steps` (more than SKIP + 2) in `cfg.run_dir`, which is removed after."
    cfg, ticks = dataclasses.replace(cfg, eval_every=1, log_every=cfg.steps), []  # eval_fn runs after every step: a clock; one log line, as runs log rarely
    shutil.rmtree(cfg.run_dir, ignore_errors=True)
    train(cfg, batches=batches, eval_fn=lambda model, step: synchronize(cfg.device) or ticks.append(time.perf_counter()) or {})
    shutil.rmtree(cfg.run_dir, ignore_errors=True)
    return (ticks[-2] - ticks[SKIP]) / (len(ticks) - SKIP - 2)  # the last tick comes after the log line


def protocol(device:str='cpu') -> dict:
    "Where a figure was measured: the device (a CPU's architecture and threads, or the GPU's name) and torch's version."
    on = torch.cuda.get_device_name() if device.startswith('cuda') else f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
    return dict(threads=torch.get_num_threads(), device=device, protocol=f"{on}, torch {torch.__version__.split('+')[0]}")
