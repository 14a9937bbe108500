# The reference Nova service (and the harness CLI) as an image, for docker-compose.yml.
FROM python:3.11-slim-bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY records ./records
COPY harness ./harness
COPY analysis ./analysis
COPY stack ./stack
RUN pip install --no-cache-dir .
ENV NOVA_HOST=0.0.0.0 NOVA_PORT=8080
EXPOSE 8080
CMD ["python", "-m", "stack.service"]
