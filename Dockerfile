# closeloop in a container: `docker build -t closeloop .`, then see docs/operations.md for `docker run`.
#
# The base image is pinned by tag, python:3.11-slim-bookworm (Python 3.11 on Debian 12), not by digest: the tag
# keeps receiving Debian and CPython security fixes on rebuild, which matters more for a long-running mail
# daemon than bit-for-bit reproducibility. Pin a digest (FROM python:3.11-slim-bookworm@sha256:…) if you need the
# latter, and rebuild on a schedule.
#
# Checked without a Docker engine (none runs on the machine this was written on): every RUN command below was
# run as written outside Docker — the wheel built with `python -m pip wheel --no-cache-dir --no-deps -w DIR .`,
# installed with its postgres extra into a fresh venv under /tmp, `closeloop --help` run from it, and the
# HEALTHCHECK command run against a live /healthz — and the file was linted with hadolint.

# --- build: one wheel of closeloop itself (its dependencies come from PyPI in the runtime stage) -------------
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN python -m pip wheel --no-cache-dir --no-deps -w /wheels .

# --- runtime ------------------------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CLOSELOOP_CONFIG=/etc/closeloop/closeloop.toml

RUN groupadd --system --gid 10001 closeloop \
    && useradd --system --uid 10001 --gid closeloop --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin closeloop

COPY --from=build /wheels /tmp/wheels
# Dependencies install at the ranges pyproject.toml allows (the project keeps no lock file yet); add
# `--constraint constraints.txt` here to pin them once it does.
# hadolint ignore=DL3013
RUN set -eu; \
    wheel="$(echo /tmp/wheels/closeloop-*.whl)"; \
    python -m pip install --no-cache-dir "${wheel}[postgres]"; \
    rm -rf /tmp/wheels

# The shipped templates, as a starting point: a named volume on /templates starts as a copy of them.
COPY templates /templates
RUN mkdir -p /data /etc/closeloop && chown closeloop:closeloop /data

VOLUME ["/data", "/etc/closeloop", "/templates"]
# Numeric, so Kubernetes' runAsNonRoot and the host can tell it is not root without reading /etc/passwd.
USER 10001:10001
WORKDIR /data
EXPOSE 8025

# The slim image has no curl; Python's urllib raises (exit 1) on anything but a 2xx, so 503 is unhealthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8025/healthz', timeout=4)"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["closeloop"]
CMD ["run"]
