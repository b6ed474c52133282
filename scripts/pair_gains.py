"""The verdict on the pair-gain predictor, computed from a finished sweep of pairs, and the fit kt_nb ships.

    kt-nb sweep sweeps/pair_zoo.yaml --workers 2          # every pair of the six-model zoo, five seeds (resumable)
    python scripts/pair_gains.py runs/sweeps/pair_zoo      # this script

It screens each seed's stage-1 models on the validation split, joins their features to the gains the sweep measured
(`kt_nb.classification.gains.sweep_table`), and writes, without touching the sweep's folder:
- results/pair_gains.json: every pair with each model's measured gain and interval and its held-out prediction; the
  seeds and methods; Spearman's rho between held-out predictions and measured gains (leave one pair out) with its
  bootstrap interval over pairs, per method and over all; the same for the accuracy gap alone and the parameter count
  alone; the share of signs right; the points that gained beyond noise and whether the prediction said so;
- kt_nb/classification/pair_gains_fit.json: the fit on every pair, with those validation figures (`kt-nb screen`);
- results/pair_gains_table.csv: the table the fit was made on (features and gains, a row per model in a pair).
The lab book (docs/results/lab_book.ipynb) draws predicted against measured from results/pair_gains.json.
"""
import argparse, json
from pathlib import Path

from kt_nb.classification.gains import FIT_FILE, gains_verdict, save_fit, sweep_table
from kt_nb.data.storage import atomic_write

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('sweep', type=Path, help='a finished sweep (or demo) folder of pairs')
    parser.add_argument('--resamples', type=int, default=2000, help='bootstrap resamples (default: 2000)')
    args = parser.parse_args(argv)
    table = sweep_table(args.sweep)
    verdict, fit = gains_verdict(table, n=args.resamples)
    verdict['sweep'] = 'sweeps/pair_zoo.yaml' if args.sweep.name == 'pair_zoo' else str(args.sweep)
    results = ROOT/'results'
    atomic_write(results/'pair_gains.json', lambda p: p.write_text(json.dumps(verdict, indent=1) + '\n'))
    atomic_write(results/'pair_gains_table.csv', lambda p: table.to_csv(p, index=False))
    atomic_write(FIT_FILE, lambda p: save_fit(fit, verdict, p))
    rho, naive = verdict['spearman'], verdict['naive']
    print(f"{len(verdict['pairs'])} pairs, {rho['points']} points, {verdict['seeds']} seeds: held-out Spearman "
          f"{rho['rho']:.2f} [{rho['lo']:.2f}, {rho['hi']:.2f}]; accuracy gap alone {naive['accuracy_gap']['rho']:.2f} "
          f"[{naive['accuracy_gap']['lo']:.2f}, {naive['accuracy_gap']['hi']:.2f}]; parameter count alone "
          f"{naive['params']['rho']:.2f} [{naive['params']['lo']:.2f}, {naive['params']['hi']:.2f}]; signs right "
          f"{verdict['sign_agreement']:.0%}; beyond noise: {len(verdict['beyond_noise'])} point(s)")
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
