"""128-px generated flowers at equal training wall-clock on a CPU (the evidence of nbs/09_multiscale).

Arms, each given the same training seconds (`--budget`), step counts set from each model's measured step time:
  uniform      one 128-px UNet, uniform times: plain flow matching as it is usually trained
  logit_normal one 128-px UNet, logit-normal times (the library's default)
  shifted      one 128-px UNet, times shifted towards noise by resolution (shift 4 at 128 px): the single-model alternative
  cascade      a 32-px base, a 64-px stage and a 128-px stage (09_multiscale), sharing the budget 1 : 1.5 : 2.5

Each arm's EMA model draws `--n` samples with the same Euler steps, scored by KID (TF-Inception, clean resize) against
1,024 of the training images at 128 px, and by the in-domain classifier of 12_pairing_study (32 px, trained on flowers no
run sees) on the samples shrunk to 32 px. Writes nbs/study/multiscale128.json and the grids nbs/images/multiscale128_*.jpg.

    .venv/bin/python bench/multiscale128.py --budget 480 --threads 2
"""
import argparse, json, shutil, time
from pathlib import Path
import torch
from PIL import Image
from flowers_fm.batches import make_batches
from flowers_fm.config import TrainConfig, make_model
from flowers_fm.core import from_uint8, image_grid, to_uint8
from flowers_fm.data import data_root, load_dataset
from flowers_fm.domain import DomainMetrics, domain_net
from flowers_fm.data import heldout_dataset
from flowers_fm.fid import InceptionFeatures, image_features
from flowers_fm.metrics import kid
from flowers_fm.models import count_parameters
from flowers_fm.multiscale import Cascade
from flowers_fm.lowres import downsample
from flowers_fm.sampling import sample
from flowers_fm.train import train

ROOT = Path(__file__).resolve().parent.parent
N_IMAGES, SEED = 2048, 0
COMMON = dict(data='flowers', n_images=N_IMAGES, lr=1e-3, warmup=50, ema=0.999, channels_last=True, sample_every=0, sample_steps=10,
              save_every=0, progress=False, device='cpu', seed=SEED)
SINGLE = dict(res=128, model='unet_small128', batch_size=16)
ARMS = {
    'uniform': [dict(SINGLE, time_sampler='uniform')],
    'logit_normal': [dict(SINGLE, time_sampler='logit_normal')],
    'shifted': [dict(SINGLE, time_sampler='shifted')],
    'cascade': [dict(res=32, model='unet_small', batch_size=32, share=1.),
                dict(res=64, cond_res=32, model='unet_small', batch_size=16, share=1.5),
                dict(res=128, cond_res=64, model='unet_small128', batch_size=16, share=2.5)],
}

def config(part:dict, run_dir:Path, steps:int=10) -> TrainConfig:
    kw = {k: v for k, v in part.items() if k != 'share'}
    return TrainConfig(**(COMMON | kw), steps=steps, log_every=max(1, steps // 40), run_dir=str(run_dir)).check()

def step_seconds(cfg:TrainConfig, reps:int=3) -> float:
    "Seconds per optimizer step of `cfg`'s model on one batch (forward, backward, AdamW), the best of `reps` after a warm-up."
    batches = make_batches(cfg)
    model = make_model(cfg, batches).to(memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(model.parameters(), cfg.lr)
    x = torch.randn(cfg.batch_size, 3, cfg.res, cfg.res).contiguous(memory_format=torch.channels_last)
    y = torch.randn(cfg.batch_size, 4, cfg.res, cfg.res) if cfg.cond_res else None
    times = []
    for _ in range(reps + 1):
        t0 = time.perf_counter()
        (model(x, torch.rand(len(x)), y) - x).pow(2).mean().backward(); opt.step(); opt.zero_grad()
        times.append(time.perf_counter() - t0)
    return min(times[1:])

def train_steps(part:dict, steps:int, run_dir:Path, step_s:float|None=None) -> dict:
    "Train one model for `steps`; its EMA and raw models, loss curve (step, loss, gradient norm) and the seconds it took."
    cfg = config(part, run_dir, steps)
    shutil.rmtree(run_dir, ignore_errors=True)  # an interrupted attempt's checkpoints: this arm starts again from nothing
    t0 = time.perf_counter()
    r = train(cfg)
    took = time.perf_counter() - t0
    rows = [json.loads(l) for l in (run_dir / 'metrics.jsonl').read_text().splitlines()]
    curve = [dict(step=row['step'], loss=round(row['loss_fm'], 4), grad_norm=round(row['grad_norm'], 3)) for row in rows]
    # seconds inside the loop's steps (each logged window's images over its images per second): start-up, data and the checkpoint left out
    loop_s = sum((row['step'] - prev) * cfg.batch_size / row['images_per_s'] for prev, row in zip([0] + [r['step'] for r in rows], rows))
    return dict(model=r['ema'].eval(), raw=r['model'].eval(), info=dict(res=cfg.res, cond_res=cfg.cond_res, model=cfg.model, batch_size=cfg.batch_size,
                time_sampler=cfg.time_sampler, steps=cfg.steps, step_s=step_s, loop_s=round(loop_s, 1), train_s=round(took, 1),
                params=count_parameters(r['model']), curve=curve))

def train_part(part:dict, seconds:float, run_dir:Path) -> dict:
    "Train one model for about `seconds`, its steps set from its measured step time (`train_steps`)."
    sec = step_seconds(config(part, run_dir))
    return train_steps(part, max(20, round(seconds / sec)), run_dir, round(sec, 3))

@torch.no_grad()
def draw(model, n:int, steps:int, seed:int=1) -> tuple[torch.Tensor, float, int]:
    "uint8 samples of a model or cascade from seeded noise, the seconds they took and the model calls per sample."
    g, out, nfe, t0 = torch.Generator().manual_seed(seed), [], 0, time.perf_counter()
    for b in range(0, n, 64):
        k = min(64, n - b)
        s = model.sample(k, generator=g, steps=steps) if isinstance(model, Cascade) else sample(model, k, (3, model.res, model.res), generator=g, steps=steps)
        out.append(to_uint8(s.x)); nfe = s.nfe
    return torch.cat(out), time.perf_counter() - t0, nfe

def score(images:torch.Tensor, ref_feats:torch.Tensor, inception, domain:DomainMetrics) -> dict:
    feats = image_features(images, inception, progress=False)
    d = domain(to_uint8(downsample(from_uint8(images), 32)))
    return dict(kid=kid(feats, ref_feats), **{f'domain_{k}': v for k, v in d.items()})

def save_grid(images:torch.Tensor, name:str, prefix:str='multiscale128'):
    "The first 16 of `images` as a grid of two rows, nbs/images/{prefix}_{name}.jpg; its path from the repository root."
    path = ROOT / 'nbs' / 'images' / f'{prefix}_{name}.jpg'
    Image.fromarray(image_grid(from_uint8(images[:16]), nrow=8).numpy()).save(path, quality=85)
    return str(path.relative_to(ROOT))

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--budget', type=float, default=480., help='training seconds per arm')
    p.add_argument('--n', type=int, default=256, help='samples scored per arm')
    p.add_argument('--steps', type=int, default=25, help='Euler steps of every model')
    p.add_argument('--arms', default=','.join(ARMS), help='arms to run, comma-separated')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--out', default=str(ROOT / 'nbs' / 'study' / 'multiscale128.json'))
    p.add_argument('--ref', type=int, default=1024, help='training images in the KID reference')
    p.add_argument('--work', default='/tmp/multiscale128', help='folder of the runs')
    a = p.parse_args()
    torch.set_num_threads(a.threads); torch.set_num_interop_threads(1)
    out, work = Path(a.out), Path(a.work)
    results = json.loads(out.read_text()) if out.exists() else {}
    results['protocol'] = dict(budget_s=a.budget, n=a.n, euler_steps=a.steps, threads=a.threads, n_images=N_IMAGES, **{k: v for k, v in COMMON.items() if k in ('lr', 'warmup', 'ema')},
                               kid=f'TF-Inception clean resize, {a.ref} training images at 128 px', domain='12_pairing_study classifier at 32 px, samples shrunk by block means')
    # the reference: training flowers at 128 px; the floor: flowers of another seed, which no run saw
    ds = load_dataset('flowers', 128, n=N_IMAGES, seed=SEED)
    inception = InceptionFeatures()
    ref = ds.images[torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:a.ref]]
    ref_feats = image_features(ref, inception, progress=False)
    net = domain_net(heldout_dataset('flowers', 32, n_images=4096, seed=0), data_root() / 'domain', steps=300)
    domain = DomainMetrics(net, to_uint8(downsample(from_uint8(ref), 32)))
    if 'floor' not in results:
        other = load_dataset('flowers', 128, n=a.n, seed=SEED + 7).images
        results['floor'] = score(other, ref_feats, inception, domain); save_grid(other, 'real')
        print('floor', results['floor'], flush=True)
    for arm in a.arms.split(','):
        parts, total = ARMS[arm], sum(part.get('share', 1.) for part in ARMS[arm])
        trained = [train_part(part, a.budget * part.get('share', 1.) / total, work / arm / f"{part['res']}px") for part in parts]
        model = trained[0]['model'] if len(trained) == 1 else Cascade([t['model'] for t in trained], cond_noise=0.1)  # half the training maximum
        images, sample_s, nfe = draw(model, a.n, a.steps)
        row = dict(parts=[t['info'] for t in trained], train_s=round(sum(t['info']['train_s'] for t in trained), 1),
                   loop_s=round(sum(t['info']['loop_s'] for t in trained), 1), sample_s=round(sample_s, 1), nfe=nfe,
                   grid=save_grid(images, arm), **score(images, ref_feats, inception, domain))
        if arm == 'shifted':  # what the EMA adds: the same run's raw weights
            raw, _, _ = draw(trained[0]['raw'], a.n, a.steps)
            row['raw_weights'] = score(raw, ref_feats, inception, domain)
        results[arm] = row
        print(arm, {k: v for k, v in row.items() if k != 'parts'}, flush=True)
        out.write_text(json.dumps(results, indent=1) + '\n')

if __name__ == '__main__': main()
