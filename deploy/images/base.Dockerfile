# The local base every image of deploy/images builds on: a Debian root made by debootstrap
# (imported as localhost/debian:<suite>), plus the build host's trusted CAs, so that pip and the
# JDK reach PyPI and Maven Central through a proxy the host trusts, and the host's mirror. Production builds from the
# official images never use this layer.
ARG DEBIAN_IMAGE=localhost/debian:bookworm
FROM ${DEBIAN_IMAGE}
# A path of its own: Debian's ca-certificates package rewrites /etc/ssl/certs when installed.
COPY host-ca-certificates.crt /etc/ssl/host-ca-certificates.crt
# A mirror that serves a frozen snapshot has Release files past their Valid-Until date.
RUN echo 'Acquire::Check-Valid-Until "false";' > /etc/apt/apt.conf.d/99livefeed-mirror
ENV SSL_CERT_FILE=/etc/ssl/host-ca-certificates.crt \
    PIP_CERT=/etc/ssl/host-ca-certificates.crt \
    DEBIAN_FRONTEND=noninteractive
