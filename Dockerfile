# A slim, non-root image of the gateway. Build: docker build -t chatbot-gateway .
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN pip install --no-cache-dir . \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin gateway

COPY policies ./policies

USER 10001:10001
EXPOSE 8080
# Secrets come from the environment or mounted files at run time, never from this image.
ENV GATEWAY_LISTEN_HOST=0.0.0.0
ENTRYPOINT ["gateway"]
CMD ["run"]
