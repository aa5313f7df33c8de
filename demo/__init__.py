"""The demo network (`lvvx demo`): fictional parties and people (`demo.casebook`), their keys
and gateways on one machine (`demo.network`), the run itself (`demo.run`), its back offices
and hostile envelopes, and the examples of every message type (`demo.examples`). It may use
the library and the adapters; nothing in `broker/` or `adapters/` imports it."""
