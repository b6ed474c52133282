# kt_nb: `make demo` and `make test` do everything on a fresh machine.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FASHION_DEB := /usr/share/datasets/fashion-mnist

.PHONY: install data chromium slurm demo sweep docs test test-quick test-slow sync check-sync readme clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Fashion-MNIST without internet: Debian's dataset-fashion-mnist package (installed as root,
# else unpacked into data/). Where neither works, kt_nb tries torchvision's download and
# otherwise falls back to scikit-learn's digits, saying so.
data:
	@if [ -f $(FASHION_DEB)/t10k-labels-idx1-ubyte.gz ] || [ -f data/fashion-mnist/t10k-labels-idx1-ubyte.gz ]; then \
		echo "Fashion-MNIST: present"; \
	elif ! command -v apt-get >/dev/null; then \
		echo "Fashion-MNIST: no apt-get here; kt_nb will try torchvision's download, else use digits"; \
	elif [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
		|| echo "Fashion-MNIST: apt-get install failed; kt_nb will try torchvision's download, else use digits"; \
	else \
		tmp=$$(mktemp -d) && (cd $$tmp && apt-get download dataset-fashion-mnist >/dev/null) \
		&& dpkg-deb -x $$tmp/*.deb $$tmp/x && mkdir -p data/fashion-mnist \
		&& cp $$tmp/x$(FASHION_DEB)/* data/fashion-mnist/ \
		|| echo "Fashion-MNIST: apt-get download failed; kt_nb will try torchvision's download, else use digits"; \
	fi

# The browser test drives Debian's Chromium through Playwright (never `playwright install`):
# installed with apt-get when run as root, else the test skips and says why.
chromium:
	@if command -v chromium >/dev/null || [ -x /usr/bin/chromium ] || [ -n "$$KT_NB_CHROMIUM" ]; then \
		echo "Chromium: present"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
		|| echo "Chromium: apt-get install failed; the browser test will skip"; \
	else \
		echo "Chromium: not installed and no root for apt-get; the browser test will skip (install chromium, or set KT_NB_CHROMIUM)"; \
	fi

# The Slurm sweep test submits through sbatch to a single-node cluster on this machine:
# slurm-wlm installed with apt-get when run as root, configured and started without systemd by
# scripts/slurm-cluster.sh (idempotent); where it cannot, it says why and the test will skip.
slurm:
	@bash scripts/slurm-cluster.sh

demo: install data
	$(BIN)/kt-nb demo

# The embedded default as a sweep of training notebooks through papermill, with its report.
sweep: install data
	$(BIN)/kt-nb sweep sweeps/embedded_default.yaml --workers 2 --report

# The documentation site from the notebooks' stored outputs, offline: _site/html/index.html.
docs: install
	$(BIN)/python docs/build.py

# Notebooks are the source: clean them, export them, and fail if either changed a file.
check-sync: install
	@before=$$(cat nbs/*.ipynb kt_nb/notebooks/*.ipynb docs/*/*.ipynb index.ipynb $$(find kt_nb -name "*.py" | sort) | sha1sum); \
	$(BIN)/nbdev-clean && $(BIN)/nbdev-clean --fname index.ipynb && $(BIN)/nbdev-clean --fname 'kt_nb/notebooks/*.ipynb' \
		&& $(BIN)/nbdev-clean --fname 'docs/*/*.ipynb' && $(BIN)/nbdev-export; \
	after=$$(cat nbs/*.ipynb kt_nb/notebooks/*.ipynb docs/*/*.ipynb index.ipynb $$(find kt_nb -name "*.py" | sort) | sha1sum); \
	if [ "$$before" != "$$after" ]; then echo "notebooks were not clean or kt_nb/ was out of sync with them: fixed now, review and commit"; exit 1; fi

readme: install
	$(BIN)/jupyter nbconvert --log-level=ERROR --to markdown --TagRemovePreprocessor.enabled=True \
		--TagRemovePreprocessor.remove_all_outputs_tags='{"hide_output_in_readme"}' \
		--RegexRemovePreprocessor.patterns='["#\\| hide"]' --output README index.ipynb \
		--NbConvertBase.display_data_priority='["text/markdown","image/png","text/plain"]'

# Every test; the last line names the five slowest and any test over its 60 s budget (tests/summary.py).
test: install data chromium slurm check-sync
	$(BIN)/python -m pytest -n 2 -q -p no:cacheprovider --junitxml=.test-results.xml tests; \
	status=$$?; $(BIN)/python tests/summary.py .test-results.xml; exit $$status

# After every edit, in minutes: the notebooks and the unit tests, without the end-to-end runs that
# tests/conftest.py lists (demo, sweeps, Slurm, browser, install) and the notebook cells flagged `#| e2e` (whole
# sweeps), so without their data, Chromium or Slurm set-up.
test-quick: install check-sync
	$(BIN)/python -m pytest -n 2 -q -p no:cacheprovider -m 'not e2e' --junitxml=.test-results.xml tests; \
	status=$$?; $(BIN)/python tests/summary.py .test-results.xml; exit $$status

test-slow: install data
	KT_NB_FLAGS="slow" $(BIN)/python -m pytest -n 2 -q -p no:cacheprovider tests/test_notebooks.py

clean:
	rm -rf runs .test-results.xml test-artifacts _site
