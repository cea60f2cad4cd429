"""``vectordbbench rosetta ...`` and ``vectordbbench rosettaivfpq ...`` commands.

Only importable inside VectorDBBench (it needs click and vectordb_bench.cli); register the two
commands in vectordb_bench/cli/vectordbbench.py (see bench/adapters/README.md).
"""

from typing import Annotated, Unpack

import click

from ....cli.cli import CommonTypedDict, cli, click_parameter_decorators_from_typed_dict, run
from .. import DB


class RosettaTypedDict(CommonTypedDict):
    host: Annotated[str, click.option("--host", type=str, default="127.0.0.1",
                                      show_default=True, help="rosettad host")]
    port: Annotated[int, click.option("--port", type=int, default=7700, show_default=True,
                                      help="rosettad port")]
    token: Annotated[str | None, click.option("--token", type=str, default=None,
                                              help="admin bearer token, if the server has "
                                                   "tokens (else $ROSETTA_TOKEN)",
                                              envvar="ROSETTA_TOKEN")]


class RosettaIVFPQTypedDict(RosettaTypedDict):
    nlist: Annotated[int, click.option("--nlist", type=int, default=0, show_default=True,
                                       help="IVF lists per segment, 0 = server default")]
    m: Annotated[int, click.option("--m", type=int, default=0, show_default=True,
                                   help="PQ sub-quantizers (must divide dim), 0 = default")]
    nbits: Annotated[int, click.option("--nbits", type=click.Choice(["4", "8"]), default="8",
                                       show_default=True, help="8: LUT, 4: fast-scan")]
    nprobe: Annotated[int, click.option("--nprobe", type=int, default=0, show_default=True,
                                        help="lists probed per segment, 0 = default")]
    refine: Annotated[int, click.option("--refine", type=int, default=0, show_default=True,
                                        help="candidates re-scored exactly, 0 = default")]


def _db_config(parameters: dict):
    from .config import RosettaConfig

    return RosettaConfig(db_label=parameters["db_label"], host=parameters["host"],
                         port=parameters["port"], token=parameters.get("token") or None)


@cli.command()
@click_parameter_decorators_from_typed_dict(RosettaTypedDict)
def Rosetta(**parameters: Unpack[RosettaTypedDict]):
    """Rosetta, exhaustive (exact) search."""
    from .config import RosettaFlatConfig

    run(db=DB.Rosetta, db_config=_db_config(parameters), db_case_config=RosettaFlatConfig(),
        **parameters)


@cli.command()
@click_parameter_decorators_from_typed_dict(RosettaIVFPQTypedDict)
def RosettaIVFPQ(**parameters: Unpack[RosettaIVFPQTypedDict]):
    """Rosetta with an IVF-PQ index (exact re-scoring of the candidates)."""
    from .config import RosettaIVFPQConfig

    run(db=DB.Rosetta, db_config=_db_config(parameters),
        db_case_config=RosettaIVFPQConfig(nlist=parameters["nlist"], m=parameters["m"],
                                          nbits=int(parameters["nbits"]),
                                          nprobe=parameters["nprobe"],
                                          refine=parameters["refine"]),
        **parameters)
