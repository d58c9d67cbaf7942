"""The 2-D flow-matching benchmark of flowers_fm against TorchCFM on identical batches.

Run it with `bench/run.sh bench_2d.py` (it makes a venv holding torchcfm for the benchmark only). Each configuration trains an
MLP (width 64) with Adam (lr 1e-3), batch 256, for `--steps` steps on the same pre-drawn batches, then integrates
10,000 noise points with Euler 1/2/10/100 and dopri5 and reports the exact W2 to 10,000 fresh target points.
Results are appended to a JSON-lines file as each configuration ends; `--summary` prints the tables from it.
"""
import argparse, json, time
from pathlib import Path
import torch

from flowers_fm.data import sample_toy
from flowers_fm.interpolants import get_interpolant
from flowers_fm.pairing import get_pairing
from flowers_fm.models import MLP
from flowers_fm.train import train_2d
from flowers_fm.sampling import integrate
from flowers_fm.metrics import w2

TASKS = {'normal': ('normal', 'moons'), '8gaussians': ('8gaussians', 'moons')}
EULER = (1, 2, 10, 100)

# (library, name, recipe): ours use the library's 2-D loop; 'cosine+ema' = cosine lr decay and EMA 0.999
OURS = [('linear', dict(sigma=0.1), p) for p in ('independent', 'exact_ot', 'sinkhorn', 'sort', 'kmeans', 'vq', 'lsh')] + [
        ('linear', dict(sigma=0.), 'independent'), ('linear', dict(sigma=0.), 'exact_ot'),
        ('target_fm', {}, 'independent'), ('trig', {}, 'independent'), ('cosine', {}, 'independent'),
        ('sb', dict(sigma=0.1), 'exact_ot')]
# the full interpolant x pairing grid ('--configs grid') adds exact OT to every interpolant and independent pairs to sb
GRID = [('target_fm', {}, 'exact_ot'), ('trig', {}, 'exact_ot'), ('cosine', {}, 'exact_ot'), ('sb', dict(sigma=0.1), 'independent')]
PEER = ['icfm', 'otcfm', 'fm', 'sbcfm', 'vpcfm']  # at sigma 0.1, as in TorchCFM's examples
PEER_SIGMA0 = ['icfm', 'otcfm']  # also at sigma 0, the setting of our best runs

def configs(which):
    peer = [dict(lib='torchcfm', matcher=m, recipe='constant') for m in PEER]
    peer0 = [dict(lib='torchcfm', matcher=m, recipe='constant', sigma=0.) for m in PEER_SIGMA0]
    ours = [dict(lib='flowers_fm', interpolant=i, kw=kw, pairing=p, recipe='cosine+ema') for i, kw, p in OURS]
    plain = [dict(lib='flowers_fm', interpolant='linear', kw=dict(sigma=0.1), pairing=p, recipe='constant') for p in ('independent', 'exact_ot')]
    if which == 'quick': return peer[:2] + ours[:2] + plain
    grid = [dict(lib='flowers_fm', interpolant=i, kw=kw, pairing=p, recipe='cosine+ema') for i, kw, p in GRID]
    # most informative first: the best candidates of both libraries, then pairings, interpolants, the peer's other matchers
    main = peer[:2] + ours[:2] + [ours[8], peer0[1], ours[7]] + ours[2:7] + ours[9:]
    extra = [peer0[0]] + plain + peer[2:]  # the peer's other matchers and our runs with the peer's recipe
    return main if which == 'all' else main + extra if which == 'full' else main + extra + grid

def label(c):
    if c['lib'] == 'torchcfm': return f"torchcfm {c['matcher']}" + (f"(sigma={c['sigma']})" if 'sigma' in c else '')
    kw = ','.join(f'{k}={v}' for k, v in c['kw'].items())
    w = f", {c['workers']} worker{'s' if c['workers'] > 1 else ''}" if c.get('workers') else ''
    return f"{c['interpolant']}({kw}) + {c['pairing']} [{c['recipe']}{w}]"

def draw_batches(task, steps, bs, seed):
    "The training batches every configuration sees, and the mean ms per batch of each sampler."
    src, tgt = TASKS[task]
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter(); x0 = [sample_toy(src, bs, g) for _ in range(steps)]
    t1 = time.perf_counter(); x1 = [sample_toy(tgt, bs, g) for _ in range(steps)]
    t2 = time.perf_counter()
    return list(zip(x0, x1)), dict(ms_source_batch=(t1 - t0) / steps * 1e3, ms_target_batch=(t2 - t1) / steps * 1e3)

def train_peer(c, batches, steps, lr, seed):
    import numpy as np, torchcfm
    from torchcfm.models.models import MLP as PeerMLP
    FM = dict(icfm=torchcfm.ConditionalFlowMatcher, otcfm=torchcfm.ExactOptimalTransportConditionalFlowMatcher,
              fm=torchcfm.TargetConditionalFlowMatcher, sbcfm=torchcfm.SchrodingerBridgeConditionalFlowMatcher,
              vpcfm=torchcfm.VariancePreservingConditionalFlowMatcher)[c['matcher']](sigma=c.get('sigma', 0.1))
    torch.manual_seed(seed); np.random.seed(seed)
    model = PeerMLP(dim=2, w=64, time_varying=True)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    start = time.perf_counter()
    for i in range(steps):  # the loop of TorchCFM's 2-D tutorials
        x0, x1 = batches[i]
        opt.zero_grad()
        t, xt, ut = FM.sample_location_and_conditional_flow(x0, x1)
        vt = model(torch.cat([xt, t[:, None]], dim=-1))
        loss = torch.mean((vt - ut) ** 2)
        loss.backward()
        opt.step()
    sec = (time.perf_counter() - start) / steps
    return (lambda x, t, y=None: model(torch.cat([x, t.reshape(-1, 1).expand(len(x), 1)], 1))), sec

def train_ours(c, batches, steps, lr, seed):
    torch.manual_seed(seed)
    model = MLP(2, 64)
    pairing = None if c['pairing'] == 'independent' else get_pairing(c['pairing'])
    cos = c['recipe'] == 'cosine+ema'
    r = train_2d(model, interpolant=get_interpolant(c['interpolant'], **c['kw']), pairing=pairing, steps=steps, lr=lr,
                 lr_schedule='cosine' if cos else 'constant', ema=0.999 if cos else None, batches=batches, seed=seed,
                 workers=c.get('workers', 0))
    return (r['ema'] if cos else model), r['sec_per_step']

def pairing_ms(name, task, bs, reps=200):
    "Mean ms of one pairing call on a batch of the task."
    src, tgt = TASKS[task]; g = torch.Generator().manual_seed(1)
    x0, x1 = sample_toy(src, bs, g), sample_toy(tgt, bs, g)
    f = get_pairing(name); f(x0, x1, generator=g)
    t = time.perf_counter()
    for _ in range(reps): f(x0, x1, generator=g)
    return (time.perf_counter() - t) / reps * 1e3

def run_one(job):
    c, a = job
    torch.set_num_threads(a.threads)
    batches, data_ms = draw_batches(c['task'], a.steps, a.batch_size, a.seed)
    fit = train_peer if c['lib'] == 'torchcfm' else train_ours
    model, sec = fit(c, batches, a.steps, a.lr, a.seed)
    del batches
    g = torch.Generator().manual_seed(12345)
    src, tgt = TASKS[c['task']]
    z, target = sample_toy(src, a.n_eval, g), sample_toy(tgt, a.n_eval, g)
    out = dict(c, label=label(c), steps=a.steps, ms_step=sec * 1e3, **data_ms)
    if c['lib'] == 'flowers_fm' and c['pairing'] != 'independent': out['ms_pairing'] = pairing_ms(c['pairing'], c['task'], a.batch_size)
    if a.timing_only:
        with open(a.out, 'a') as f: f.write(json.dumps(out) + '\n')
        return out
    t = time.perf_counter()
    with torch.no_grad():
        for k in EULER: out[f'w2_euler{k}'] = w2(integrate(model, z, 'euler', k).x, target)
        s = integrate(model, z, 'dopri5', 1, atol=1e-5, rtol=1e-5)
        out['w2_dopri5'], out['nfe_dopri5'] = w2(s.x, target), s.nfe
    out['eval_s'] = time.perf_counter() - t
    with open(a.out, 'a') as f: f.write(json.dumps(out) + '\n')
    return out

def timing_summary(rows):
    for task in TASKS:
        rs = [r for r in rows if r['task'] == task]
        if not rs: continue
        print(f"\n### {task} -> moons: time per training step ({rs[0]['steps']} steps, one thread, batch 256)\n")
        print('| configuration | ms/step | ms pairing |'); print('|---|---|---|')
        for r in rs: print(f"| {r['label']} | {r['ms_step']:.2f} | {r.get('ms_pairing', float('nan')):.2f} |")
        ms = {r['label']: r['ms_step'] for r in rs}
        for sig in ('0.1', '0.0'):
            ind = ms.get(f'linear(sigma={sig}) + independent [cosine+ema]')
            stem = f'linear(sigma={sig}) + exact_ot [cosine+ema'
            for lab, ex in ms.items():  # in the loop and with each number of workers
                w = lab[len(stem):-1]
                if ind and lab.startswith(stem): print(f"exact-OT step{w} / independent step (sigma {sig}): {ex:.2f} / {ind:.2f} ms = {ex / ind:.2f} (target <= 1.3)")
        pi, po = ms.get('torchcfm icfm'), ms.get('torchcfm otcfm')
        if pi and po: print(f"torchcfm: otcfm / icfm step = {po:.2f} / {pi:.2f} ms = {po / pi:.2f}")

def summary(path):
    rows = [json.loads(l) for l in Path(path).read_text().splitlines() if l.strip()]
    if rows and 'w2_euler1' not in rows[0]: return timing_summary(rows)
    for task in TASKS:
        rs = [r for r in rows if r['task'] == task]
        if not rs: continue
        print(f"\n### {task} -> moons ({rs[0]['steps']} steps; sampling {rs[0]['ms_source_batch']:.3f} ms {TASKS[task][0]} + "
              f"{rs[0]['ms_target_batch']:.3f} ms moons per batch of 256)\n")
        print('| configuration | W2 Euler 1 | 2 | 10 | 100 | dopri5 (NFE) | ms/step | ms pairing |')
        print('|---|---|---|---|---|---|---|---|')
        for r in rs:
            print(f"| {r['label']} | {r['w2_euler1']:.3f} | {r['w2_euler2']:.3f} | {r['w2_euler10']:.3f} | {r['w2_euler100']:.3f} | "
                  f"{r['w2_dopri5']:.3f} ({r['nfe_dopri5']}) | {r['ms_step']:.2f} | {r.get('ms_pairing', float('nan')):.2f} |")
        best = lambda lib: min(((min(r[k] for k in r if k.startswith('w2_')), r['label']) for r in rs if r['lib'] == lib), default=None)
        o, p = best('flowers_fm'), best('torchcfm')
        if o and p: print(f"\nbest W2: flowers_fm {o[0]:.3f} ({o[1]}), torchcfm {p[0]:.3f} ({p[1]}): ratio {o[0] / p[0]:.2f} (target <= 0.8)")
        step = {(r['pairing'], r['recipe']): r['ms_step'] for r in rs if r['lib'] == 'flowers_fm' and r['kw'] == dict(sigma=0.1) and r['interpolant'] == 'linear'}
        for rec in ('constant', 'cosine+ema'):
            if ('independent', rec) in step and ('exact_ot', rec) in step:
                print(f"exact-OT step / independent step ({rec}): {step['exact_ot', rec]:.2f} / {step['independent', rec]:.2f} ms = "
                      f"{step['exact_ot', rec] / step['independent', rec]:.2f} (target <= 1.3)")

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--tasks', default='normal,8gaussians', help='comma-separated: normal, 8gaussians')
    ap.add_argument('--configs', default='all', choices=['all', 'full', 'grid', 'quick'], help='quick: 6 per task, all: 16, full: 22, grid: 26')
    ap.add_argument('--steps', type=int, default=20_000)
    ap.add_argument('--batch-size', type=int, default=256)
    ap.add_argument('--lr', type=float, default=1e-3)
    ap.add_argument('--n-eval', type=int, default=10_000)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--threads', type=int, default=1, help='torch threads per configuration')
    ap.add_argument('--jobs', type=int, default=1, help='configurations run at once (one process each)')
    ap.add_argument('--out', default='bench/results_2d.jsonl')
    ap.add_argument('--summary', action='store_true', help='only print the tables of --out')
    ap.add_argument('--workers', type=int, default=0, help='processes that pair the batches ahead of the step (our pairing configurations)')
    ap.add_argument('--timing-only', action='store_true', help='train and time each configuration, without the W2 evaluation')
    a = ap.parse_args()
    if not a.summary:
        cs = [dict(c, workers=a.workers) if a.workers and c.get('pairing', 'independent') != 'independent' else c for c in configs(a.configs)]
        jobs = [(dict(c, task=t), a) for c in cs for t in a.tasks.split(',')]
        done = set()
        if Path(a.out).exists():  # resume: skip what an earlier run finished
            done = {(json.loads(l)['task'], json.loads(l)['label']) for l in Path(a.out).read_text().splitlines() if l.strip()}
        jobs = [j for j in jobs if (j[0]['task'], label(j[0])) not in done]
        print(f"{len(jobs)} configurations to run, {a.jobs} at a time", flush=True)
        if a.jobs > 1:
            import multiprocessing as mp
            with mp.get_context('spawn').Pool(a.jobs) as pool:
                for r in pool.imap_unordered(run_one, jobs): print(r['task'], r['label'], f"{r.get('w2_dopri5', r['ms_step']):.3f}", flush=True)
        else:
            for j in jobs: r = run_one(j); print(r['task'], r['label'], f"{r.get('w2_dopri5', r['ms_step']):.3f}", flush=True)
    summary(a.out)
