"""Speed and memory of the training loop, and its overhead against a bare PyTorch loop on the same model and batches.

Run it with `bench/run.sh bench_train.py`. Each measurement runs in a fresh process (its peak memory is its own);
bare and library runs alternate, `--repeats` times, and the medians are compared. The bare loop does only what any
flow-matching step must: index a batch, draw noise and times, interpolate, forward, loss, backward, AdamW step. The
library's loop adds EMA, gradient clipping with the norm, the NaN check, metrics and the step-indexed random streams.
"""
import argparse, json, resource, statistics, subprocess, sys, tempfile, time
import torch

def one(a):
    torch.set_num_threads(a.threads)
    from flowers_fm.data import generated_flowers
    from flowers_fm.models import get_model
    from flowers_fm.train import TrainConfig, ImageBatches, train
    torch.manual_seed(0)
    ds = generated_flowers(max(256, a.batch * 4), res=a.res)
    model = get_model(a.model, res=a.res)
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if dev.type == 'cuda' else (lambda: None)
    if a.kind == 'bare':
        model.to(dev).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        g = torch.Generator().manual_seed(0)
        def step():
            idx = torch.randint(len(ds), (a.batch,), generator=g)
            x1 = ds.images[idx].to(dev).float() / 127.5 - 1
            x0 = torch.randn(x1.shape, generator=g).to(dev)
            t = torch.rand(a.batch, generator=g).to(dev)
            tt = t.view(-1, 1, 1, 1)
            loss = (model(tt * x1 + (1 - tt) * x0, t) - (x1 - x0)).pow(2).mean()
            opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        for _ in range(a.warmup): step()
        sync(); start = time.perf_counter()
        for _ in range(a.steps): step()
        sync(); sec = (time.perf_counter() - start) / a.steps
    else:
        cfg = TrainConfig(data='flowers', res=a.res, model=a.model, batch_size=a.batch, steps=2 * a.steps, warmup=0,
                          log_every=a.steps, sample_every=0, save_every=10 ** 9, sample_steps=1,
                          run_dir=tempfile.mkdtemp(), progress=False, device=a.device, ema=0.9999)
        out = train(cfg, batches=ImageBatches(ds, a.batch), model=model)
        sec = a.batch / out['metrics'][-1]['images_per_s']  # the last interval: steps after the warm-up, without sampling or saving
    r = dict(kind=a.kind, model=a.model, res=a.res, batch=a.batch, threads=a.threads, s_per_step=sec,
             peak_rss_MB=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if dev.type == 'cuda': r['peak_cuda_MB'] = torch.cuda.max_memory_allocated() / 2 ** 20
    print(json.dumps(r), flush=True)

def main(a):
    for spec in a.presets:
        model, res = spec.split('@')
        runs = {'bare': [], 'flowers_fm': []}
        for rep in range(a.repeats):
            for kind in ('bare', 'flowers_fm'):
                cmd = [sys.executable, __file__, '--one', '--kind', kind, '--model', model, '--res', res, '--batch', str(a.batch),
                       '--steps', str(a.steps), '--warmup', str(a.warmup), '--threads', str(a.threads), '--device', a.device]
                p = subprocess.run(cmd, capture_output=True, text=True)
                if p.returncode: print(p.stderr[-2000:]); sys.exit(1)
                r = json.loads(p.stdout.strip().splitlines()[-1]); runs[kind].append(r)
                print(f"{model}@{res} {kind:10s} {r['s_per_step']:.3f} s/step  {a.batch / r['s_per_step']:.2f} img/s  peak RSS {r['peak_rss_MB']:.0f} MB", flush=True)
        bare = statistics.median(r['s_per_step'] for r in runs['bare']); ours = statistics.median(r['s_per_step'] for r in runs['flowers_fm'])
        print(f"{model}@{res}: median {ours:.3f} s/step ({1 / ours:.3f} steps/s) vs bare {bare:.3f}: overhead {100 * (ours / bare - 1):+.1f} % (target <= 5 %)")
        with open(a.out, 'a') as f: f.write(json.dumps(dict(model=model, res=int(res), batch=a.batch, bare=runs['bare'], ours=runs['flowers_fm'])) + '\n')

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--one', action='store_true'); ap.add_argument('--kind', default='bare')
    ap.add_argument('--model', default='unet32'); ap.add_argument('--res', type=int, default=32)
    ap.add_argument('--presets', nargs='+', default=['unet32@32', 'unet64@64'])
    ap.add_argument('--batch', type=int, default=16); ap.add_argument('--steps', type=int, default=5); ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--repeats', type=int, default=2)
    ap.add_argument('--threads', type=int, default=torch.get_num_threads()); ap.add_argument('--device', default='cpu')
    ap.add_argument('--out', default='bench/results_train.jsonl')
    a = ap.parse_args()
    one(a) if a.one else main(a)
