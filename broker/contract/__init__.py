"""The Avro contract in bytes: the binary primitives (`broker.contract.binary`), the bounded
skimmer that checks untrusted bytes before a decoder sees them, and the codec that encodes,
decodes and fingerprints every schema of ``schemas/avro``."""

from broker.contract._codec import NAMESPACE, Codec, SchemaInfo, by_type_name, default_codec
from broker.contract._skim import Skipper, compile_schema, skim

__all__ = [
    "NAMESPACE",
    "Codec",
    "SchemaInfo",
    "Skipper",
    "by_type_name",
    "compile_schema",
    "default_codec",
    "skim",
]
