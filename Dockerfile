# A Pier node: the statically built pier binary and nothing else.
#
# The binary is built on the host (no image can be pulled, so there is no Go
# builder stage); `make image` builds it and then this image:
#
#   CGO_ENABLED=0 go build -tags "$GO_TAGS" -o bin/image/pier-${GO_TAGS:-none} ./cmd/pier
#   docker build --build-arg GO_TAGS="$GO_TAGS" -t pier:dev .
#
# GO_TAGS selects which build goes in: `make image GO_TAGS=faults` packs the
# build with the fault-injection hooks that `make chaos-planted` uses.
FROM scratch
ARG GO_TAGS=
COPY bin/image/pier-${GO_TAGS:-none} /pier

# Inside a container a node binds every interface; compose (or docker run)
# gives it --id, --advertise, --join and the rest.
ENV PIER_DATA_DIR=/data \
    PIER_HTTP_ADDR=0.0.0.0:8081 \
    PIER_GOSSIP_ADDR=0.0.0.0:7946 \
    PIER_RAFT_ADDR=0.0.0.0:8300
EXPOSE 8081 7946 7946/udp 8300

# `pier health` GETs /readyz on 127.0.0.1:8081 and exits 0 or 1.
HEALTHCHECK --interval=3s --timeout=2s --start-period=10s --retries=3 CMD ["/pier", "health"]

ENTRYPOINT ["/pier"]
CMD ["serve"]
