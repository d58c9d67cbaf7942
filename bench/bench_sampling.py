"""Sampling, reflow and likelihood benchmark.

  bench/run.sh bench_sampling.py --part samplers    NFE against W2 for every solver on the 2-D tasks, and reflow
  bench/run.sh bench_sampling.py --part likelihood  exact against Hutchinson log-likelihood: time and error at D = 2, 784, 3072
  bench/run.sh bench_sampling.py --summary          print the tables of what has been measured

Samplers: the base flows are bench_2d.py's 'linear(sigma=0) + independent [cosine+ema]' and '+ exact_ot' runs
(same batches, seed, 20,000 steps); each is reflowed on 100,000 of its own pairs (dopri5) for 20,000 steps.
W2 is exact (POT) between 10,000 samples and 10,000 fresh moons, the protocol of bench_2d.py. Results are appended to
bench/results_sampling.jsonl and a rerun skips what is there; trained models are cached in bench/cache/.
"""
import argparse, json, math, time
from pathlib import Path
import torch
from bench_2d import TASKS, draw_batches, train_ours
from flowers_fm.data import sample_toy
from flowers_fm.likelihood import GaussianFlow, log_likelihood
from flowers_fm.metrics import w2
from flowers_fm.models import MLP
from flowers_fm.reflow import reflow
from flowers_fm.sampling import integrate, path_straightness

HERE = Path(__file__).parent
OUT, CACHE = HERE / 'results_sampling.jsonl', HERE / 'cache'
# (method, steps, grid): NFE from 1 to 64 for every fixed-step solver, three tolerances for dopri5
SWEEP = ([('euler', n, 'uniform') for n in (1, 2, 4, 8, 16, 32, 64)] + [('euler', n, 'dense_at_data') for n in (2, 4, 8, 16, 32)] +
         [(m, n, 'uniform') for m in ('midpoint', 'heun') for n in (1, 2, 4, 8, 16, 32)] + [('rk4', n, 'uniform') for n in (1, 2, 4, 8, 16)] +
         [('dopri5', tol, 'uniform') for tol in (1e-2, 1e-3, 1e-5)])
SHORT = [('euler', n, 'uniform') for n in (1, 2, 10, 100)] + [('dopri5', 1e-5, 'uniform')]

def done():
    return [json.loads(l) for l in OUT.read_text().splitlines() if l.strip()] if OUT.exists() else []

def record(row):
    with open(OUT, 'a') as f: f.write(json.dumps(row) + '\n')

def base_model(task, pairing, a):
    path = CACHE / f'{task}_{pairing}.pt'
    model = MLP(2, 64)
    if path.exists(): model.load_state_dict(torch.load(path)); return model
    batches, _ = draw_batches(task, a.steps, 256, a.seed)
    c = dict(interpolant='linear', kw=dict(sigma=0.), pairing=pairing, recipe='cosine+ema')
    trained, sec = train_ours(c, batches, a.steps, 1e-3, a.seed)
    CACHE.mkdir(exist_ok=True); torch.save(trained.state_dict(), path)
    print(f'{task} {pairing}: trained in {sec * a.steps:.0f} s', flush=True)
    model.load_state_dict(trained.state_dict()); return model

def reflowed_model(task, pairing, base, a):
    path = CACHE / f'{task}_{pairing}_reflow.pt'
    model = MLP(2, 64)
    if path.exists(): model.load_state_dict(torch.load(path)); return model
    src = TASKS[task][0]
    t = time.perf_counter()
    r = reflow(base, lambda n, g: sample_toy(src, n, g), n_pairs=a.pairs, steps=a.steps, ema=0.999, seed=a.seed + 1, atol=1e-5, rtol=1e-5)
    torch.save(r['ema'].state_dict(), path)
    print(f'{task} {pairing} reflow: {time.perf_counter() - t:.0f} s', flush=True)
    model.load_state_dict(r['ema'].state_dict()); return model

def samplers(a):
    "W2 at Euler 1/2/10/100 and dopri5 for every model (10k samples), then the whole solver sweep (smaller samples)."
    have = {(r['task'], r['model'], r['method'], r['steps'], r['grid'], r.get('n_eval', 10_000)) for r in done() if r['part'] == 'samplers'}
    for task in a.tasks.split(','):
        src, tgt = TASKS[task]
        models = {}
        for pairing in ('independent', 'exact_ot'):
            base = base_model(task, pairing, a)
            models[pairing], models[f'{pairing} + reflow'] = base, reflowed_model(task, pairing, base, a)
        for n_eval, settings in ((a.n_eval, lambda m: SHORT), (a.n_sweep, lambda m: SWEEP if m.startswith('independent') else [])):
            g = torch.Generator().manual_seed(12345)
            z, target = sample_toy(src, n_eval, g), sample_toy(tgt, n_eval, g)
            for name, model in models.items():
                model.eval()
                for method, steps, grid in settings(name):
                    if (task, name, method, steps, grid, n_eval) in have: continue
                    kw = dict(atol=steps, rtol=steps) if method == 'dopri5' else {}
                    s = integrate(model, z, method, 1 if method == 'dopri5' else steps, grid=grid, **kw)
                    row = dict(part='samplers', task=task, model=name, method=method, steps=steps, grid=grid, nfe=s.nfe, w2=w2(s.x, target), n_eval=n_eval)
                    if method == 'euler' and steps == 100:
                        row.update(path_straightness(integrate(model, z[:2000], 'euler', 100, return_trajectory=True).trajectory))
                    record(row); print(row, flush=True)

def likelihood(a):
    "Exact against Hutchinson divergence at D = 2, 784, 3072 on rotated Gaussians (known answer) and random MLPs."
    have = {(r['D'], r['model'], r['divergence'], r['precision']) for r in done() if r['part'] == 'likelihood'}
    for D, B, steps in ((2, 256, 20), (784, 4, 5), (3072, 4, 5)):
        gf = GaussianFlow.random(D, seed=D, dtype=torch.float32)
        x = gf.sample(B, torch.Generator().manual_seed(1))
        torch.manual_seed(0)
        models = {'gaussian': gf, 'mlp': MLP(D, 64 if D == 2 else 1024).eval()}
        for name, model in models.items():
            # bf16 is emulated on a CPU without bf16 units (about 30x slower than fp32): measured where it takes minutes, not hours
            runs = [('exact', 'fp32'), ('hutchinson', 'fp32')] + ([('exact', 'bf16')] if D == 2 or (D == 784 and name == 'gaussian') else [])
            if all((D, name, div, precision) in have for div, precision in runs): continue
            exact = None
            for div, precision in runs:
                key = (D, name, div, precision)
                t = time.perf_counter()
                ll = log_likelihood(model, x, divergence=div, method='rk4', steps=steps, precision=precision, generator=torch.Generator().manual_seed(2))
                sec = time.perf_counter() - t
                if div == 'exact' and precision == 'fp32': exact = ll.logp
                row = dict(part='likelihood', D=D, model=name, divergence=div, precision=precision, batch=B, nfe=ll.nfe, s_per_sample=sec / B,
                           mean_logp=ll.logp.mean().item())
                if name == 'gaussian': row['mean_abs_err_truth'] = (ll.logp - gf.log_prob(x)).abs().mean().item()
                if exact is not None and ll.logp is not exact: row['mean_abs_err_exact'] = (ll.logp - exact).abs().mean().item()
                if key not in have: record(row)
                print(row, flush=True)

def summary():
    rows = done()
    s = [r for r in rows if r['part'] == 'samplers']
    peer = {}
    p2d = HERE / 'results_2d.jsonl'
    if p2d.exists():
        for r in map(json.loads, p2d.read_text().splitlines()):
            if r['lib'] == 'torchcfm' and 'w2_euler10' in r: peer[r['task'], r['label']] = r['w2_euler10']
    for task in TASKS:
        rs = [r for r in s if r['task'] == task]
        if not rs: continue
        full = [r for r in rs if r.get('n_eval', 10_000) == 10_000]
        print(f"\n### {task} -> moons: W2 (10k vs 10k), the protocol of bench_2d.py\n")
        print('| model | Euler 1 | 2 | 10 | 100 | dopri5 (NFE) | path energy | straightness |\n|---|---|---|---|---|---|---|---|')
        for model in dict.fromkeys(r['model'] for r in full):
            m = {(r['method'], r['steps']): r for r in full if r['model'] == model and r['grid'] == 'uniform'}
            cell = lambda k: f"{m[k]['w2']:.3f}" if k in m else ''
            dp = m.get(('dopri5', 1e-5))
            st = m.get(('euler', 100), {})
            dps = f"{dp['w2']:.3f} ({dp['nfe']})" if dp else ''
            print(f"| {model} | {cell(('euler', 1))} | {cell(('euler', 2))} | {cell(('euler', 10))} | {cell(('euler', 100))} | "
                  f"{dps} | "
                  f"{st.get('path_energy', float('nan')):.3f} | {st.get('straightness', float('nan')):.4f} |")
        sweep = [r for r in rs if r.get('n_eval', 10_000) != 10_000]
        for model in dict.fromkeys(r['model'] for r in sweep):
            n = sweep[0]['n_eval']
            print(f"\n**{model}**: W2 ({n} vs {n} samples) against NFE\n\n| solver | grid | steps / tol | NFE | W2 |\n|---|---|---|---|---|")
            for r in sorted((r for r in sweep if r['model'] == model), key=lambda r: (r['method'], r['grid'], r['nfe'])):
                print(f"| {r['method']} | {r['grid']} | {r['steps']} | {r['nfe']} | {r['w2']:.3f} |")
        e2 = {r['model']: r['w2'] for r in full if r['method'] == 'euler' and r['steps'] == 2 and r['grid'] == 'uniform'}
        for m, v in e2.items():
            for lab in ('torchcfm icfm', 'torchcfm otcfm'):
                if (task, lab) in peer and 'reflow' in m:
                    print(f"reflow target: {m} Euler-2 W2 {v:.3f} vs {lab} Euler-10 W2 {peer[task, lab]:.3f}: "
                          f"{'met' if v <= peer[task, lab] else 'missed'} (ratio {v / peer[task, lab]:.2f})")
    lk = [r for r in rows if r['part'] == 'likelihood']
    if lk:
        print("\n### log-likelihood: exact against Hutchinson (1 Rademacher probe), RK4, one thread\n")
        print('| D | model | divergence | precision | NFE | ms per sample | mean abs error vs closed form (nats) | vs exact fp32 (nats) |')
        print('|---|---|---|---|---|---|---|---|')
        for r in lk:
            f = lambda k: f"{r[k]:.2e}" if k in r else ''
            print(f"| {r['D']} | {r['model']} | {r['divergence']} | {r['precision']} | {r['nfe']} | {r['s_per_sample'] * 1e3:.3g} | "
                  f"{f('mean_abs_err_truth')} | {f('mean_abs_err_exact')} |")

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--part', choices=['samplers', 'likelihood'], help='what to measure')
    ap.add_argument('--tasks', default='normal,8gaussians')
    ap.add_argument('--steps', type=int, default=20_000, help='training steps of base and reflowed flows')
    ap.add_argument('--pairs', type=int, default=100_000, help='size of the reflow coupling')
    ap.add_argument('--n-eval', type=int, default=10_000, help='samples of the W2 at Euler 1/2/10/100 and dopri5')
    ap.add_argument('--n-sweep', type=int, default=4_000, help='samples of the W2 of the solver sweep')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--summary', action='store_true')
    ap.add_argument('--out', default=str(OUT), help='results file')
    ap.add_argument('--cache', default=str(CACHE), help='folder of the trained models')
    a = ap.parse_args()
    OUT, CACHE = Path(a.out), Path(a.cache)
    torch.set_num_threads(a.threads)
    if a.summary: summary()
    elif a.part == 'samplers': samplers(a)
    elif a.part == 'likelihood': likelihood(a)
    else: ap.error('give --part or --summary')
