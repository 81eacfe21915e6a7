# The tierscan image: `docker build -t tierscan .`, then `docker run tierscan scan ...` (ENTRYPOINT tierscan).
# Pinned by version; pin by digest too (FROM python:3.11.13-slim-bookworm@sha256:...) once you can resolve it
# against your registry: the digest could not be looked up where this file was written (no registry access).
FROM python:3.11.13-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY scanner ./scanner
COPY connectors ./connectors
COPY policies ./policies
# Every cloud SDK, pinned in pyproject.toml's extras, installed into a venv copied into the runtime stage.
RUN python -m venv /opt/tierscan && /opt/tierscan/bin/pip install --no-compile '.[all]'

FROM python:3.11.13-slim-bookworm
#checkov:skip=CKV_DOCKER_2: a run-to-completion batch job, not a service: there is nothing to probe, and the platforms (Batch, Cloud Run Jobs, Container Apps jobs) judge it by its exit status
LABEL org.opencontainers.image.title="tierscan" \
      org.opencontainers.image.description="Audit images in object stores: duplicates across tiers, regions and jurisdictions; personal data in metadata" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/tierscan/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 TMPDIR=/tmp
COPY --from=build /opt/tierscan /opt/tierscan
# A fixed, unprivileged user; the only writable path the deployments give it is /tmp (catalogs, run files).
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin tierscan
USER 10001:10001
WORKDIR /tmp
ENTRYPOINT ["tierscan"]
CMD ["--help"]
