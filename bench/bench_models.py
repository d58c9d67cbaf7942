"""Training speed of the image backbones on the machine it runs on, side by side with TorchCFM's UNet of the same configuration.

Run it with `bench/run.sh bench_models.py`. One training step is forward, backward and an AdamW step on a batch of
random images with the flow-matching loss shape. Each configuration runs in a fresh process so that its peak memory
(peak resident set size on a CPU, `max_memory_allocated` on a GPU) is its own.
"""
import argparse, json, resource, subprocess, sys, time
import torch

def build(name, res):
    if name == 'torchcfm_unet':
        from torchcfm.models.unet.unet import UNetModelWrapper
        m = UNetModelWrapper(dim=(3, res, res), num_channels=128, num_res_blocks=2, channel_mult=[1, 2, 2, 2], num_heads=4,
                             num_head_channels=64, attention_resolutions='16', dropout=0.1)
        return m, (lambda x, t: m(t, x))
    from flowers_fm.models import get_model
    m = get_model(name, res=res)
    return m, (lambda x, t: m(x, t))

def one(a):
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    torch.manual_seed(0)
    model, call = build(a.model, a.res)
    model.to(dev).train()
    x = torch.randn(a.batch, 3, a.res, a.res, device=dev); v = torch.randn_like(x); t = torch.rand(a.batch, device=dev)
    if 'channels_last' in a.mode:
        model.to(memory_format=torch.channels_last); x = x.to(memory_format=torch.channels_last); v = v.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused='fused' in a.mode)
    amp = torch.autocast(dev.type, dtype=torch.bfloat16, enabled='bf16' in a.mode)
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc:  # forward and backward of one step, counted on the eager model
        with amp: loss = (call(x, t).float() - v).pow(2).mean()
        loss.backward()
    flops = fc.get_total_flops()
    fwd = torch.compile(call) if 'compile' in a.mode else call
    def step():
        with amp: loss = (fwd(x, t).float() - v).pow(2).mean()
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    sync = torch.cuda.synchronize if dev.type == 'cuda' else (lambda: None)
    for _ in range(a.warmup): step()
    sync(); start = time.perf_counter()
    for _ in range(a.steps): step()
    sync(); sec = (time.perf_counter() - start) / a.steps
    out = dict(model=a.model, res=a.res, mode=a.mode, batch=a.batch, threads=a.threads, device=a.device,
               params_M=sum(p.numel() for p in model.parameters()) / 1e6, s_per_step=sec, img_per_s=a.batch / sec,
               tflops=flops / sec / 1e12, peak_fraction=flops / sec / 1e12 / a.peak_tflops if a.peak_tflops else None,
               peak_rss_MB=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, base_rss_MB=base_rss)
    if dev.type == 'cuda': out['peak_cuda_MB'] = torch.cuda.max_memory_allocated() / 2 ** 20
    print(json.dumps(out), flush=True)

def interleaved(a):
    "Our UNet and TorchCFM's in one process, steps alternating, so that both see the same machine load."
    torch.set_num_threads(a.threads)
    for res in a.res_list:
        runs = {}
        for name in ('unet32', 'torchcfm_unet'):
            torch.manual_seed(0)
            m, call = build(name, res); m.train()
            opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
            x = torch.randn(a.batch, 3, res, res); v = torch.randn_like(x); t = torch.rand(a.batch)
            runs[name] = (m, call, opt, x, v, t, [])
        def step(name):
            m, call, opt, x, v, t, times = runs[name]
            start = time.perf_counter()
            loss = (call(x, t) - v).pow(2).mean(); opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
            return time.perf_counter() - start
        for name in runs: step(name)  # warm-up
        for _ in range(a.steps):
            for name in runs: runs[name][-1].append(step(name))
        med = {name: sorted(r[-1])[len(r[-1]) // 2] for name, r in runs.items()}
        print(f"{res} px fp32, {a.steps} alternating steps: flowers_fm unet32 {a.batch / med['unet32']:.2f} img/s, torchcfm UNet "
              f"{a.batch / med['torchcfm_unet']:.2f} img/s: ratio {med['torchcfm_unet'] / med['unet32']:.2f} (target >= 1); "
              f"all steps (s): {[round(x, 2) for x in runs['unet32'][-1]]} vs {[round(x, 2) for x in runs['torchcfm_unet'][-1]]}", flush=True)

def main(a):
    rows = []
    for res in a.res_list:
        for model in a.models:
            for mode in a.modes:
                if model.startswith('dit') and 'channels_last' in mode: continue
                cmd = [sys.executable, __file__, '--one', '--model', model, '--res', str(res), '--mode', mode, '--batch', str(a.batch),
                       '--steps', str(a.steps), '--warmup', str(a.warmup), '--threads', str(a.threads), '--device', a.device, '--peak_tflops', str(a.peak_tflops)]
                r = subprocess.run(cmd, capture_output=True, text=True)
                if r.returncode: print(f'{model} {res} {mode} failed:\n{r.stderr[-2000:]}', flush=True); continue
                row = json.loads(r.stdout.strip().splitlines()[-1]); rows.append(row)
                print(f"{model:14s} {res:4d} px {mode:18s} {row['img_per_s']:7.2f} img/s  {row['s_per_step']:7.3f} s/step  "
                      f"{row['tflops']:7.2f} TFLOP/s" + (f" ({100 * row['peak_fraction']:.0f}% of peak)" if row['peak_fraction'] else '') + f"  peak RSS {row['peak_rss_MB']:7.0f} MB" + (f"  peak GPU {row['peak_cuda_MB']:7.0f} MB" if 'peak_cuda_MB' in row else ''), flush=True)
                with open(a.out, 'a') as f: f.write(json.dumps(row) + '\n')
    for res in a.res_list:
        for mode in a.modes:
            ours = [r for r in rows if r['model'] == 'unet32' and r['res'] == res and r['mode'] == mode]
            peer = [r for r in rows if r['model'] == 'torchcfm_unet' and r['res'] == res and r['mode'] == mode]
            if ours and peer: print(f"{res} px {mode}: flowers_fm unet32 / torchcfm UNet images per second = {ours[0]['img_per_s'] / peer[0]['img_per_s']:.2f} (target >= 1)")

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--one', action='store_true', help='run one configuration in this process and print it as JSON')
    ap.add_argument('--interleaved', action='store_true', help='our UNet and the peer in one process, steps alternating (fp32)')
    ap.add_argument('--model', default='unet32'); ap.add_argument('--res', type=int, default=32); ap.add_argument('--mode', default='fp32')
    ap.add_argument('--models', nargs='+', default=['unet32', 'torchcfm_unet', 'dit_s2'])
    ap.add_argument('--res-list', nargs='+', type=int, default=[32, 64])
    ap.add_argument('--modes', nargs='+', default=['fp32', 'bf16', 'channels_last', 'bf16+channels_last'])
    ap.add_argument('--batch', type=int, default=16); ap.add_argument('--steps', type=int, default=3); ap.add_argument('--warmup', type=int, default=1)
    ap.add_argument('--threads', type=int, default=torch.get_num_threads())
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--peak_tflops', type=float, default=0., help="the device's dense bf16 peak, for the fraction reached (e.g. 989 for an H100/H200 SXM)")
    ap.add_argument('--out', default='bench/results_models.jsonl')
    a = ap.parse_args()
    one(a) if a.one else interleaved(a) if a.interleaved else main(a)
