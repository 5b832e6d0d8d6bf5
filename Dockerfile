# teleread service image. Built by compose/docker-compose.yml (service "teleread"); also usable
# on its own:  docker build -t teleread .  &&  docker run -p 8080:8080 -e TELEREAD_ORTHANC_URL=... teleread
#
# One stage fetches the OHIF viewer, one builds a wheel of this repository; the last installs the
# wheel (and its dependencies from PyPI) and copies OHIF into a clean image, so neither the source
# tree nor build tools end up in the result.

# The OHIF viewer served at /ohif/ (docs/viewer.md#ohif): the version and integrity the Makefile
# pins, fetched and checked by the same script as `make ohif`.
FROM node:20-bookworm-slim AS ohif
WORKDIR /src
COPY Makefile scripts/install-ohif.sh ./
RUN ./install-ohif.sh "$(sed -n 's/^OHIF_VERSION := //p' Makefile)" \
        "$(sed -n 's/^OHIF_INTEGRITY := //p' Makefile)" /opt/ohif

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY . .
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
COPY --from=ohif /opt/ohif /opt/ohif
RUN pip install /wheels/*.whl && rm -rf /wheels
# The CJK TrueType font embedded in signed report PDFs.
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends fonts-wqy-zenhei \
    && rm -rf /var/lib/apt/lists/*

# Unprivileged user; its home is the data directory (SQLite database and local files). A named
# volume mounted there on first use inherits this ownership, as does the modality worklist
# folder it shares with Orthanc (TELEREAD_MWL_DIR in compose/docker-compose.yml).
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/teleread --create-home \
        --shell /usr/sbin/nologin teleread \
    && install -d -m 0700 -o teleread -g teleread /var/lib/teleread-worklists
USER teleread
WORKDIR /var/lib/teleread

ENV TELEREAD_DATA_DIR=/var/lib/teleread \
    TELEREAD_OHIF_DIR=/opt/ohif \
    TELEREAD_HOST=0.0.0.0 \
    TELEREAD_PORT=8080
EXPOSE 8080

CMD ["teleread", "serve"]
