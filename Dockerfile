# A slim, non-root image of the gateway. Build: docker build -t chatbot-gateway .
# Run (secrets from the environment, policies mounted read-only): see README, "Docker".
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN pip install --no-cache-dir . \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin gateway

COPY policies ./policies

USER 10001:10001
# 8080: the public port. 9090: the admin listener (/healthz, /readyz, /metrics) for probes and
# Prometheus inside your network; never publish it to the internet.
EXPOSE 8080 9090
# Secrets come from the environment or mounted files at run time, never from this image.
# Inside the container both listeners bind every interface of its own network namespace.
ENV GATEWAY_LISTEN_HOST=0.0.0.0 GATEWAY_ADMIN_HOST=0.0.0.0
# No curl in slim images: the interpreter that runs the gateway checks /healthz itself.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('GATEWAY_ADMIN_PORT', '9090') + '/healthz', timeout=2)"]
ENTRYPOINT ["gateway"]
CMD ["run"]
