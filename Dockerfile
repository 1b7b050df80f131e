# tipline: web, worker and scheduler share this image (docker-compose.yml picks the command).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system tipline && useradd --system --gid tipline --home-dir /var/lib/tipline tipline \
    && mkdir -p /var/lib/tipline && chown tipline:tipline /var/lib/tipline

WORKDIR /app
COPY pyproject.toml README.md ./
COPY tipline ./tipline
COPY workers ./workers
COPY templates ./templates
COPY config ./config
# Editable: the top-level templates/ and config/ stay beside the package, where the app finds them.
RUN pip install -e .

USER tipline
ENV TIPLINE_DATA_DIR=/var/lib/tipline
EXPOSE 8080
CMD ["gunicorn", "-c", "/app/config/gunicorn.conf.py"]
