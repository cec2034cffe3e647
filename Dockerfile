# Offsite services image: `offsite ingest`, `offsite gateway`, `offsite rules`, `offsite serve`,
# `offsite simulate`, `offsite db migrate`, `offsite devices export-broker-auth`.
#
# Two stages: the first builds the wheel from the source tree, the second installs only that
# wheel (no source, no tests, no dev extras), so the image runs exactly what
# tests/integration/test_wheel.py tests. The base is pinned to an exact Python patch release
# on Debian bookworm: a floating tag would change the image under an unchanged Dockerfile.

FROM python:3.12.12-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY offsite offsite
COPY core core
COPY rules rules
COPY store store
COPY runner runner
COPY ingest ingest
COPY api api
COPY simulators simulators
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.12.12-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OFFSITE_DATA_DIR=/data
COPY --from=build /wheels /wheels
# Every directory a service writes exists here and belongs to `offsite`: a named volume
# mounted on it starts as a copy of it (owner included), so the non-root user can write.
#   /data  OFFSITE_DATA_DIR (embedded services' state; the working directory)
#   /auth  the broker-auth job's password and ACL files (compose volume broker-auth)
#   /var/lib/offsite/spool  ingest's disk buffer (OFFSITE_SPOOL_DIR; volume ingest-spool)
RUN pip install --no-cache-dir /wheels/*.whl \
    && rm -rf /wheels \
    && useradd --system --user-group --uid 10001 --home-dir /data --no-create-home offsite \
    && mkdir -p /data /auth /var/lib/offsite/spool \
    && chown offsite:offsite /data /auth /var/lib/offsite/spool
USER offsite
WORKDIR /data
ENTRYPOINT ["offsite"]
CMD ["serve"]
