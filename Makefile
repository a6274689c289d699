# The few commands people type; each is a script under scripts/ so nothing depends on make.
.PHONY: run test e2e fast bench page-weight observatory screenshots
run:   ## set up and run the demo on http://127.0.0.1:5000
	scripts/run
test:  ## set up and run lint plus every test (what CI runs)
	scripts/test
fast:  ## every test but the browser ones and the slow ones (servers, subprocesses), on 2 processes
	scripts/test -m "not e2e and not slow" -n 2
e2e:   ## only the browser tests (HTTPS gunicorn + Chromium)
	scripts/test -m e2e
observatory:  ## grade the production site (HTTPS gunicorn) with MDN HTTP Observatory, offline
	scripts/observatory
bench: ## throughput under the production gunicorn (wrk, 32 connections) vs a bare Flask app
	.venv/bin/python bench/load.py
screenshots: ## retake docs/screenshots/*.png from a fresh, seeded demo (Chromium)
	scripts/screenshots
page-weight: ## the patient page's own requests, bytes and Pay-usable time on slow 3G (Chromium, Caddy)
	.venv/bin/python bench/page_weight.py
