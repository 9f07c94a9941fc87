# syntax=docker/dockerfile:1
# The Mostro node image: one image for every process (web, bridges, watcher, jobs, all-in-one).
#   docker build -t mostro-django .                          # production
#   docker build -t mostro-django:demo --build-arg INSTALL_EXTRAS='[demo]' .   # + the local relay
# Install steps are the README's "Production install"; tests/ops/test_deploy.py keeps them equal.

# --- build: the virtual environment and the code ------------------------------------------
FROM python:3.11-slim-bookworm AS build
ARG INSTALL_EXTRAS=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /srv/mostro
COPY pyproject.toml ./
RUN python3 -m venv .venv
RUN .venv/bin/pip install ".${INSTALL_EXTRAS}"
COPY manage.py ./
COPY mostro_site/ mostro_site/
COPY orders/ orders/
COPY disputes/ disputes/
COPY lightning/ lightning/
COPY nostrbridge/ nostrbridge/
COPY devfee/ devfee/
COPY templates/ templates/
COPY static/ static/
COPY deploy/healthcheck.py deploy/healthcheck.py
RUN .venv/bin/python -m compileall -q mostro_site orders disputes lightning nostrbridge devfee

# --- runtime: no compilers, a non-root user, PostgreSQL client tools for `manage.py backup` --
FROM python:3.11-slim-bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system mostro \
    && useradd --system --gid mostro --home-dir /srv/mostro --no-create-home --shell /usr/sbin/nologin mostro
WORKDIR /srv/mostro
COPY --from=build /srv/mostro /srv/mostro
# var/simnet exists so a named volume mounted there (compose's demo profile) belongs to mostro.
RUN mkdir -p /srv/mostro/var/simnet && chown -R mostro:mostro /srv/mostro/var
ENV PATH=/srv/mostro/.venv/bin:$PATH \
    DJANGO_SETTINGS_MODULE=mostro_site.settings.production \
    MOSTRO_VAR_DIR=/srv/mostro/var \
    PYTHONUNBUFFERED=1
USER mostro
VOLUME ["/srv/mostro/var"]
EXPOSE 8000
# The web answers /healthz; compose overrides this for processes without a web port.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "deploy/healthcheck.py", "--url", "http://127.0.0.1:8000/healthz"]
CMD ["python", "manage.py", "mostrod", "--host", "0.0.0.0", "--port", "8000"]
