# tipline: web, worker and scheduler share this image (docker-compose.yml picks the command).
# Two stages: the first installs the locked dependencies (hash-checked) and tipline's own wheel
# into a virtualenv; the second carries only that virtualenv, the gunicorn settings and the
# PostgreSQL client for `tipline backup`/`restore`. No secret is baked in: settings come from
# config/tipline.env at run time and the key file is mounted (README, "Deploy").
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY requirements/ requirements/
RUN python -m venv /opt/tipline \
    && /opt/tipline/bin/pip install --require-hashes -r requirements/runtime.txt \
    && python -m venv /opt/build \
    && /opt/build/bin/pip install --require-hashes -r requirements/build.txt
COPY pyproject.toml README.md ./
COPY tipline ./tipline
COPY workers ./workers
COPY templates ./templates
COPY config/directory.demo.yaml config/policy.demo.yaml ./config/
# The wheel (templates, translations, migrations and demo files inside), installed
# non-editable and without dependencies: those came from the lock above.
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /src/dist . \
    && /opt/tipline/bin/pip install --no-deps /src/dist/tipline-*.whl

FROM ${PYTHON_IMAGE}
# pg_dump/pg_restore of the server's major version (compose runs postgres:16), from the
# PostgreSQL project's own apt repository; Debian bookworm ships only 15.
ARG PG_MAJOR=16
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && install -d /usr/share/postgresql-common/pgdg \
    && curl -fsSL -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc \
         https://www.postgresql.org/media/keys/ACCC4CF8.asc \
    && echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt bookworm-pgdg main" \
         > /etc/apt/sources.list.d/pgdg.list \
    && apt-get update \
    && apt-get install -y --no-install-recommends "postgresql-client-${PG_MAJOR}" \
    && apt-get purge -y curl && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*

# uid/gid 10001: the owner of the mounted key folder on the host (README, "Deploy").
RUN groupadd --system --gid 10001 tipline \
    && useradd --system --uid 10001 --gid tipline --home-dir /var/lib/tipline \
         --shell /usr/sbin/nologin tipline \
    && install -d -o tipline -g tipline -m 0700 /var/lib/tipline /run/tipline-metrics

COPY --from=build /opt/tipline /opt/tipline
COPY config/gunicorn.conf.py /app/config/gunicorn.conf.py

ENV PATH=/opt/tipline/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TIPLINE_DATA_DIR=/var/lib/tipline
USER 10001:10001
WORKDIR /var/lib/tipline
EXPOSE 8080 9108
CMD ["gunicorn", "-c", "/app/config/gunicorn.conf.py"]
