"""What each stabiliser does to a short, deliberately aggressive 128-px run on a CPU (nbs/09_multiscale).

One `unet_small128` at 128 px, batch 16, learning rate 2e-3 (ten times the default), 120 steps; the reference arm has
the library's stabilisers on (50 warm-up steps, gradient clipping at 1, EMA, times shifted towards noise by resolution),
and each other arm changes one thing: no warm-up, no clipping, QK-norm, attention also at 32 px. Each arm reports its
loss over the last 40 steps, the largest logged gradient norm (a mean over a few steps, before clipping), seconds per step, and KID and in-domain scores of 64 samples of
its EMA model (what EMA itself and uniform times do is in bench/multiscale128.py's results). Attention at the full
128 px is not trained: the cost of one layer is measured, per image.
Writes nbs/study/stabilisers128.json.

    .venv/bin/python bench/stabilisers128.py --threads 2
"""
import argparse, json, time
from pathlib import Path
import torch
from flowers_fm.models import Attention2d
from multiscale128 import ROOT, draw, train_steps, score, load_dataset, InceptionFeatures, image_features, domain_net, heldout_dataset, \
    data_root, DomainMetrics, from_uint8, to_uint8, downsample, N_IMAGES, SEED

BASE = dict(res=128, model='unet_small128', batch_size=16, time_sampler='shifted', lr=2e-3)
ARMS = {'stabilised': {}, 'no_warmup': dict(warmup=0), 'no_clipping': dict(grad_clip=0.), 'qk_norm': dict(qk_norm=True),
        'attention_32px': dict(attn_res='32,16')}

def attention_cost(res:int, ch:int, reps:int=2) -> float:
    "Seconds of one forward and backward of an attention layer over a res x res map of `ch` channels, for one image."
    att, x = Attention2d(ch, 4), torch.randn(1, ch, res, res, requires_grad=True)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter(); att(x).sum().backward(); times.append(time.perf_counter() - t0)
    return min(times)

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--steps', type=int, default=120)
    p.add_argument('--arms', default=','.join(ARMS))
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--out', default=str(ROOT / 'nbs' / 'study' / 'stabilisers128.json'))
    p.add_argument('--work', default='/tmp/stabilisers128')
    a = p.parse_args()
    torch.set_num_threads(a.threads); torch.set_num_interop_threads(1)
    out = Path(a.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    ds = load_dataset('flowers', 128, n=N_IMAGES, seed=SEED)
    inception = InceptionFeatures()
    ref = ds.images[torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:256]]
    ref_feats = image_features(ref, inception, progress=False)
    net = domain_net(heldout_dataset('flowers', 32, n_images=4096, seed=0), data_root() / 'domain', steps=300)
    domain = DomainMetrics(net, to_uint8(downsample(from_uint8(ref), 32)))
    results['protocol'] = dict(steps=a.steps, threads=a.threads, n=64, euler_steps=25, kid_ref=256, **BASE)
    results['attention_s'] = {f'{r}px': round(attention_cost(r, c), 3) for r, c in ((16, 64), (32, 64), (64, 32), (128, 16))}
    print('attention', results['attention_s'], flush=True)
    for arm in a.arms.split(','):
        part = dict(BASE, **ARMS[arm])
        t = train_steps(part, a.steps, Path(a.work) / arm)
        curve = t['info']['curve']
        tail = [c['loss'] for c in curve if c['step'] > a.steps - 40]
        row = dict(loss_last40=round(sum(tail) / len(tail), 4), max_grad_norm=max(c['grad_norm'] for c in curve), step_s=round(t['info']['loop_s'] / a.steps, 3), curve=curve)
        row.update(score(draw(t['model'], 64, 25)[0], ref_feats, inception, domain))
        results[arm] = row
        print(arm, {k: v for k, v in row.items() if k != 'curve'}, flush=True)
        out.write_text(json.dumps(results, indent=1) + '\n')

if __name__ == '__main__': main()
