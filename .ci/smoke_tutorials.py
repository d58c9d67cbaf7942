"""Execute every tutorial in nbs/tutorials in smoke mode (FLOWERS_FM_SMOKE=1: generated data, a tiny model, a few steps),
without its shell install cells, each in a process of its own. Prints `ok: NAME` or `FAILED: NAME` per notebook and exits
with the number that failed. With a notebook's path as argument, runs that one in this process."""
import os, subprocess, sys, time
from pathlib import Path

root = Path(__file__).resolve().parent.parent
if len(sys.argv) > 1:
    from execnb.nbio import read_nb
    from execnb.shell import CaptureShell
    path = Path(sys.argv[1])
    nb = read_nb(path)
    nb.cells = [c for c in nb.cells if c.cell_type == 'code' and not c.source.lstrip().startswith('!')]  # installs are the user's
    CaptureShell(path=path.parent).run_all(nb, exc_stop=True)
    sys.exit(0)
failed = 0
for path in sorted((root / 'nbs' / 'tutorials').glob('*.ipynb')):
    if path.name.startswith('_'): continue
    start = time.time()
    r = subprocess.run([sys.executable, __file__, str(path)], env=dict(os.environ, FLOWERS_FM_SMOKE='1'), capture_output=True, text=True)
    name = path.relative_to(root)
    if r.returncode == 0: print(f'ok: {name} in smoke mode ({time.time() - start:.0f} s)', flush=True)
    else:
        failed += 1
        print(f'FAILED: {name} in smoke mode:\n{r.stderr[-3000:]}', flush=True)
sys.exit(failed)
