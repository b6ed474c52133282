"""Bring a run or sweep folder written by an older kt_nb up to the files this kt_nb reads.

    python scripts/migrate.py FOLDER [FOLDER ...]    # a run folder (kt-nb demo, run_experiment) or a sweep folder
    python scripts/migrate.py results/video_saliency.json   # or one results file

kt_nb reads only its current formats and refuses an older one in one line that names this script. What it migrates:
- `run.json` of an experiment (a demo, a task's run, every point of a sweep): a setting added to kt_nb since the run was
  made gets the value the run ran at, as the setting's declaration says (`setting(..., since=(version, value))`);
- `metrics.json`, `rows.json` and results files of video saliency: rows lose the 'stage' they once kept, the start
  rows (once 'alone') are 'start', and the summary holds the arms and the control only, as for every task.
Each file it changes is rewritten atomically; a folder already current is left as it is, so running it twice is safe.
It prints one line per file changed, and refuses, in one line, a folder that holds no kt_nb run.
"""
import argparse, json, sys
from pathlib import Path

from kt_nb.data.storage import atomic_write
from kt_nb.experiment.settings import added_settings, settings_of


def configs() -> list:
    "Every experiment config kt_nb ships: the three tasks and the tutorial's example."
    from kt_nb.classification.experiment import ClassificationConfig
    from kt_nb.segmentation.experiment import SegmentationConfig
    from kt_nb.saliency.experiment import SaliencyConfig
    from kt_nb.examples.tags import TagsConfig
    return [ClassificationConfig, SegmentationConfig, SaliencyConfig, TagsConfig]


def migrate_run(record: dict) -> dict:
    """An experiment's `run.json` with the settings added since filled in at the value the run ran at; unchanged where
    no config has every setting it records."""
    recorded = set(record) - {'arms', 'seed_subset'}   # a subset of an experiment (a sweep point) records these too
    for config in configs():
        identity = set(settings_of(config, 'stage1', 'run', 'arm'))   # what run.json records: not how it runs
        added = added_settings(config)
        if recorded <= identity and identity - recorded <= set(added):
            return {**{k: v for k, v in added.items() if k not in record}, **record}
    return record


def migrate_row(row: dict) -> dict:
    "A result row of today: no 'stage' (video saliency once kept one), and the start rows named 'start' (once 'alone')."
    row = {k: v for k, v in row.items() if k != 'stage'}
    return {**row, 'method': 'start'} if row.get('method') == 'alone' else row


def migrate_results(obj):
    """A results file (`metrics.json`, a results/*.json) or an arm's `rows.json` of today: every row migrated; the
    summary holds the arms and the control only (video saliency once summarized its start rows there too)."""
    if isinstance(obj, list): return [migrate_row(r) if isinstance(r, dict) else r for r in obj]
    if not isinstance(obj, dict): return obj
    migrated = dict(obj)
    if isinstance(obj.get('runs'), list): migrated['runs'] = migrate_results(obj['runs'])
    if isinstance(obj.get('summary'), list):
        start = lambda r: isinstance(r, dict) and 'alone' in (r.get('stage'), r.get('method'))   # a start row
        kept = [r for r in obj['summary'] if not start(r)]
        migrated['summary'] = migrate_results(kept)
    return migrated


def rewrite(path: Path, change) -> bool:
    "Apply `change` to the JSON in `path`; write it back (atomically) only where it changed. True where it did."
    before = json.loads(path.read_text())
    after = change(before)
    if after == before: return False
    atomic_write(path, lambda p: p.write_text(json.dumps(after, indent=1)))
    return True


def migrate(target: Path) -> list[Path]:
    "Every file of the run or sweep folder `target` (or the one results file) that was brought up to date."
    if target.is_file(): return [target] if rewrite(target, migrate_results) else []
    if not target.is_dir(): raise FileNotFoundError(f"{target} does not exist")
    records = sorted(target.rglob('run.json'))
    if not records: raise ValueError(f"{target} holds no kt_nb run (no run.json in it or below): nothing to migrate")
    changed = [p for p in records if rewrite(p, migrate_run)]
    for name in ('metrics.json', 'rows.json', 'summary.json'):
        changed += [p for p in sorted(target.rglob(name)) if rewrite(p, migrate_results)]
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('targets', type=Path, nargs='+', help='run folders, sweep folders or results files')
    args = parser.parse_args(argv)
    try:
        for target in args.targets:
            changed = migrate(target)
            for path in changed: print(f"migrated {path}")
            if not changed: print(f"{target}: already current")
    except (ValueError, FileNotFoundError, json.JSONDecodeError) as e:
        print(f"migrate: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__': sys.exit(main())
