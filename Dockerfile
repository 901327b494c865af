# One image for web, worker and beat (docker-compose.yml picks the command).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY requirements.txt .
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt
COPY . .
RUN SECRET_KEY=build-only DEBUG=0 python manage.py collectstatic --noinput
# The runtime user owns var/ and the artifacts mount point: Docker copies the image's
# ownership into a new named volume, and a missing mount point would be created root-owned.
RUN useradd --create-home app && mkdir -p /app/var /artifacts && chown -R app /app/var /artifacts
USER app
EXPOSE 8000
# The logger class masks keys sent in URLs, should an access log be turned on (GUNICORN_CMD_ARGS).
CMD ["gunicorn", "makeusrich.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", \
     "--logger-class", "makeusrich.gunicorn_logging.SecretMaskingLogger"]
