"""One- and few-step generation at equal training compute: flow matching (sampled with Euler, midpoint and dopri5),
shortcut models and MeanFlow trained from scratch, each few-step objective fine-tuned from a flow trained for half the
budget, and reflow (a 2-rectified flow trained on the coupling of that same half-budget flow), on the 5,000 real MNIST
digits and the generated flowers at 32 px (in-domain FD against the real-vs-real floor), and on the 2-D tasks (W2).

Every image route gets the same --budget of seconds in all: its steps are its share of the budget over the measured
seconds per step of its configuration; a fine-tune or reflow spends half the budget on its flow and the rest on itself
(reflow's coupling, the teacher's solves, comes out of its half). The EMA model is scored at the end with the
pairing study's in-domain metrics (256 samples from fixed noise) at 1, 2, 4 and 8 model calls of its own sampler, and
the flow also with midpoint and dopri5; the quality at one call (8 Euler steps for the flow) is also taken at each
quarter of a from-scratch run. The cost is counted in seconds and in network evaluations per training row: a forward
and a backward pass count 2, a Jacobian-vector product (a forward pass carrying tangents) 1.

Rows are appended to nbs/study/few_step.jsonl as runs finish; a rerun skips what is there.

    bench/run.sh few_step.py --threads 2                       MNIST and flowers32, one seed, 200 s a route
    bench/run.sh few_step.py --threads 2 --two_d               the 2-D tasks, 30 s a route, three seeds
"""
import argparse, shutil, tempfile, time
from pathlib import Path
import torch

from flowers_fm.config import TrainConfig
from flowers_fm.core import append_jsonl, read_jsonl, save_image_grid
from flowers_fm.batches import ImageBatches
from flowers_fm.checkpoint import load_trained_model
from flowers_fm.coupling import CoupledBatches, coupling, reflow_pairs
from flowers_fm.sampling import integrate
from flowers_fm.study import Task, floor, noise_points, quality, task_data
from flowers_fm.train import train
from step_time import protocol, seconds_per_step

ROOT = Path(__file__).resolve().parent.parent
TASKS = {
    'mnist': Task('mnist', 'mnist5k', model='unet_tiny', n_eval=256, sample_steps=8, domain_steps=300),
    'flowers32': Task('flowers32', 'flowers', model='unet_tiny', n_eval=256, sample_steps=8, domain_steps=300),
}
TASKS_2D = {n: Task(n, f'toy:{n}', steps=3000) for n in ('8gaussians', 'moons')}
ROUTES = ('flow', 'shortcut', 'meanflow', 'flow_shortcut', 'flow_meanflow', 'reflow', 'meanflow_uniform')
SCRATCH = dict(flow=dict(objective='flow_matching'), shortcut=dict(objective='shortcut'), meanflow=dict(objective='meanflow'),
               meanflow_uniform=dict(objective='meanflow', time_sampler='uniform'))  # from scratch: the objective and its options (MeanFlow's jumps run between two draws of the time sampler)
CALLS = (1, 2, 4, 8)
COUPLING = dict(method='midpoint', steps=8)  # the teacher's solver for reflow's coupling: 16 calls a pair
PAIRS = 1024  # image pairs of the coupling: with 4,096 the coupling alone took the half budget (8 steps left for the student)
EVALS_PER_ROW = dict(flow_matching=lambda f: 2., shortcut=lambda f: 2 + 2 * f, meanflow=lambda f: 2 + f)


def base(task, seed, run_dir, steps, **kw):
    img = task.images
    return TrainConfig(**dict(dict(data=task.data, model=task.model if img else 'mlp', res=task.res, n_images=task.n_images, steps=steps, seed=seed,
                                   batch_size=32 if img else 256, lr=1e-3, warmup=min(50, steps // 10), ema=0.999, run_dir=str(run_dir), log_every=max(1, steps // 25),
                                   sample_every=0, save_every=steps, eval_every=max(1, steps // 4), progress=False, device='cpu', channels_last=img), **kw))


def sec_per_step(task, tmp, batches=None, **kw):
    "Seconds per optimizer step of a configuration: 24 steps, the last 16 timed."
    return seconds_per_step(base(task, 0, tmp / 'calibrate', 24, **kw), batches=batches)


def sampler(objective):
    return 'jump' if objective in ('shortcut', 'meanflow') else 'euler'


def scores(task, model, objective):
    "Quality at 1, 2, 4 and 8 calls of the model's own sampler; a flow's also with midpoint (2, 4, 8 calls) and dopri5."
    out = [dict(method=sampler(objective), calls=k, **quality(model, task, sampler(objective), k)) for k in CALLS]
    if objective == 'flow_matching':
        out += [dict(method='midpoint', calls=2 * k, **quality(model, task, 'midpoint', k)) for k in (1, 2, 4)]
        q = quality(model, task, 'dopri5', 8, atol=1e-4, rtol=1e-4)
        out.append(dict(method='dopri5', calls=q['nfe'], **q))
    return out


def trained(task, seed, budget, tmp, objective, run_dir, calls, init='', batches=None, **kw):
    "Train `objective` for `budget` seconds (its steps from its measured seconds per step), scoring the headline sampler at each quarter."
    sps = sec_per_step(task, tmp, batches=batches, objective=objective, **kw)
    steps = 4 * max(2, round(budget / sps / 4))
    cfg = base(task, seed, run_dir, steps, objective=objective, init=init, **kw)
    curve, clock = [], dict(start=time.perf_counter(), scoring=0.)
    def score(model, step):
        t0 = time.perf_counter(); q = quality(model.eval(), task, sampler(objective), calls)
        curve.append(dict(step=step, train_s=round(t0 - clock['start'] - clock['scoring'], 2), calls=calls, **q)); clock['scoring'] += time.perf_counter() - t0
        return {}
    r = train(cfg, batches=batches, eval_fn=score)
    return r, dict(steps=steps, sec_per_step=round(sps, 4), train_s=curve[-1]['train_s'], curve=curve,
                   losses=[(m['step'], m['loss_fm']) for m in r['metrics'] if 'loss_fm' in m],
                   evals_per_row=EVALS_PER_ROW.get(objective, EVALS_PER_ROW['flow_matching'])(cfg.jump_fraction))


def run(task, route, seed, budget, tmp):
    task_data(task)
    t_run, run_dir = time.perf_counter(), tmp / f'{task.name}_{route}_{seed}'
    shutil.rmtree(run_dir, ignore_errors=True)
    data = ImageBatches(task_data(task)['ds'], 32, seed=seed) if task.images else None
    row = dict(task=task.name, route=route, seed=seed, budget=budget)
    if route in SCRATCH:
        kw = dict(SCRATCH[route]); objective = kw.pop('objective')
        r, row['train'] = trained(task, seed, budget, tmp, objective, run_dir, task.sample_steps if route == 'flow' else 1, batches=data, **kw)
        model = r['ema']
    else:  # half the budget on a flow, the rest on the second stage
        teacher = tmp / f'{task.name}_flow_half_{seed}'
        if not (teacher / 'done').exists():
            shutil.rmtree(teacher, ignore_errors=True)
            _, first = trained(task, seed, budget / 2, tmp, 'flow_matching', teacher, task.sample_steps, batches=data)
            torch.save(first, teacher / 'done')
        row['teacher'] = torch.load(teacher / 'done')
        left = budget - row['teacher']['train_s']
        if route == 'reflow':
            t0 = time.perf_counter()
            n = PAIRS if task.images else 20_000
            if task.images: c = coupling(teacher, run_dir / 'coupling', n, COUPLING['method'], COUPLING['steps'], seed, batch_size=256, progress=False)
            else:
                x0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
                c = dict(x0=x0, x1=reflow_pairs(load_trained_model(teacher).model, x0, None, COUPLING['method'], COUPLING['steps'])[1], labels=None)
            row['coupling'] = dict(n=n, seconds=round(time.perf_counter() - t0, 1), calls_per_pair=2 * COUPLING['steps'], **COUPLING)
            left -= row['coupling']['seconds']
            pairs = CoupledBatches(c['x0'], c['x1'], 32 if task.images else 256, seed, c['labels'], data.ds if data else None)
            r, row['train'] = trained(task, seed, max(left, 1.), tmp, 'flow_matching', run_dir, 1, init=str(teacher), batches=pairs, time_sampler='uniform')
            objective = 'reflow'
        else:
            objective = route.split('_')[1]
            r, row['train'] = trained(task, seed, left, tmp, objective, run_dir, 1, init=str(teacher), batches=data)
        model = r['ema']
    row['scores'] = scores(task, model.eval(), 'flow_matching' if route == 'flow' else objective)
    if task.images:
        x = integrate(model, noise_points(task, 16), sampler(objective), 1).x  # one row of samples in one model call
        save_image_grid(x.clamp(-1, 1), ROOT / 'nbs/images' / f'few_step_{task.name}_{route}_1call.png', nrow=16)
    row.update(floor=floor(task), wall_s=round(time.perf_counter() - t_run, 1), **protocol())
    shutil.rmtree(run_dir, ignore_errors=True)
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--tasks', nargs='+', default=list(TASKS))
    ap.add_argument('--routes', nargs='+', default=list(ROUTES[:6]), help=f"routes to run: {', '.join(ROUTES)}")
    ap.add_argument('--seeds', nargs='+', type=int, default=[0])
    ap.add_argument('--budget', type=float, default=None, help='training seconds of every route (default 200 for images, 30 for 2-D)')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--two_d', action='store_true', help='the 2-D tasks, three seeds')
    ap.add_argument('--results', default=str(ROOT / 'nbs/study/few_step.jsonl'))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    a.budget = a.budget or (30. if a.two_d else 200.)
    done = {(r['task'], r['route'], r['seed'], r['budget']) for r in read_jsonl(a.results)}
    tmp = Path(tempfile.mkdtemp())
    tasks, seeds = (TASKS_2D, (0, 1, 2)) if a.two_d else ({k: TASKS[k] for k in a.tasks}, a.seeds)
    for seed in seeds:
        for name, task in tasks.items():
            for route in a.routes:
                if (name, route, seed, a.budget) in done: continue
                row = run(task, route, seed, a.budget, tmp)
                append_jsonl(a.results, row)
                m = 'w2' if not task.images else 'fd'
                print(f"{name} {route} seed {seed}: {row['train']['steps']} steps at {row['train']['sec_per_step']:.3f} s; "
                      + ', '.join(f"{s['method']}{s['calls']} {s[m]:.3f}" for s in row['scores']) + f" (floor {row['floor']:.3f}; {row['wall_s']:.0f} s)", flush=True)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
