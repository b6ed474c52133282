"Print the closing line `N passed, N failed` from a pytest JUnit XML report."
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == 'testsuite' else list(root)
tests = sum(int(s.get('tests', 0)) for s in suites)
failed = sum(int(s.get('failures', 0)) + int(s.get('errors', 0)) for s in suites)
skipped = sum(int(s.get('skipped', 0)) for s in suites)
print(f"{tests - failed - skipped} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ''))
