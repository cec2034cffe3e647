# Offsite services image: `offsite ingest`, `offsite serve`, `offsite simulate`.
FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY offsite offsite
COPY store store
COPY ingest ingest
COPY rules rules
COPY api api
COPY simulators simulators
RUN pip install --no-cache-dir . && useradd --system offsite \
    && install -d -o offsite /var/lib/offsite/spool
USER offsite
ENTRYPOINT ["offsite"]
CMD ["serve"]
