# Vigie: two commands matter, `make demo` and `make test` (README.md).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PORT   ?= 8080

# Debian packages: the RTSP test cameras (GStreamer RTSP server, driven by Debian's python3-gi),
# ffmpeg (bench baseline) and docker-compose (validates docker-compose.yml offline).
DEBIAN_PACKAGES := gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-tools \
	gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly \
	gstreamer1.0-plugins-bad python3-gi python3-numpy ffmpeg docker-compose \
	fonts-dejavu-core chromium nats-server openssl haproxy

.PHONY: demo test bench install debian-deps clean

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

install: $(VENV)/.installed

debian-deps:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

demo: install
	$(VENV)/bin/vigie demo --port $(PORT)

test: install debian-deps
	$(PY) -m pytest -q $(PYTEST_ARGS)

# Issue 5's bench: scenarios A-D against the floor and ffmpeg xstack (~10 min, one table,
# bench-results.json). bench-quick: every path once, small counts, asserts nothing (CI, < 3 min).
bench: install debian-deps
	$(PY) -m bench.wall $(BENCH_ARGS)

.PHONY: bench-quick
bench-quick: install debian-deps
	$(PY) -m bench.wall --quick $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
