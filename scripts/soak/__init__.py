"""Soak: 2 gateways and 2 engines under thousands of steady connections for minutes; RSS of
each process and Redis memory sampled every 30 s; then every user leaves and the keys left
under the soak's prefix are listed, each judged expected (expiring or long-lived) or a leak.

    python scripts/soak                                   # make soak: 10 min, 5,000 sockets,
                                                          # on the cluster topology
    python scripts/soak --minutes 1 --connections 300     # smoke
    python scripts/soak --topology single                 # one broker, one Redis

Writes a JSON document and a markdown summary (--json, --markdown; default in the run's
directory) and exits 1 when a key leaked, a service crashed, no game finished or not every
socket connected. See `python scripts/soak --help`.
"""
