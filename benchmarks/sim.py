"""Start the Plex simulator for the benchmarks: ``plexcache simulate`` in its own process.

Same options as ``plexcache simulate``. One difference, on by default: the
simulator's handler gets ``TCP_NODELAY`` when it does not set it itself.
Without it a keep-alive response sent in two ``send()`` calls waits for the
client's delayed ACK (Nagle + delayed ACK, ~40 ms per request on Linux
loopback), which would bill a made-up 40 ms to every request of the
one-request-per-track plexapi baseline. A real PMS does not behave like that.
The simulator now sets ``TCP_NODELAY`` itself and sends headers and body in
one ``send()``, so this only matters for an older simulator (a checkout being
compared, for instance). ``--stock`` runs the simulator unchanged.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> None:
    stock = "--stock" in argv
    argv = [a for a in argv if a != "--stock"]
    if not stock:
        from plexcache.simulator import server

        if not getattr(server.Handler, "disable_nagle_algorithm", False):
            server.Handler.disable_nagle_algorithm = True
            print("benchmarks/sim.py: TCP_NODELAY set on the simulator's handler", file=sys.stderr)
    from plexcache.cli import cli

    cli(["simulate", *argv], prog_name="plexcache")


if __name__ == "__main__":
    main(sys.argv[1:])
