"""Print the closing line of a test run from its pytest JUnit XML report: `N passed, N failed`, pytest's wall time, the
seconds all tests took together, the five slowest tests with their seconds, and how many tests took over their 60 s
budget (each one in the five marked, any others named).

`python tests/summary.py .test-results.xml` prints one line, for example (`make test-quick`, wrapped here):
`236 passed, 3 failed in 4 min 59 s (460 test-seconds); slowest: test_notebook[23_experiment_sweeps.ipynb] 70 s (over
budget), test_notebook[30_classification_explorer.ip…] 48 s, test_notebook[16_engine_learner.ipynb] 34 s,
test_notebook[43_your_task.ipynb] 28 s, test_notebook[41_saliency_experiment.ipynb] 28 s; 1 over the 60 s budget`"""
import sys
import xml.etree.ElementTree as ET

BUDGET = 60   # seconds one test may take; a test past it is named on the line


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s" if seconds >= 60 else f"{seconds:.0f} s"


def short(case) -> str:
    "The test's name as `pytest -k` finds it, a parametrized case's id cut to 40 characters."
    name = case.get('name', '')
    test, bracket, case_id = name.partition('[')
    case_id = case_id.removesuffix(']')
    return f"{test}[{case_id if len(case_id) <= 40 else case_id[:39] + '…'}]" if bracket else test


def summary(path: str) -> str:
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == 'testsuite' else list(root)
    tests = sum(int(s.get('tests', 0)) for s in suites)
    failed = sum(int(s.get('failures', 0)) + int(s.get('errors', 0)) for s in suites)
    skipped = sum(int(s.get('skipped', 0)) for s in suites)
    wall = sum(float(s.get('time', 0)) for s in suites)
    times = {}   # a test that failed in its teardown has two <testcase> entries: its seconds add up
    for case in root.iter('testcase'):
        key = (case.get('classname'), case.get('name'))
        times[key] = (short(case), times.get(key, ('', 0))[1] + float(case.get('time', 0)))
    slowest = sorted(times.values(), key=lambda t: -t[1])
    over = [name for name, s in slowest if s > BUDGET]
    shown = lambda name, s: f"{name} {s:.0f} s" + (' (over budget)' if s > BUDGET else '')
    return (f"{tests - failed - skipped} passed, {failed} failed" + (f", {skipped} skipped" if skipped else '')
            + f" in {minutes(wall)} ({sum(s for _, s in slowest):,.0f} test-seconds); slowest: "
            + ', '.join(shown(*t) for t in slowest[:5]) + f"; {len(over)} over the {BUDGET} s budget"
            + (f" ({', '.join(over[5:])} too)" if len(over) > 5 else ''))


if __name__ == '__main__':
    print(summary(sys.argv[1]))
