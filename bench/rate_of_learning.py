"""The rate of learning: each lever of `train_flowers` alone against its former defaults, at equal wall-clock, on the
5,000 real MNIST digits and the generated flowers at 32 px; the new defaults (unet_tiny at lr 1e-3) beside them, also at 64 px.

Every run trains the former `train_flowers` defaults (unet_small, batch 32, lr 2e-4, EMA 0.9999, logit-normal times) with one
option changed, for --budget seconds of training: its steps are the budget over the measured seconds per step of its
configuration (a batch of 64 gets half the steps). The EMA model is scored at each quarter of its steps (off the clock)
with the pairing study's in-domain metrics (`flowers_fm.study.quality`: 256 samples, 16 Euler steps, FD/precision/
recall/class TV in the features of a classifier trained on held-out images, and the real-vs-real floor), and at the
end by the memorisation ratio of its samples (median nearest-training-image distance over that of held-out images).
The power-EMA arm is also read post hoc at several averaging widths from its snapshots.

Rows are appended to nbs/study/rate_reduced.jsonl as runs finish; a rerun skips what is there.

    bench/run.sh rate_of_learning.py --threads 2                 the reduced configuration: the old and new defaults,
                                                                 two seeds, both tasks (8 runs, about half an hour on 2 cores)
    bench/run.sh rate_of_learning.py --threads 2 --arms all --seeds 0   every lever alone (about 3.5 min a run on 2 cores)
    bench/run.sh rate_of_learning.py --threads 2 --two_d         the 2-D tasks, three seeds, into nbs/study/rate_2d.jsonl
    bench/run.sh rate_of_learning.py --threads 2 --tasks flowers64 --budget 600   old against new on the flowers at 64 px (after 150 s the
                                                                 baseline's samples still score FD 93)
    bench/run.sh rate_of_learning.py --device cuda --tasks mnist flowers32 flowers64 --arms all --budget 600 --results nbs/study/rate_gpu.jsonl
                                                                 the larger configuration: every lever, two seeds, three tasks,
                                                                 600 s of one GPU each (138 runs: 23 GPU-hours of training)
"""
import argparse, functools, shutil, tempfile, time
from pathlib import Path
import torch

from flowers_fm.averaging import posthoc_ema
from flowers_fm.config import TrainConfig
from flowers_fm.core import append_jsonl, read_jsonl, save_image_grid, synchronize, to_uint8
from flowers_fm.data import heldout_dataset
from flowers_fm.metrics import memorisation
from flowers_fm.study import Task, floor, quality, task_data, task_samples
from flowers_fm.train import train
from step_time import protocol, seconds_per_step

ROOT = Path(__file__).resolve().parent.parent
GRIDS = ROOT / 'nbs/images'  # sample grids of the old and new defaults
TASKS = {  # the pairing study's image tasks (same images, classifier and samples)
    'mnist': Task('mnist', 'mnist5k', n_eval=256, sample_steps=16, domain_steps=300),
    'flowers32': Task('flowers32', 'flowers', n_eval=256, sample_steps=16, domain_steps=300),
    'flowers64': Task('flowers64', 'flowers', res=64, n_eval=256, sample_steps=16, domain_steps=300),  # old against new only: --tasks flowers64 --budget 600
}
OLD_DEFAULTS = dict(model='unet_small', lr=2e-4)  # the train_flowers defaults every arm changes one option of (the defaults became unet_tiny at 1e-3 after them)
ARMS = {  # one option changed from the train_flowers defaults
    'old': {},
    'new': dict(lr=1e-3, model='unet_tiny'),  # the new defaults: the two levers that sped up both data sets
    'lr_1e-3_x_pred': dict(lr=1e-3, prediction='x'),
    'lr_1e-3_ema_0.999': dict(lr=1e-3, ema=0.999),
    'lr_1e-3': dict(lr=1e-3),
    'ema_0.999': dict(ema=0.999),
    'power_ema': dict(ema_stds='0.05,0.1'),
    'x_pred': dict(prediction='x'),
    'eps_pred': dict(prediction='eps'),
    'uncertainty': dict(loss_weight='uncertainty'),
    'min_snr': dict(loss_weight='min_snr'),
    'beta2_0.99': dict(beta2=0.99),
    'cosine': dict(lr_schedule='cosine'),
    'batch_64': dict(batch_size=64),
    'unet_tiny': dict(model='unet_tiny'),
    'flip': dict(flip=True),
    'attn_none': dict(attn_res='none'),  # attention only in the middle block
    'width_48': dict(width=48),  # wider: 48 channels at the first level instead of 32
    'depth_2': dict(depth=2),  # deeper: two residual blocks a level instead of one
    'dropout_0.1': dict(dropout=0.1),
    'bf16': dict(precision='bf16'),
    'rsqrt': dict(lr_schedule='rsqrt'),
    'weight_decay': dict(weight_decay=0.01),
}
POSTHOC_STDS = (0.02, 0.05, 0.1, 0.2)
# 2-D: the pairing study's recipe (MLP, batch 256, lr 1e-3, 1,500 steps, EMA 0.999), W2 of 1,000 points, three seeds; the levers that apply
TASKS_2D = {n: Task(n, f'toy:{n}', steps=1500) for n in ('8gaussians', 'moons')}
ARMS_2D = ('old', 'x_pred', 'eps_pred', 'uncertainty', 'min_snr', 'power_ema', 'beta2_0.99', 'cosine', 'rsqrt', 'weight_decay')


def config(task, arm, seed, run_dir, steps, device='cpu'):
    kw = dict(OLD_DEFAULTS, **ARMS[arm])
    if task.res == 64 and kw['model'] == 'unet_tiny': kw.setdefault('attn_res', '32')  # a 32-px preset attends at its lowest level
    return TrainConfig(**dict(dict(data=task.data, res=task.res, n_images=task.n_images, steps=steps, seed=seed, run_dir=str(run_dir),
                                   log_every=max(1, steps // 25), sample_every=0, save_every=0, eval_every=max(1, steps // 4), progress=False,
                                   device=device, channels_last=True), **kw))


def sec_per_step(task, arm, tmp, device='cpu'):
    "Seconds per optimizer step of the arm's configuration: 32 steps, the last 24 timed."
    return seconds_per_step(config(task, arm, 0, tmp / 'calibrate', 32, device))


@functools.cache
def real_features(task):
    "In-domain features of the training images and of held-out images (the memorisation reference), and the task's floor: once per process."
    data = task_data(task)
    emb = lambda im: data['metrics'].embed(im)[0]
    held = heldout_dataset(task.data, task.res, 'train' if task.data == 'mnist5k' else 'all', n_images=task.n_images, seed=0).images[:task.n_eval]
    return dict(train=emb(data['ds'].images[:2000]), heldout=emb(held), floor=floor(task), embed=emb)


def memorisation_ratio(task, x):
    "The memorisation ratio of samples `x`: their median distance to the nearest training image over that of held-out images."
    real = real_features(task)
    return memorisation(real['embed'](to_uint8(x)), real['train'], real['heldout'])['memorisation_ratio']


def scorer(task, due=None, device='cpu'):
    "An eval_fn for `train` scoring the model at the steps in `due` (at every call if None) with the training seconds before it, scoring left out; and the curve it fills."
    curve, clock = [], dict(start=time.perf_counter(), scoring=0.)
    def score(model, step):
        if due is not None and step not in due: return {}
        synchronize(device); t0 = time.perf_counter(); q = quality(model.eval(), task)
        curve.append(dict(step=step, train_s=round(t0 - clock['start'] - clock['scoring'], 2), **q)); clock['scoring'] += time.perf_counter() - t0
        return {task.metric: q[task.metric]}
    return score, curve


def posthoc(row, task, ema, run_dir):
    "Power-EMA runs: the quality of the average rebuilt after the run at each of `POSTHOC_STDS`, added to the row."
    if not ARMS[row['arm']].get('ema_stds'): return
    for std in POSTHOC_STDS:
        ema.load_state_dict(posthoc_ema(run_dir, std))
        row.setdefault('posthoc', []).append(dict(std=std, **quality(ema.eval(), task)))


WARM = []

def run(task, arm, seed, budget, tmp, device='cpu'):
    task_data(task)  # images and classifier, once per process, off the clock
    t_run = time.perf_counter()
    if not WARM: WARM.append(sec_per_step(task, 'old', tmp, device))  # the process's first steps are slow (allocator, thread pool): not any arm's
    sps = sec_per_step(task, arm, tmp, device)
    steps = 4 * max(2, round(budget / sps / 4))  # scored at each quarter
    run_dir = tmp / f'{task.name}_{arm}_{seed}'; shutil.rmtree(run_dir, ignore_errors=True)
    score, curve = scorer(task, due={steps // 4, steps // 2, 3 * steps // 4, steps}, device=device)
    r = train(config(task, arm, seed, run_dir, steps, device), eval_fn=score)
    x = task_samples(r['ema'].eval(), task)[0]  # as every scoring draws them
    if arm in ('old', 'new') and (budget == 100 or task.res != 32): save_image_grid(x[:64], GRIDS / f'rate_{task.name}_{arm}_b{budget:.0f}_s{seed}.png', nrow=16)
    row = dict(task=task.name, arm=arm, seed=seed, options=ARMS[arm], budget=budget, steps=steps, sec_per_step=round(sps, 4), train_s=curve[-1]['train_s'],
               curve=curve, losses=[(m['step'], m['loss_fm']) for m in r['metrics'] if 'loss_fm' in m],
               memorisation_ratio=memorisation_ratio(task, x), floor=real_features(task)['floor'], **protocol(device))
    posthoc(row, task, r['ema'], run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    row['wall_s'] = round(time.perf_counter() - t_run, 1)  # the whole run: calibration, training, scoring, memorisation
    return row


def run_2d(task, arm, seed, tmp):
    "A 2-D run at the study's recipe with one lever changed: W2 at a quarter, a half and all of its steps."
    run_dir = tmp / f'{task.name}_{arm}_{seed}'
    score, curve = scorer(task)
    cfg = TrainConfig(**dict(dict(data=task.data, model='mlp', steps=task.steps, batch_size=task.batch_size, lr=task.lr, warmup=task.steps // 10, ema=0.999,
                                  seed=seed, run_dir=str(run_dir), log_every=task.steps // 50, sample_every=0, save_every=0, eval_every=task.steps // 4,
                                  progress=False, device='cpu'), **ARMS[arm]))
    r = train(cfg, eval_fn=score)
    row = dict(task=task.name, arm=arm, seed=seed, options=ARMS[arm], budget=0, steps=task.steps, sec_per_step=round(curve[-1]['train_s'] / task.steps, 5),
               train_s=curve[-1]['train_s'], curve=curve, losses=[(m['step'], m['loss_fm']) for m in r['metrics'] if 'loss_fm' in m], memorisation_ratio=None,
               **protocol())
    posthoc(row, task, r['ema'], run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--tasks', nargs='+', default=['mnist', 'flowers32'], help=f"image tasks: {', '.join(TASKS)}")
    ap.add_argument('--arms', nargs='+', default=['old', 'new'], help=f"options to run, or all: {', '.join(ARMS)}")
    ap.add_argument('--seeds', nargs='+', type=int, default=[0, 1])
    ap.add_argument('--budget', type=float, default=100., help='training seconds of every run')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--results', default=None, help='the results file (default: nbs/study/rate_reduced.jsonl, or rate_2d.jsonl with --two_d)')
    ap.add_argument('--two_d', action='store_true', help='the 2-D tasks at equal steps (three seeds) instead')
    ap.add_argument('--device', default='cpu', help='where the image runs train and sample: cpu, or cuda for the larger configuration (the scoring classifier stays on the CPU)')
    a = ap.parse_args()
    a.arms = list(ARMS) if a.arms == ['all'] else a.arms
    a.results = a.results or str(ROOT / 'nbs/study' / ('rate_2d.jsonl' if a.two_d else 'rate_reduced.jsonl'))
    if set(a.arms) - set(ARMS): ap.error(f"unknown arms {sorted(set(a.arms) - set(ARMS))}: choose from {', '.join(ARMS)} or all")
    torch.set_num_threads(a.threads)
    done = {(r['task'], r['arm'], r['seed'], r['budget']) for r in read_jsonl(a.results)}
    tmp = Path(tempfile.mkdtemp())
    if a.two_d:
        for seed in (0, 1, 2):
            for name, task in TASKS_2D.items():
                for arm in ARMS_2D:
                    if (name, arm, seed, 0) in done: continue
                    row = run_2d(task, arm, seed, tmp); append_jsonl(a.results, row)
                    print(f"{name} {arm} seed {seed}: W2 " + ' '.join(f"{p['w2']:.3f}" for p in row['curve']), flush=True)
        return
    for seed in a.seeds:  # one seed of every cell first: a partial file already compares every lever
        for name in a.tasks:
            for arm in a.arms:
                if (name, arm, seed, a.budget) in done: continue
                row = run(TASKS[name], arm, seed, a.budget, tmp, a.device)
                append_jsonl(a.results, row)
                c = row['curve']
                print(f"{name} {arm} seed {seed}: {row['steps']} steps at {row['sec_per_step']:.3f} s, FD " + ' '.join(f"{p['fd']:.2f}@{p['train_s']:.0f}s" for p in c)
                      + f", memorisation {row['memorisation_ratio']:.2f}" + (f", post hoc {[(p['std'], round(p['fd'], 2)) for p in row['posthoc']]}" if 'posthoc' in row else ''), flush=True)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
