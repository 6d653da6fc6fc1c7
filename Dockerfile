# Production image: slim, non-root, static files collected, gunicorn.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml ./
COPY config ./config
COPY apps ./apps
RUN python -m venv /venv && /venv/bin/pip install .

FROM python:3.11-slim
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=config.settings PORT=8000 HUB_VAR_DIR=/tmp/hub
RUN useradd --system --uid 10001 --home-dir /app hub
WORKDIR /app
COPY --from=build /venv /venv
COPY --chown=hub:hub . .
# Collect static files with throwaway keys: the real ones come from the environment.
RUN SECRET_KEY=build SECRETS_ENCRYPTION_KEY=bXVzdC1iZS0zMi1ieXRlcy1sb25nLWJ1aWxkLWtleSE= \
    python manage.py collectstatic --noinput \
    && chown -R hub:hub /app/staticfiles && rm -rf "$HUB_VAR_DIR"
USER hub
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/healthz', timeout=2)"
CMD ["gunicorn", "-c", "config/gunicorn.conf.py"]
