"""What knowing a data folder by content costs: a folder of N small PNGs (Fashion-MNIST's 28x28 grey), fingerprinted
by the files' names and sizes only (what kt_nb did before), by their bytes with no hashes kept (the first run on a
folder, or a copy of it), and by their bytes again (a rerun or a resume: only sizes and modification times are read).

    python scripts/data_identity_cost.py                 # 50,000 images, three repeats, medians
    python scripts/data_identity_cost.py --images 5000   # smaller

The folder and the hash index go to a temporary folder, removed at the end; nothing else is read or written.
"""
import argparse, hashlib, json, os, statistics, tempfile, time
from pathlib import Path

import numpy as np
from PIL import Image


def by_size(root: Path, names: list[str]) -> str:
    "The fingerprint kt_nb kept before: each file's name and size."
    h = hashlib.sha256()
    for name in names: h.update((json.dumps([name, os.stat(root/name).st_size]) + '\n').encode())
    return h.hexdigest()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--images', type=int, default=50_000)
    parser.add_argument('--repeats', type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ['KT_NB_CACHE'] = str(Path(tmp)/'cache')   # the hash index, kept apart from the user's
        from kt_nb.data.sources import files_fingerprint
        root, rng, names = Path(tmp)/'data', np.random.default_rng(0), []
        for i in range(args.images):
            name = f'train/{i % 10}/{i}.png'
            (root/name).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(root/name)
            names.append(name)
        size = sum((root/n).stat().st_size for n in names)
        index = Path(os.environ['KT_NB_CACHE'])/'file-hashes'
        timings = {'names and sizes (before)': [], 'bytes, first read': [], 'bytes, rerun (index kept)': []}
        for _ in range(args.repeats):
            t = time.perf_counter(); by_size(root, names); timings['names and sizes (before)'].append(time.perf_counter() - t)
            for f in index.glob('*.json'): f.unlink()
            t = time.perf_counter(); files_fingerprint(root, names); timings['bytes, first read'].append(time.perf_counter() - t)
            t = time.perf_counter(); files_fingerprint(root, names)
            timings['bytes, rerun (index kept)'].append(time.perf_counter() - t)
        print(f"{args.images:,} PNGs, {size / 1e6:.1f} MB, {os.cpu_count()} cores; median of {args.repeats} (page cache warm)")
        for what, seconds in timings.items(): print(f"  {what:<28} {statistics.median(seconds):7.2f} s")


if __name__ == '__main__':
    main()
