"""128-px generated flowers through an autoencoder's latent space, against the cascade and the single-scale models of
bench/multiscale128.py: the same 2,048 training flowers, flow budget, samples, Euler steps and metrics.

Stages, each kept in the results file as it finishes (a rerun skips what is there):
  autoencoders  each option of AUTOENCODERS trained with the loop (objective autoencoder) for --ae_budget seconds; its
                reconstructions of 256 held-out flowers scored: rFID, KID (TF-Inception, clean resize, against the same
                1,024 training images as the samples), PSNR
  latent        a flow (unet_latent) trained on each autoencoder's cached latents for --budget seconds (the cascade's
                450 s), its samples decoded and scored as multiscale128's arms: KID, in-domain FD, recall, class TV
  pairing       the main autoencoder's flow again with exact minibatch OT and with sort pairing, at the same budget

    .venv/bin/python bench/latent128.py --threads 2
Writes nbs/study/latent128.json and the grids nbs/images/latent128_*.jpg.
"""
import argparse, json, platform, sys, time
from pathlib import Path
import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from multiscale128 import COMMON, N_IMAGES, SEED, save_grid  # one protocol for both benchmarks
from flowers_fm.autoencoder import autoencoder_loss, psnr
from flowers_fm.config import TrainConfig
from flowers_fm.core import from_uint8, to_uint8
from flowers_fm.data import data_root, heldout_dataset, load_dataset
from flowers_fm.domain import DomainMetrics, domain_net
from flowers_fm.evaluation import reconstruct
from flowers_fm.fid import InceptionFeatures, image_features, reference_features
from flowers_fm.latents import latent_model
from flowers_fm.checkpoint import load_trained_model
from flowers_fm.lowres import downsample
from flowers_fm.metrics import image_metrics
from flowers_fm.models import count_parameters, get_model
from flowers_fm.pairing import get_pairing
from flowers_fm.train import train

ROOT = ROOT.parent
AUTOENCODERS = {  # name: (preset, kl_weight, spectral_weight)
    'kl_f8': ('ae_kl_f8', 1e-4, 1.),  # the main one
    'kl_f8_l1': ('ae_kl_f8', 1e-4, 0.),  # pixel L1 alone: what the spectral term adds
    'fsq_f8': ('ae_fsq_f8', 0., 1.),  # quantised
    'kl_f4': ('ae_kl_f4', 1e-4, 1.),  # 32x32x3 latents
}
AE_BATCH, FLOW_BATCH, FLOW_MODEL = 8, 32, 'unet_latent'

def seconds_per_step(step, reps:int=5) -> float:
    "The best of `reps` timings of `step()` after a warm-up."
    times = []
    for _ in range(reps + 1):
        t0 = time.perf_counter(); step(); times.append(time.perf_counter() - t0)
    return min(times[1:])

def ae_step_seconds(preset:str) -> float:
    ae = get_model(preset).train()
    opt, x = torch.optim.AdamW(ae.parameters(), 1e-3), torch.rand(AE_BATCH, 3, 128, 128) * 2 - 1
    def step(): autoencoder_loss(ae, x, torch.randn(AE_BATCH, *ae.latent_shape())).loss.backward(); opt.step(); opt.zero_grad()
    return seconds_per_step(step)

def flow_step_seconds(shape:tuple, pairing:str='independent') -> float:
    "Seconds of one step of the flow, its pairing included (an arm pays for its pairer in steps)."
    net = get_model(FLOW_MODEL, in_channels=shape[0], res=shape[-1]).train()
    opt, x, pair = torch.optim.AdamW(net.parameters(), 1e-3), torch.randn(FLOW_BATCH, *shape), None if pairing == 'independent' else get_pairing(pairing)
    def step():
        x0 = torch.randn_like(x)
        if pair is not None: x0 = x0[pair(x0, x, generator=torch.Generator())]
        (net(x0, torch.rand(FLOW_BATCH)) - x).pow(2).mean().backward(); opt.step(); opt.zero_grad()
    return seconds_per_step(step)

def run_info(r:dict, cfg:TrainConfig, took:float, step_s:float, key:str) -> dict:
    rows = r['metrics']
    curve = [dict(step=m['step'], loss=round(m[key], 4)) for m in rows if key in m]
    loop_s = sum((m['step'] - prev) * cfg.batch_size / m['images_per_s'] for prev, m in zip([0] + [m['step'] for m in rows], rows) if 'images_per_s' in m)
    return dict(model=cfg.model, batch_size=cfg.batch_size, steps=cfg.steps, step_s=round(step_s, 3), loop_s=round(loop_s, 1), train_s=round(took, 1),
                params=count_parameters(r['model']), curve=curve)

def train_autoencoder(name:str, budget:float, work:Path, steps:int=0) -> dict:
    "Train one autoencoder option for `steps`, or for about `budget` seconds (its steps set from its measured step time)."
    preset, kl, spectral = AUTOENCODERS[name]
    step_s = ae_step_seconds(preset)
    cfg = TrainConfig(**(COMMON | dict(objective='autoencoder', model=preset, res=128, batch_size=AE_BATCH, kl_weight=kl, spectral_weight=spectral,
                                       steps=steps or max(20, round(budget / step_s)), log_every=25, run_dir=str(work / f'ae_{name}'), overwrite=True)))
    t0 = time.perf_counter(); r = train(cfg); took = time.perf_counter() - t0
    return dict(run_dir=cfg.run_dir, preset=preset, kl_weight=kl, spectral_weight=spectral, **run_info(r, cfg, took, step_s, 'loss_rec'))

def train_flow(ae_run:str, budget:float, work:Path, name:str, pairing:str='independent', steps:int=0, main_shape:tuple=(4, 16, 16)) -> tuple:
    "Train a flow on an autoencoder's latents for about `budget` seconds, or for `steps` scaled by its step time against a flow on `main_shape`."
    shape = load_trained_model(ae_run).model.latent_shape(128)
    step_s = flow_step_seconds(shape, pairing)
    # steps given: equal time by the ratio of step times measured back to back (a busy machine slows both alike)
    steps = round(steps * flow_step_seconds(main_shape) / step_s) if steps else round(budget / step_s)
    cfg = TrainConfig(**(COMMON | dict(latent=ae_run, model=FLOW_MODEL, res=128, batch_size=FLOW_BATCH, pairing=pairing,
                                       steps=max(20, steps), log_every=10, run_dir=str(work / f'flow_{name}'), overwrite=True)))
    t0 = time.perf_counter(); r = train(cfg); took = time.perf_counter() - t0
    saved = load_trained_model(cfg.run_dir)
    return latent_model(saved.model, saved.latent, 128), dict(pairing=pairing, latent=saved.latent['sha1'][:12], **run_info(r, cfg, took, step_s, 'loss_fm'))

@torch.no_grad()
def draw(model, n:int, steps:int, seed:int=1) -> tuple:
    "uint8 images of a latent model from seeded noise, the seconds they took and the model calls per image."
    g, out, t0 = torch.Generator().manual_seed(seed), [], time.perf_counter()
    for b in range(0, n, 64):
        s = model.sample(min(64, n - b), generator=g, steps=steps)
        out.append(to_uint8(s.x.float().clamp(-1, 1)))
    return torch.cat(out), time.perf_counter() - t0, s.nfe

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--budget', type=float, default=450., help='flow-training seconds per arm (multiscale128.json: 450)')
    p.add_argument('--ae_budget', type=float, default=600., help='training seconds per autoencoder')
    p.add_argument('--ae_steps', type=int, default=0, help="steps of each autoencoder (0: from --ae_budget and its step time; give the main one's to compare options at equal steps)")
    p.add_argument('--flow_steps', type=int, default=0, help="steps of a flow on latents of the main autoencoder's shape, others scaled by their step time (0: from --budget; give the main flow's steps to add arms on a busy machine)")
    p.add_argument('--n', type=int, default=256, help='samples (and reconstructions) scored')
    p.add_argument('--steps', type=int, default=25, help='Euler steps')
    p.add_argument('--autoencoders', default=','.join(AUTOENCODERS), help='autoencoders to train, comma-separated (the first is the main one)')
    p.add_argument('--flows', default='kl_f8,fsq_f8,kl_f8_l1,kl_f4', help='autoencoders whose latents get a flow')
    p.add_argument('--pairings', default='exact_ot,sort', help='pairings of the main autoencoder\'s flow, beside independent pairs')
    p.add_argument('--only', default='', help='run only these stages: autoencoders, latent, pairing (comma-separated)')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--ref', type=int, default=1024, help='training images in the KID reference')
    p.add_argument('--out', default=str(ROOT / 'nbs' / 'study' / 'latent128.json'))
    p.add_argument('--work', default='/tmp/latent128', help='folder of the runs')
    a = p.parse_args()
    torch.set_num_threads(a.threads); torch.set_num_interop_threads(1)
    out, work, stages = Path(a.out), Path(a.work), set((a.only or 'autoencoders,latent,pairing').split(','))
    res = json.loads(out.read_text()) if out.exists() else {}
    save = lambda: out.write_text(json.dumps(res, indent=1) + '\n')
    res['protocol'] = dict(budget_s=a.budget, ae_budget_s=a.ae_budget, n=a.n, euler_steps=a.steps, threads=a.threads, n_images=N_IMAGES, flow_model=FLOW_MODEL,
                           flow_batch=FLOW_BATCH, ae_batch=AE_BATCH, **{k: v for k, v in COMMON.items() if k in ('lr', 'warmup', 'ema')},
                           kid=f'TF-Inception clean resize, {a.ref} training images at 128 px', hardware=f'{platform.machine()} CPU, torch {torch.__version__}, {a.threads} threads')
    if a.ae_steps or a.flow_steps: res['protocol']['steps_given'] = dict(autoencoder=a.ae_steps, flow=a.flow_steps)  # arms added at the main ones' steps
    t0 = time.perf_counter()
    say = lambda what: print(f'[{time.perf_counter() - t0:7.1f} s] {what}', flush=True)
    ds = load_dataset('flowers', 128, n=N_IMAGES, seed=SEED)
    held = heldout_dataset('flowers', 128, 'all', None, N_IMAGES, SEED)
    say('data'); inception = InceptionFeatures()
    ref = reference_features(ds, inception, a.ref, seed=0, progress=False)
    say('reference features'); net = domain_net(heldout_dataset('flowers', 32, n_images=4096, seed=0), data_root() / 'domain', steps=300)
    domain = DomainMetrics(net, to_uint8(downsample(from_uint8(ds.images[ref.indices]), 32)))
    def scored(images):  # multiscale128's metrics (KID, in-domain FD, recall, class TV) and FID, precision, recall, from one Inception pass
        m = image_metrics(image_features(images, inception, progress=False), ref.features)
        d = domain(to_uint8(downsample(from_uint8(images), 32)))
        return dict(kid=m['kid'], fid=m['fid'], precision=m['precision'], recall=m['recall'], **{f'domain_{k}': v for k, v in d.items()})
    res.setdefault('autoencoders', {}); res.setdefault('latent', {}); res.setdefault('pairing', {})
    names = a.autoencoders.split(',')
    for name in names if 'autoencoders' in stages else []:
        if name in res['autoencoders']: continue
        say(f'autoencoder {name}'); info = train_autoencoder(name, a.ae_budget, work, a.ae_steps)
        ae = load_trained_model(info['run_dir']).model
        originals = held.images[:a.n]
        recon = reconstruct(ae, originals)
        m = scored(recon)
        info.update(rfid=m['fid'], rkid=m['kid'], rdomain_fd=m['domain_fd'], psnr=psnr(recon, originals), grid=save_grid(torch.cat([originals[:8], recon[:8]]), f'recon_{name}', 'latent128'))
        res['autoencoders'][name] = info; save()
        print('autoencoder', name, {k: v for k, v in info.items() if k != 'curve'}, flush=True)
    arms = [(n, 'independent') for n in a.flows.split(',') if 'latent' in stages] + [(names[0], p) for p in a.pairings.split(',') if p and 'pairing' in stages]
    for name, pairing in arms:
        key, table = (name, 'latent') if pairing == 'independent' else (pairing, 'pairing')
        if key in res[table] or name not in res['autoencoders']: continue
        say(f'flow {name} {pairing}'); model, info = train_flow(res['autoencoders'][name]['run_dir'], a.budget, work, f'{name}_{pairing}', pairing, a.flow_steps)
        say('sampling')
        images, sample_s, nfe = draw(model, a.n, a.steps)
        info.update(autoencoder=name, sample_s=round(sample_s, 1), nfe=nfe, grid=save_grid(images, f'{name}_{pairing}', 'latent128'), **scored(images))
        res[table][key] = info; save()
        print(table, key, {k: v for k, v in info.items() if k != 'curve'}, flush=True)

if __name__ == '__main__': main()
