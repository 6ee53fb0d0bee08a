# Vigie server image. Build: docker build -t vigie .   Run: see docker-compose.yml.
FROM python:3.11-slim-bookworm

# DejaVu: tile labels in French need accented glyphs.
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/vigie
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --no-cache-dir -r requirements.lock
COPY ingest ./ingest
COPY server ./server
COPY viewer ./viewer
RUN pip install --no-cache-dir --no-deps . \
 && useradd --system --home-dir /var/lib/vigie --create-home vigie

USER vigie
EXPOSE 8080 8554 8000-8001/udp
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"
# SIGTERM closes viewers and joins threads; exits 0 within 10 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["vigie"]
CMD ["serve", "--config", "/etc/vigie/vigie.yaml"]
