"""A broker started by a given command line and configured by its environment alone,
as in a container: no flags (support.procs' brokers pass flags, which win over
KAFSCALE_* variables and so would hide what the environment does)."""

from __future__ import annotations

import pathlib
import sys
from typing import Mapping, Sequence

from support.procs import BrokerFactory, BrokerProcess


class CommandBroker(BrokerProcess):
    def __init__(self, factory: BrokerFactory, argv: Sequence[str], env: Mapping[str, str], *,
                 broker_id: int, port: int, metrics_port: int) -> None:
        super().__init__(factory.stack, factory.workdir, broker_id, port=port, metrics_port=metrics_port,
                         etcd_prefix=env.get("KAFSCALE_ETCD_PREFIX"), s3_namespace=env.get("KAFSCALE_S3_NAMESPACE"),
                         env=env)
        self._argv = list(argv)
        factory.brokers.append(self)  # the factory stops it and attaches its log on failure

    def argv(self) -> list[str]:
        return list(self._argv)


def kafscale_shim(directory: pathlib.Path) -> pathlib.Path:
    """A `kafscale` executable (what the wheel's console script is in the image) that runs
    this checkout's kafscale with the test interpreter. Returns its directory, for PATH."""
    directory.mkdir(parents=True, exist_ok=True)
    shim = directory / "kafscale"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m kafscale "$@"\n')
    shim.chmod(0o755)
    return directory
